"""What an instance tells its apps, read from the environment the spawner gives every process in it.

``VISA_APPS_CATALOG``   the site's app catalog: files or directories, separated by ``:`` (shared storage)
``VISA_APPS_RUNTIME``   ``apptainer``, ``local`` (squashfuse + bubblewrap) or ``auto`` (default: apptainer if found)
``VISA_APPS_APPTAINER`` the apptainer command (default ``apptainer``)
``VISA_APPS_USER_FILE`` her registered images (default ``~/.config/visa-hub/apps.yaml``)
``VISA_APPS_STATE_DIR`` provenance records, digest cache, runtime mounts (default ``~/.local/share/visa-hub``)
``VISA_APPS_CYCLE``     the proposal cycle whose pins are the defaults (default: the cycle of the experiment's start)
``VISA_SESSION``        the session (experiment, instrument, flavour with its GPUs, ...), see :mod:`visa_hub.policy`
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class AppSettings:
    catalog_locations: tuple[str, ...] = ()
    runtime: str = "auto"
    apptainer: str = "apptainer"
    home: Path = field(default_factory=Path.home)
    user: str = ""
    user_file: Path | None = None
    state_dir: Path | None = None
    cycle: str | None = None
    session: dict[str, Any] | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AppSettings:
        env = os.environ if environ is None else environ
        try:
            entry = pwd.getpwuid(os.getuid())
            user, home = entry.pw_name, Path(env.get("HOME") or entry.pw_dir)
        except KeyError:
            user, home = str(os.getuid()), Path(env.get("HOME", "/"))
        session = None
        if env.get("VISA_SESSION"):
            try:
                session = json.loads(env["VISA_SESSION"])
            except ValueError:
                session = None
        return cls(
            catalog_locations=tuple(p for p in env.get("VISA_APPS_CATALOG", "").split(os.pathsep) if p),
            runtime=env.get("VISA_APPS_RUNTIME", "auto") or "auto",
            apptainer=env.get("VISA_APPS_APPTAINER", "apptainer") or "apptainer",
            home=home,
            user=env.get("JUPYTERHUB_USER") or env.get("USER") or user,
            user_file=Path(env["VISA_APPS_USER_FILE"]) if env.get("VISA_APPS_USER_FILE") else None,
            state_dir=Path(env["VISA_APPS_STATE_DIR"]) if env.get("VISA_APPS_STATE_DIR") else None,
            cycle=env.get("VISA_APPS_CYCLE") or None,
            session=session if isinstance(session, dict) else None,
        )

    # -- derived -------------------------------------------------------------------------------------------
    @property
    def registry_file(self) -> Path:
        return self.user_file or self.home / ".config" / "visa-hub" / "apps.yaml"

    @property
    def data_dir(self) -> Path:
        return self.state_dir or self.home / ".local" / "share" / "visa-hub"

    @property
    def provenance_dir(self) -> Path:
        return self.data_dir / "provenance"

    def private_data_dir(self) -> Path:
        """``data_dir``, made hers only (0700): its provenance records and app logs name her experiment, her files
        and her arguments, and sites often create homes that everyone may read."""
        directory = self.data_dir
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if directory.stat().st_uid == os.geteuid():
            directory.chmod(0o700)
        return directory

    @property
    def experiment(self) -> dict[str, Any]:
        return (self.session or {}).get("experiment") or {}

    @property
    def experiment_code(self) -> str | None:
        return self.experiment.get("code") or None

    @property
    def instrument(self) -> str | None:
        return (self.session or {}).get("instrument") or self.experiment.get("instrument") or None

    @property
    def experiment_start(self) -> dt.date | None:
        start = self.experiment.get("starts_at")
        try:
            return dt.datetime.fromisoformat(start).date() if start else None
        except ValueError:
            return None

    @property
    def gpu(self) -> bool:
        """GPU flavours give apps the GPU (apptainer ``--nv``)."""
        flavour = (self.session or {}).get("flavour") or {}
        return bool(isinstance(flavour, dict) and flavour.get("gpus"))

    def template_values(self) -> dict[str, str]:
        """What site bind templates may use."""
        return {"experiment": self.experiment_code or "", "instrument": self.instrument or "",
                "instrument_lower": (self.instrument or "").lower(), "user": self.user, "home": str(self.home)}
