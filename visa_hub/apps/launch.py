"""Start an app version, the same way from every front end (CLI, kernel, launcher card, desktop menu).

resolve (catalog, cycle pin) → check the image (exists, is a SIF or sandbox, digest matches) → record the launch
in the session's provenance → run it with the chosen runtime (apptainer, or the local runtime).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .catalog import AppCatalog, AppVersion
from .images import DigestCache, ImageError, open_image, verify_image
from .provenance import record_launch
from .runtime import (
    PASSED_VARIABLES,
    LaunchSpec,
    LocalRuntime,
    Mount,
    RuntimeUnavailable,
    apptainer_command,
    exec_command,
    local_runtime_missing,
)
from .settings import AppSettings
from .source import CatalogSource


@dataclass(frozen=True)
class Prepared:
    version: AppVersion
    digest: str
    spec: LaunchSpec
    skipped_binds: tuple[str, ...] = ()


def site_mounts(catalog: AppCatalog, settings: AppSettings) -> tuple[list[Mount], list[str]]:
    """The site binds filled in for this session; sources that do not exist are skipped (and said)."""
    values = settings.template_values()
    mounts, skipped = [], []
    for bind in catalog.binds:
        try:
            source, target = bind.source.format(**values), bind.target.format(**values)
        except (KeyError, IndexError, ValueError):
            skipped.append(f"{bind.source}: unknown template field (use {', '.join(sorted(values))})")
            continue
        if "{}" in source or not Path(source).exists():
            skipped.append(f"{source} does not exist here")
            continue
        mounts.append(Mount(source, target, bind.mode == "rw"))
    return mounts, skipped


def check_version(version: AppVersion, settings: AppSettings, expected: str | None = None):
    """Open and verify the image; returns (image, digest). Raises :class:`ImageError` naming the image."""
    label = f"{version.label} ({version.ref})"
    image = open_image(version.image, label)
    cache = DigestCache(settings.data_dir / "digests.json")
    digest = verify_image(image, expected or version.digest, label, cache)
    return image, digest


def app_command(version: AppVersion, args: list[str] | tuple[str, ...]) -> tuple[tuple[str, ...], bool]:
    """What ``visa-app run`` starts: the catalog's command with ``args``, else the runscript with ``args``."""
    if version.command:
        return tuple(version.command) + tuple(args), False
    return tuple(args), True


def prepare(version: AppVersion, catalog: AppCatalog, settings: AppSettings, argv: list[str] | tuple[str, ...],
            *, runscript: bool = False, extra_binds: tuple[Mount, ...] = (), expected_digest: str | None = None,
            workdir: str | None = None) -> Prepared:
    image, digest = check_version(version, settings, expected_digest)
    mounts, skipped = site_mounts(catalog, settings)
    env = {key: os.environ[key] for key in PASSED_VARIABLES if os.environ.get(key)}
    env |= {"VISA_APP": version.app, "VISA_APP_VERSION": version.version, "VISA_APP_DIGEST": digest}
    if settings.experiment_code:
        env["VISA_EXPERIMENT"] = settings.experiment_code
    spec = LaunchSpec(image=image, argv=tuple(argv), runscript=runscript, binds=tuple(mounts) + extra_binds, env=env,
                      gpu=settings.gpu, workdir=workdir or os.getcwd())
    return Prepared(version, digest, spec, tuple(skipped))


def choose_runtime(settings: AppSettings) -> str:
    """``apptainer`` or ``local``; :class:`RuntimeUnavailable` says what to install."""
    if settings.runtime == "apptainer" or (settings.runtime == "auto" and shutil.which(settings.apptainer)):
        if not shutil.which(settings.apptainer):
            raise RuntimeUnavailable(f"apptainer ({settings.apptainer}) is not installed on this instance")
        return "apptainer"
    if settings.runtime not in ("auto", "local"):
        raise RuntimeUnavailable(f"VISA_APPS_RUNTIME={settings.runtime!r}: use apptainer, local or auto")
    missing = local_runtime_missing()
    if missing:
        raise RuntimeUnavailable(f"cannot run containers here: apptainer is not installed and {missing}")
    return "local"


def start(prepared: Prepared, settings: AppSettings, how: str) -> int:
    """Record the launch, then run it: apptainer replaces this process; the local runtime supervises it."""
    runtime = choose_runtime(settings)
    record_launch(settings, prepared.version, prepared.digest, how, list(prepared.spec.argv), prepared.spec.runscript)
    for note in prepared.skipped_binds:
        print(f"visa-app: not bound: {note}", file=sys.stderr)
    if runtime == "apptainer":
        exec_command(apptainer_command(prepared.spec, settings.apptainer))
    return LocalRuntime(settings.data_dir, str(settings.home)).run(prepared.spec)


def kernel_argv(version: AppVersion, connection_file: str) -> list[str]:
    if version.kernel is None:
        raise ImageError(f"{version.label} ({version.ref}) ships no Jupyter kernel")
    return [connection_file if part == "{connection_file}" else part for part in version.kernel.argv]


def run_kernel(ref: str, connection_file: str, settings: AppSettings) -> int:
    """Start the kernel of ``ref`` inside its image (what the kernel spec's argv calls)."""
    source = CatalogSource(settings)
    catalog = source.load()
    version = catalog.resolve(ref, source.cycle(catalog))
    connection = Path(connection_file).resolve()
    extra = (Mount(str(connection.parent), str(connection.parent), True),)
    expected = os.environ.get("VISA_APP_EXPECT_DIGEST") or None  # set when a provenance record is reproduced
    prepared = prepare(version, catalog, settings, kernel_argv(version, str(connection)), extra_binds=extra,
                       expected_digest=expected)
    return start(prepared, settings, "kernel")
