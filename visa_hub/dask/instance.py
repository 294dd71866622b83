"""Write the instance's dask configuration when it starts: ``python -m visa_hub.dask.instance``.

Run before the Jupyter server starts (the Slurm backend does it in the job script; other backends call
:func:`write_dask_config` at start-up), so that dask, dask-jobqueue and dask-labextension read it on import.
The file goes into dask's own configuration directory (``$DASK_CONFIG``, default ``~/.config/dask``) as
``visa-hub.yaml``; it is rewritten at every instance start, so it always describes the current session: new TLS
credentials (:mod:`visa_hub.dask.credentials`) and the session's expiry (``VISA_EXPIRES_AT``).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from .config import ENV_VARIABLE, DaskSession, DaskSessionError, SessionLock, dask_config
from .credentials import write_session_credentials
from .walltime import parse_expiry

EXPIRY_VARIABLE = "VISA_EXPIRES_AT"

FILE_NAME = "visa-hub.yaml"
HEADER = (
    "# Written by visa-hub when this instance started: the Dask profiles of experiment {experiment}.\n"
    "# It is replaced at every start; put your own settings in another file of this directory.\n"
)


def config_dir(environ: Mapping[str, str]) -> Path:
    """Dask's user configuration directory (dask reads ``$DASK_CONFIG``, else ``~/.config/dask``)."""
    if environ.get("DASK_CONFIG"):
        return Path(environ["DASK_CONFIG"]).expanduser()
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".config" / "dask"


def write_dask_config(
    environ: Mapping[str, str] | None = None, python: str | None = None, directory: Path | None = None
) -> Path | None:
    """Write ``visa-hub.yaml`` for the session in ``environ`` (default: this process's); its path.

    ``None`` (and nothing written) when the instance has no Dask session (``VISA_DASK`` unset).
    """
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_VARIABLE)
    if not text:
        return None
    session = DaskSession.from_json(text)
    expires_at = _expiry(environ)
    directory = directory or config_dir(environ)
    home = Path(environ.get("HOME") or Path.home())
    owner = environ.get("JUPYTERHUB_USER") or environ.get("USER") or home.name
    now = dt.datetime.now(dt.UTC)
    credentials = write_session_credentials(home, owner, now)
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
        out.write(HEADER.format(experiment=session.experiment) + yaml.safe_dump(config, sort_keys=False))
    partial.replace(path)  # atomic: a kernel starting now never reads half a file
    return path


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
