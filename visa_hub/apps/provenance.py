"""The session's provenance record (FAIR): what ran, so that an analysis can be redone years later.

One JSON record per session in her home (``~/.local/share/visa-hub/provenance/<record>.json``): the instance's
image and flavour, the experiment, the Dask profiles, and every app version launched with its digest, image,
how it was launched (kernel or command, with arguments) and when. The Jupyter server copies it to the hub
(:mod:`visa_hub.apps.hubstore`). ``visa-app reproduce RECORD`` reads it back (:func:`read_record`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import re
from pathlib import Path
from typing import Any

from .catalog import AppVersion
from .settings import AppSettings

SCHEMA = "visa-hub/provenance/1"


class ProvenanceError(ValueError):
    """A record that cannot be read or is not a visa-hub provenance record."""


def record_id(settings: AppSettings) -> str:
    """The record of this session: experiment and start time (stable for the whole session)."""
    session = settings.session or {}
    experiment = settings.experiment_code or "no-experiment"
    start = session.get("starts_at")
    stamp = re.sub(r"[^0-9T]", "", start.split("+")[0])[:15] if start else dt.date.today().strftime("%Y%m%d")
    return re.sub(r"[^A-Za-z0-9._-]", "_", f"{experiment}-{stamp}-{settings.user}")


def record_path(settings: AppSettings) -> Path:
    return settings.provenance_dir / f"{record_id(settings)}.json"


def new_record(settings: AppSettings, now: dt.datetime) -> dict[str, Any]:
    """The session part of a record (pure)."""
    session = settings.session or {}
    experiment = settings.experiment
    return {
        "schema": SCHEMA,
        "id": record_id(settings),
        "user": settings.user,
        "created_at": now.isoformat(),
        "updated_at": now.isoformat(),
        "session": {
            "experiment": {k: experiment.get(k) for k in ("code", "title", "instrument", "starts_at", "ends_at")
                           if k in experiment},
            "instrument": settings.instrument,
            "instance_image": session.get("image"),
            "flavour": session.get("flavour"),
            "dask_profiles": session.get("dask_profiles", []),
            "default_dask_profile": session.get("default_dask_profile"),
            "starts_at": session.get("starts_at"),
            "expires_at": session.get("expires_at"),
        },
        "apps": [],
    }


def add_launch(record: dict[str, Any], version: AppVersion, digest: str, how: str, argv: list[str],
               now: dt.datetime, runscript: bool = False) -> dict[str, Any]:
    """The record with one more launch of ``version`` (pure; one entry per app version and digest)."""
    apps = [dict(entry) for entry in record.get("apps", [])]
    entry = next((e for e in apps if (e["app"], e["version"], e["digest"]) == (version.app, version.version, digest)),
                 None)
    if entry is None:
        entry = {"app": version.app, "version": version.version, "digest": digest, "title": version.title,
                 "kind": version.kind, "image": str(version.image), "status": version.status,
                 "user_provided": version.user_provided, "launches": []}
        apps.append(entry)
    entry["launches"] = [*entry.get("launches", []), {"at": now.isoformat(), "how": how, "argv": list(argv),
                                                     "runscript": runscript}]
    return {**record, "apps": apps, "updated_at": now.isoformat()}


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def record_launch(settings: AppSettings, version: AppVersion, digest: str, how: str, argv: list[str],
                  runscript: bool = False) -> Path:
    """Add a launch to this session's record in her home (safe against concurrent launches)."""
    settings.private_data_dir()
    path = record_path(settings)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with _locked(path):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            record = new_record(settings, now)
        record = add_launch(record, version, digest, how, argv, now, runscript)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        temporary.replace(path)
    return path


def ensure_record(settings: AppSettings) -> Path:
    """Create this session's record (no apps yet) if there is none: every session has one."""
    settings.private_data_dir()
    path = record_path(settings)
    with _locked(path):
        if not path.exists():
            now = dt.datetime.now(dt.UTC).replace(microsecond=0)
            path.write_text(json.dumps(new_record(settings, now), indent=2, sort_keys=True) + "\n")
    return path


def find_record(settings: AppSettings, name: str) -> Path:
    """A record given as a path or as an id of one of her records."""
    candidate = Path(name).expanduser()
    if candidate.exists():
        return candidate
    by_id = settings.provenance_dir / f"{name.removesuffix('.json')}.json"
    if by_id.exists():
        return by_id
    raise ProvenanceError(f"No provenance record {name!r}: not a file, and not one of yours in "
                          f"{settings.provenance_dir} (visa-app records lists them)")


def read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except OSError as exc:
        raise ProvenanceError(f"{path}: cannot read the record ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ProvenanceError(f"{path}: not a JSON provenance record ({exc})") from None
    if not isinstance(record, dict) or record.get("schema") != SCHEMA:
        raise ProvenanceError(f"{path}: not a visa-hub provenance record (schema {SCHEMA} expected)")
    for index, entry in enumerate(record.get("apps", [])):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("app", "version", "digest")):
            raise ProvenanceError(f"{path}: apps[{index}] must have app, version and digest")
    return record


def list_records(settings: AppSettings) -> list[dict[str, Any]]:
    """Her records, newest first: id, path, experiment, app versions."""
    records = []
    for path in sorted(settings.provenance_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True):
        with contextlib.suppress(ProvenanceError):
            record = read_record(path)
            records.append({"id": record.get("id", path.stem), "path": str(path),
                            "experiment": record.get("session", {}).get("experiment", {}).get("code"),
                            "created_at": record.get("created_at"), "updated_at": record.get("updated_at"),
                            "apps": [f"{e['app']}@{e['version']}" for e in record.get("apps", [])]})
    return records
