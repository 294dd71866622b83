"""visa-hub's hub configuration: the embedded demo defaults, switched to production by environment.

``jupyterhub_config.py`` at the top of the repository calls :func:`configure`. An operator's own config
file can do the same and then override anything::

    from visa_hub.hubconfig import configure
    configure(c)
    c.JupyterHub.authenticator_class = "visa-keycloak"

Environment variables (all optional; the defaults give the demo on http://127.0.0.1:8000):

==========================  ===============================================================================
``VISA_DATA_DIR``           everything the hub writes: database, secrets, users' homes (default ``./data``)
``VISA_HUB_IP``             public address (``127.0.0.1``); ``VISA_HUB_PORT`` public port (``8000``)
``VISA_HUB_API_PORT``       the hub's internal API port (``8081``); ``VISA_PROXY_API_PORT`` (``8001``)
``VISA_DB_URL``             hub database (default SQLite in the data dir; production: ``postgresql://...``)
``VISA_CATALOG``            site catalog YAML (default: the demo catalog)
``VISA_USER_OFFICE_FILE``   User Office YAML for the file backend (default: the demo people)
``VISA_AUTHENTICATOR``      authenticator entry point (``visa-demo``)
``VISA_SPAWNER``            spawner entry point (``visa-local``)
``VISA_DEMO_PASSWORD``      the demo's shared password (``visa-demo``)
``VISA_KEEP_SERVERS``       ``1`` (default): instances keep running when the hub stops and are re-attached
``VISA_LOG_LEVEL``          the hub's log level (``INFO``; ``DEBUG`` never shows tokens or passwords)
``JUPYTERHUB_CRYPT_KEY``    key for encrypted auth_state (default: generated once into the data dir)
==========================  ===============================================================================
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def _crypt_key(data_dir: Path, env: Mapping[str, str]) -> str:
    """The auth_state encryption key: from the environment, else generated once and kept private."""
    if env.get("JUPYTERHUB_CRYPT_KEY"):
        return env["JUPYTERHUB_CRYPT_KEY"]
    key_file = data_dir / "jupyterhub_crypt_key"
    if not key_file.exists():
        key_file.touch(mode=0o600)
        key_file.write_text(secrets.token_hex(32))
    return key_file.read_text().strip()


def _proxy_command() -> list[str]:
    local = REPO_ROOT / "node_modules" / ".bin" / "configurable-http-proxy"
    if local.exists():
        return [str(local)]
    found = shutil.which("configurable-http-proxy")
    if not found:
        raise RuntimeError(
            "configurable-http-proxy is not installed: run `npm install` in the visa-hub checkout "
            "(make install does it)"
        )
    return [found]


def configure(c: Any, env: Mapping[str, str] | None = None) -> Path:
    """Apply visa-hub's defaults to a JupyterHub config object ``c``; returns the data directory."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("VISA_DATA_DIR", "data")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)

    ip, port = env.get("VISA_HUB_IP", "127.0.0.1"), int(env.get("VISA_HUB_PORT", "8000"))
    c.JupyterHub.bind_url = f"http://{ip}:{port}"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = int(env.get("VISA_HUB_API_PORT", "8081"))
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env.get('VISA_PROXY_API_PORT', '8001'))}"
    c.ConfigurableHTTPProxy.command = _proxy_command()
    c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")

    c.JupyterHub.db_url = env.get("VISA_DB_URL") or f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
    c.CryptKeeper.keys = [_crypt_key(data_dir, env).encode()]
    c.JupyterHub.cleanup_servers = env.get("VISA_KEEP_SERVERS", "1") != "1"
    c.JupyterHub.log_level = env.get("VISA_LOG_LEVEL", "INFO")

    c.JupyterHub.authenticator_class = env.get("VISA_AUTHENTICATOR", "visa-demo")
    c.JupyterHub.spawner_class = env.get("VISA_SPAWNER", "visa-local")
    c.JupyterHub.template_paths = [str(Path(__file__).parent / "templates")]
    c.JupyterHub.template_vars = {"announcement_login": "visa-hub — ESS data analysis"}

    if env.get("VISA_CATALOG"):
        c.VisaSite.catalog_file = env["VISA_CATALOG"]
    if env.get("VISA_USER_OFFICE_FILE"):
        c.FileUserOffice.path = env["VISA_USER_OFFICE_FILE"]
    c.DemoAuthenticator.user_password = env.get("VISA_DEMO_PASSWORD", "visa-demo")
    c.LocalSpawner.data_dir = str(data_dir)
    c.Spawner.default_url = "/lab"
    c.Spawner.http_timeout = 60
    c.Spawner.start_timeout = 120
    return data_dir
