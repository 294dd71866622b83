"""Write the instance's dask configuration when it starts: ``python -m visa_hub.dask.instance``.

Run before the Jupyter server starts (the Slurm backend does it in the job script; other backends call
:func:`write_dask_config` at start-up), so that dask, dask-jobqueue and dask-labextension read it on import.
The file goes into dask's own configuration directory (``$DASK_CONFIG``, default ``~/.config/dask``) as
``visa-hub.yaml``; it is rewritten at every instance start, so it always describes the current session.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import yaml

from .config import ENV_VARIABLE, DaskSession, dask_config

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
    directory = directory or config_dir(environ)
    home = Path(environ.get("HOME") or Path.home())
    config = dask_config(
        session, python=python or sys.executable, log_directory=str(home / "dask-worker-logs")
    )
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / FILE_NAME
    partial = path.with_suffix(".yaml.partial")
    partial.write_text(HEADER.format(experiment=session.experiment) + yaml.safe_dump(config, sort_keys=False))
    partial.replace(path)  # atomic: a kernel starting now never reads half a file
    return path


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
