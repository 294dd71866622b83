"""Write the instance's dask configuration when it starts.

visa-hub's server extension calls :func:`use_instance_config` when the instance's Jupyter server starts, on every
backend: it points ``DASK_CONFIG`` at this instance's own directory (``~/.config/dask/instances/<instance>``, see
:mod:`visa_hub.dask.per_instance`) in the server's environment, which its kernels, terminals and the Dask worker
jobs they submit inherit, and writes ``visa-hub.yaml`` there — so dask, dask-jobqueue and dask-labextension read
this instance's Slurm account and profiles, never those of her other instances. The file is rewritten at every
start of the instance, so it always describes the current session: new TLS credentials
(:mod:`visa_hub.dask.credentials`) and the session's expiry (``VISA_EXPIRES_AT``).

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
    "# It is replaced at every start; put your own settings into another file of this directory (this instance\n"
    "# only) or of ~/.config/dask (all your instances).\n"
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
    logs = home / "dask-worker-logs"  # worker logs name tasks, addresses and errors: hers only
    logs.mkdir(mode=0o700, exist_ok=True)
    logs.chmod(0o700)
    config = dask_config(session, lock, now, python=python or sys.executable, log_directory=str(logs))
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    partial = path.with_suffix(".yaml.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # hers: it names her credentials
    with os.fdopen(fd, "w") as out:
        out.write(HEADER.format(instance=_label(environ), experiment=session.experiment)
                  + yaml.safe_dump(config, sort_keys=False))
    partial.replace(path)  # atomic: a kernel starting now never reads half a file
    _remove_shared_config(environ, keep=path)
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
