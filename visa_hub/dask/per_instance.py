"""Where one instance keeps its Dask files: each of a person's instances its own. Pure: no I/O.

A person may run several instances at once (JupyterHub named servers, one per experiment), and they share her
home: local processes, Slurm jobs on a shared file system. So what dask reads for a session lives in a directory
named after the instance's JupyterHub server name (``JUPYTERHUB_SERVER_NAME``, which every spawner sets):

- ``~/.config/dask/instances/<instance>/``: dask's configuration of this instance. The instance's server
  extension points ``DASK_CONFIG`` there before any kernel or terminal starts, so they and the Dask workers they
  submit read this instance's Slurm account, profiles and credentials — not those of her other instances. Dask
  still reads ``~/.config/dask`` (her own settings, for all her instances) first.
- ``~/.visa/dask/instances/<instance>/``: its TLS credentials (:mod:`visa_hub.dask.credentials`).

The default server is ``_default``, a name no named server has (JupyterHub's server names start with a letter;
other characters than letters, digits and ``-`` are escaped as ``%XX``, so no name leaves its directory).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

SERVER_NAME_VARIABLE = "JUPYTERHUB_SERVER_NAME"
DEFAULT_INSTANCE = "_default"
_UNSAFE = re.compile(r"[^A-Za-z0-9-]")


def instance_key(environ: Mapping[str, str]) -> str:
    """This instance's directory name: its server name (escaped), ``_default`` for the default server."""
    name = environ.get(SERVER_NAME_VARIABLE, "")
    if not name:
        return DEFAULT_INSTANCE
    return _UNSAFE.sub(lambda match: "".join(f"%{byte:02X}" for byte in match.group().encode()), name)


def home_of(environ: Mapping[str, str]) -> Path:
    """The instance's home (``$HOME``, else this process's)."""
    return Path(environ.get("HOME") or Path.home())


def instance_config_dir(environ: Mapping[str, str]) -> Path:
    """``~/.config/dask/instances/<instance>``: this instance's dask configuration directory."""
    return home_of(environ) / ".config" / "dask" / "instances" / instance_key(environ)


def config_dir(environ: Mapping[str, str]) -> Path:
    """Where the instance's configuration goes: ``$DASK_CONFIG`` when set (by the server extension, or an
    operator who chose a place), else :func:`instance_config_dir`."""
    if environ.get("DASK_CONFIG"):
        return Path(environ["DASK_CONFIG"]).expanduser()
    return instance_config_dir(environ)


def shared_config_dir(environ: Mapping[str, str]) -> Path:
    """``~/.config/dask``: read by dask in every instance (and where visa-hub wrote before instances had their own)."""
    return home_of(environ) / ".config" / "dask"


def credentials_dir(home: Path, instance: str = DEFAULT_INSTANCE) -> Path:
    """``~/.visa/dask/instances/<instance>``: this instance's TLS credentials, one directory per start."""
    return home / ".visa" / "dask" / "instances" / instance
