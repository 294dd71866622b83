"""A proposal cycle's apps to take home: the pinned versions' images, a manifest and a run script.

The bundle is a tar file::

    visa-apps-<cycle>/manifest.json   cycle, and per app: version, digest, kind, image file, partition offset
    visa-apps-<cycle>/manifest.tsv    the same for the run script (one line per app)
    visa-apps-<cycle>/run.sh          ./run.sh list | verify | APP [ARGS] | exec APP CMD [ARGS]
    visa-apps-<cycle>/images/*.sif    the images (or, with references only, none: the manifest names them)

``run.sh`` uses apptainer (or singularity) where installed, else the local runtime (squashfuse + bubblewrap),
the way :mod:`visa_hub.apps.runtime` does.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

from .catalog import AppCatalog, AppVersion, Cycle
from .images import SIF
from .launch import check_version
from .settings import AppSettings

RUN_SCRIPT = Path(__file__).with_name("bundle_run.sh")


class BundleError(ValueError):
    pass


def pinned_versions(catalog: AppCatalog, cycle: Cycle) -> list[AppVersion]:
    """Exactly the versions the cycle pins, in the catalog's order."""
    versions = []
    for app in catalog.apps:
        if app.name in cycle.pins:
            version = app.version(cycle.pins[app.name])
            if version is None:
                raise BundleError(f"cycle {cycle.name} pins {app.name} {cycle.pins[app.name]}, which the catalog "
                                  "no longer has")
            versions.append(version)
    return versions


def manifest(cycle: Cycle, entries: list[dict[str, Any]], include_images: bool) -> dict[str, Any]:
    return {"schema": "visa-hub/bundle/1", "cycle": cycle.name, "starts": cycle.starts.isoformat(),
            "ends": cycle.ends.isoformat(), "images_included": include_images, "apps": entries}


def manifest_tsv(entries: list[dict[str, Any]]) -> str:
    """app, version, image file, partition offset, partition size, digest, kind: what run.sh reads."""
    lines = [f"{e['app']}\t{e['version']}\t{e['file']}\t{e['offset']}\t{e['size']}\t{e['digest']}\t{e['kind']}"
             for e in entries]
    return "\n".join(lines) + "\n"


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), mode, 0
    tar.addfile(info, io.BytesIO(data))


def write_bundle(output: Path, catalog: AppCatalog, cycle: Cycle, settings: AppSettings,
                 include_images: bool = True) -> dict[str, Any]:
    """Write the bundle tar to ``output``; every image is checked against its digest first. Returns the manifest."""
    top = f"visa-apps-{cycle.name}"
    entries, images = [], []
    for version in pinned_versions(catalog, cycle):
        image, digest = check_version(version, settings)
        if image.kind != SIF:
            raise BundleError(f"{version.ref}: image {version.image} is a sandbox directory; bundles carry SIF files")
        assert image.partition is not None
        file = f"images/{version.app}-{version.version}.sif"
        entries.append({"app": version.app, "version": version.version, "title": version.title,
                        "kind": version.kind, "digest": digest, "file": file, "source": str(version.image),
                        "offset": image.partition.offset, "size": image.partition.size,
                        "kernel": version.kernel.language if version.kernel else None})
        images.append((image.path, file))
    data = manifest(cycle, entries, include_images)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        _add_bytes(tar, f"{top}/manifest.json", (json.dumps(data, indent=2) + "\n").encode())
        _add_bytes(tar, f"{top}/manifest.tsv", manifest_tsv(entries).encode())
        _add_bytes(tar, f"{top}/run.sh", RUN_SCRIPT.read_bytes(), 0o755)
        if include_images:
            for path, name in images:
                info = tar.gettarinfo(str(path), f"{top}/{name}")
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                info.mode = 0o755
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
    partial.replace(output)
    return data
