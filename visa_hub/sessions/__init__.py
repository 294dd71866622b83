"""visa-hub's hub-side sessions service: lifetimes, inactivity and membership stops, extension requests, audit.

A JupyterHub managed service (``visa-sessions``) with its own token and a least-privilege role; its state
lives in SQLAlchemy (SQLite in the data directory, or the hub's PostgreSQL). Modules:

- :mod:`.lifetime`   the pure rules: (instance facts, catalog limits, warnings sent, now) → warn / stop
- :mod:`.service`    follows running instances through the hub's API, warns, stops, extends, answers requests
- :mod:`.db`         the tables (instances, warnings sent, extension requests, audit, last spawn options)
- :mod:`.hubapi`     the hub REST calls it makes; :mod:`.backends` a Slurm job's time limit
- :mod:`.mailer`     SMTP with STARTTLS/login and templates; :mod:`.handlers` + ``pages/`` the API and pages
- :mod:`.app`        the process (``python -m visa_hub.sessions --hub-config jupyterhub_config.py``)

Shares, support requests (issue 12) belong here too: new tables in :mod:`.db`, handlers beside the lifetime ones.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SERVICE_NAME = "visa-sessions"

#: What the service may do through the hub's API, and nothing more (see :mod:`.hubapi`).
SERVICE_SCOPES = [
    "list:users", "read:users", "read:users:activity", "read:servers", "delete:servers", "admin:server_state",
]


def _sharing_scopes() -> list[str]:
    from .sharing import SHARING_SCOPES  # granting and revoking shares (see visa_hub.sessions.sharing)

    return SHARING_SCOPES

# environment the service needs from the hub's (JupyterHub passes only a few variables to services)
_PASSED_PREFIXES = ("VISA_", "SLURM_", "JUPYTERHUB_CRYPT_KEY")


def hub_config_file() -> str:
    """The config file the running hub was started with (the service reads the same one)."""
    try:
        from jupyterhub.app import JupyterHub

        if JupyterHub.initialized():
            return str(Path(JupyterHub.instance().config_file).resolve())
    except ImportError:  # pragma: no cover
        pass
    return str(Path(os.environ.get("VISA_HUB_CONFIG", "jupyterhub_config.py")).resolve())


def configure_service(c: Any, data_dir: Path, public_url: str, env: Mapping[str, str]) -> None:
    """Register the managed service and its role in a JupyterHub config ``c`` (additive)."""
    from jupyterhub.utils import random_port

    port = int(env.get("VISA_SESSIONS_PORT") or 0)
    taken = {int(env.get(name, default)) for name, default in
             (("VISA_HUB_PORT", 8000), ("VISA_HUB_API_PORT", 8081), ("VISA_PROXY_API_PORT", 8001))}
    while not port or port in taken:  # the hub's own ports are not bound yet when this runs: never take one
        port = random_port()
    environment = {k: v for k, v in env.items() if k.startswith(_PASSED_PREFIXES)}
    environment.update({"VISA_DATA_DIR": str(data_dir), "VISA_PUBLIC_URL": public_url})
    # production: the service's tables (visa_*) in the hub's own PostgreSQL database, unless told otherwise
    db_url = env.get("VISA_SESSIONS_DB_URL") or (env.get("VISA_DB_URL", "") if env.get("VISA_DB_URL", "").startswith(
        "postgres") else "")
    if db_url:
        c.VisaSessions.db_url = db_url
    c.JupyterHub.services.append({
        "name": SERVICE_NAME,
        "url": f"http://127.0.0.1:{port}",
        "command": [sys.executable, "-m", "visa_hub.sessions", "--hub-config", hub_config_file()],
        "environment": environment,
        "cwd": os.getcwd(),
        "oauth_no_confirm": True,
        "display": True,
        "info": {"description": "Lifetimes of your instances, extensions, and the administrators' page"},
    })
    c.JupyterHub.load_roles.append({
        "name": SERVICE_NAME,
        "description": "visa-hub's sessions service: follows instances' lifetimes and stops them",
        "scopes": [*SERVICE_SCOPES, *_sharing_scopes()],
        "services": [SERVICE_NAME],
    })
    # every person may use the service (her own instances; the service decides what else she may see)
    c.JupyterHub.load_roles.append({
        "name": "user",
        "description": "Standard user privileges, and visa-hub's sessions service",
        "scopes": ["self", f"access:services!service={SERVICE_NAME}"],
    })
    # instances reach the service through the proxy (their server extension forwards the labextension's calls)
    c.Spawner.environment.update({"VISA_SESSIONS_URL": f"{public_url}/services/{SERVICE_NAME}/"})
