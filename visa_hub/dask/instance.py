"""Write the instance's dask configuration when it starts.

visa-hub's server extension calls :func:`use_instance_config` when the instance's Jupyter server starts, on every
backend: it points ``DASK_CONFIG`` at this instance's own directory (``~/.config/dask/instances/<instance>``, see
:mod:`visa_hub.dask.per_instance`) in the server's environment, which its kernels, terminals and the Dask worker
jobs they submit inherit, and writes ``visa-hub.yaml`` there — so dask, dask-jobqueue and dask-labextension read
this instance's Slurm account and profiles, never those of her other instances. The file is rewritten at every
start of the instance, so it always describes the current session: new TLS credentials
(:mod:`visa_hub.dask.credentials`) and the session's expiry (``VISA_EXPIRES_AT``).

When the session's lifetime is extended (or shortened), :func:`move_expiry` rewrites the file with the new expiry
and the same credentials: the workers a running cluster starts later still join its scheduler, and clusters made
from now on cut their walltimes at the new end.

``python -m visa_hub.dask.instance`` writes it from a shell (to ``$DASK_CONFIG`` when set, else the instance's
directory) and prints where.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path

import yaml

from .config import ENV_VARIABLE, DaskSession, DaskSessionError, SessionLock, dask_config
from .credentials import write_session_credentials
from .per_instance import (
    SERVER_NAME_VARIABLE,
    config_dir,
    home_of,
    instance_config_dir,
    instance_key,
    shared_config_dir,
)
from .walltime import parse_expiry

EXPIRY_VARIABLE = "VISA_EXPIRES_AT"

FILE_NAME = "visa-hub.yaml"
MARK = "# Written by visa-hub"
HEADER = (
    MARK + " when {instance} started: the Dask profiles of experiment {experiment}.\n"
    "# It is replaced at every start and when the session's lifetime changes; put your own settings into another\n"
    "# file of this directory (this instance only) or of ~/.config/dask (all your instances).\n"
)


def use_instance_config(environ: MutableMapping[str, str] | None = None) -> Path | None:
    """At server start: ``DASK_CONFIG`` → this instance's directory (unless already set), then write the config.

    ``environ`` (default: this process's) is changed in place, so that what the server starts afterwards — kernels,
    terminals, Dask workers — inherits it. ``None`` (and nothing changed) outside a visa-hub session with Dask.
    """
    environ = os.environ if environ is None else environ
    if not environ.get(ENV_VARIABLE):
        return None
    environ.setdefault("DASK_CONFIG", str(instance_config_dir(environ)))
    return write_dask_config(environ)


def write_dask_config(
    environ: Mapping[str, str] | None = None, python: str | None = None, directory: Path | None = None
) -> Path | None:
    """Write ``visa-hub.yaml`` for the session in ``environ`` (default: this process's); its path.

    It goes into ``directory``, else ``$DASK_CONFIG``, else the instance's own directory. ``None`` (and nothing
    written) when the instance has no Dask session (``VISA_DASK`` unset).
    """
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_VARIABLE)
    if not text:
        return None
    session = DaskSession.from_json(text)
    expires_at = _expiry(environ)
    directory = directory or config_dir(environ)
    home = home_of(environ)
    owner = environ.get("JUPYTERHUB_USER") or environ.get("USER") or home.name
    now = dt.datetime.now(dt.UTC)
    credentials = write_session_credentials(home, owner, now, instance=instance_key(environ))
    lock = SessionLock(str(credentials.ca_file), str(credentials.cert_file), str(credentials.key_file),
                       expires_at=expires_at)
    path = _write(environ, session, lock, now, python or sys.executable, directory / FILE_NAME)
    _remove_shared_config(environ, keep=path)
    return path


def move_expiry(expires_at: dt.datetime, environ: MutableMapping[str, str] | None = None) -> Path | None:
    """The session's lifetime changed: rewrite this instance's ``visa-hub.yaml`` with the new expiry.

    The TLS credentials stay (the files named in the written configuration): the schedulers of running clusters
    trust only them, so workers they start later must present the same. ``VISA_EXPIRES_AT`` in ``environ``
    (default: this process's) is set too, so kernels and terminals started from now on see the new end. Returns
    the file's path; ``None`` when the instance has no Dask session (nothing written). The file is written again
    from scratch, with new credentials, only when it is missing or names credentials that are gone.
    """
    environ = os.environ if environ is None else environ
    environ[EXPIRY_VARIABLE] = expires_at.astimezone(dt.UTC).isoformat()
    text = environ.get(ENV_VARIABLE)
    if not text:
        return None
    path = config_dir(environ) / FILE_NAME
    lock = _written_lock(path, expires_at)
    if lock is None:  # nothing usable to keep: as at start
        return write_dask_config(environ)
    now = dt.datetime.now(dt.UTC)
    return _write(environ, DaskSession.from_json(text), lock, now, sys.executable, path)


def written_expiry(path: Path) -> dt.datetime | None:
    """The session's expiry as ``visa-hub.yaml`` at ``path`` says now (``None``: no end, or no such file)."""
    try:
        written = yaml.safe_load(path.read_text()) or {}
        value = written["visa-hub"]["dask"]["expires-at"]
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    return parse_expiry(value) if value else None


def _written_lock(path: Path, expires_at: dt.datetime) -> SessionLock | None:
    """The credentials ``path`` names, with a new expiry; ``None`` if the file or the credentials are gone."""
    try:
        tls = (yaml.safe_load(path.read_text()) or {})["distributed"]["comm"]["tls"]
        files = (tls["ca-file"], tls["client"]["cert"], tls["client"]["key"])
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        return None
    if not all(isinstance(f, str) and os.access(f, os.R_OK) for f in files):
        return None
    return SessionLock(*files, expires_at=expires_at)


def _write(environ: Mapping[str, str], session: DaskSession, lock: SessionLock, now: dt.datetime, python: str,
           path: Path) -> Path:
    home = home_of(environ)
    logs = home / "dask-worker-logs"  # worker logs name tasks, addresses and errors: hers only
    logs.mkdir(mode=0o700, exist_ok=True)
    logs.chmod(0o700)
    config = dask_config(session, lock, now, python=python, log_directory=str(logs))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".yaml.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # hers: it names her credentials
    with os.fdopen(fd, "w") as out:
        out.write(HEADER.format(instance=_label(environ), experiment=session.experiment)
                  + yaml.safe_dump(config, sort_keys=False))
    partial.replace(path)  # atomic: a kernel starting now never reads half a file
    return path


def _label(environ: Mapping[str, str]) -> str:
    name = environ.get(SERVER_NAME_VARIABLE)
    return f"instance {name}" if name else "this instance"


def _remove_shared_config(environ: Mapping[str, str], keep: Path) -> None:
    """Remove ``~/.config/dask/visa-hub.yaml`` that earlier versions wrote for all instances at once.

    Dask reads ``~/.config/dask`` in every instance, below the instance's own directory: such a file would add its
    experiment's profiles (and account) to this instance's. Only a file visa-hub wrote is removed.
    """
    shared = shared_config_dir(environ) / FILE_NAME
    if shared == keep:
        return
    with contextlib.suppress(OSError):
        with shared.open() as file:
            written_by_us = file.read(len(MARK)) == MARK
        if written_by_us:
            shared.unlink()


def _expiry(environ: Mapping[str, str]) -> dt.datetime | None:
    value = environ.get(EXPIRY_VARIABLE)
    if not value:
        return None
    try:
        return parse_expiry(value)
    except ValueError as exc:
        raise DaskSessionError(f"{EXPIRY_VARIABLE}: {exc}") from None


def main() -> int:
    try:
        path = write_dask_config()
    except (OSError, ValueError) as exc:
        # never stop the instance from starting: Lab works without Dask; say what is wrong in its log
        print(f"visa-hub: could not write the Dask configuration: {exc}", file=sys.stderr)
        return 0
    if path:
        print(f"visa-hub: Dask configuration for this session written to {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
