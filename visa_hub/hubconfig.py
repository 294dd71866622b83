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
``VISA_HUB_BIND_IP``        address the hub's API listens on (``127.0.0.1``): one that VMs and compute nodes
                            reach (e.g. the hub's address on the instance network, or ``0.0.0.0``)
``VISA_HUB_CONNECT_URL``    URL instances use for the hub's API, e.g. ``http://10.0.0.2:8081`` (default: derived
                            from the bind address); VMs fetch their server token there at first boot
``VISA_DB_URL``             hub database (default SQLite in the data dir; production: ``postgresql://...``)
``VISA_CATALOG``            site catalog YAML (default: the demo catalog)
``VISA_USER_OFFICE_FILE``   User Office YAML for the file backend (default: the demo people)
``VISA_APPS_CATALOG``       the app catalog (files or directories on shared storage, ``:``-separated), passed to
                            instances; ``VISA_APPS_RUNTIME`` ``apptainer``/``local``/``auto``
``VISA_PROVENANCE_DIR``     where the hub keeps provenance records (default: ``provenance`` in the data dir)
``VISA_AUTHENTICATOR``      authenticator entry point (``visa-demo``)
``VISA_SPAWNER``            spawner entry point (``visa-local``)
``VISA_DEMO_PASSWORD``      the demo's shared password (``visa-demo``)
``VISA_KEEP_SERVERS``       ``1`` (default, for production): instances keep running when the hub stops and are
                            re-attached when it starts again; ``0``: stopping the hub stops them (``scripts/demo.sh``
                            sets ``0`` unless told otherwise, so Ctrl-C on the demo leaves nothing running)
``VISA_KEYCLOAK_*``         for ``VISA_AUTHENTICATOR=visa-keycloak``: ``VISA_KEYCLOAK_REALM_URL`` (e.g.
                            ``https://keycloak.ess.eu/realms/ess``), ``VISA_KEYCLOAK_CLIENT_ID`` (``visa-hub``),
                            ``VISA_KEYCLOAK_CLIENT_SECRET``
``VISA_USER_OFFICE_URL``    User Office GraphQL endpoint: switches from the file backend to ``GraphQLUserOffice``,
                            with ``VISA_USER_OFFICE_TOKEN`` (API access token) and ``VISA_USER_OFFICE_AMQP_URL``
                            (RabbitMQ of its events, optional)
``OS_CLOUD``                for ``VISA_SPAWNER=visa-openstack``: the cloud in ``OS_CLIENT_CONFIG_FILE``
                            (a ``clouds.yaml``; the OpenStack simulator writes one, see README)
``VISA_SLURM_SYNC_INTERVAL`` seconds between two ``visa-hub slurm-sync`` runs, started by the hub as a managed service
                            (Slurm accounts per experiment; see docs/slurm.md). Unset: not started
``VISA_PUBLIC_URL``         the hub's URL as people and instances reach it (links in e-mail; default:
                            ``VISA_SUBDOMAIN_HOST``, else the bind URL)
``VISA_SESSIONS_PORT``      port of the sessions service (lifetimes, extensions; default: a free port)
``VISA_SESSIONS_DB_URL``    its database (default: the hub's if that is PostgreSQL, else SQLite in the data dir)
``VISA_SUBDOMAIN_HOST``     per-user origins (``JupyterHub.subdomain_host``), e.g. ``https://visa.ess.eu`` serves
                            alice's instances at ``https://alice.visa.ess.eu`` (needs a wildcard DNS name and
                            certificate); sharing instances between people is only safe with it
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

from . import hubdb
from .restart import configure_restart_notice

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
    c.JupyterHub.hub_ip = env.get("VISA_HUB_BIND_IP", "127.0.0.1")
    c.JupyterHub.hub_port = int(env.get("VISA_HUB_API_PORT", "8081"))
    if env.get("VISA_HUB_CONNECT_URL"):
        c.JupyterHub.hub_connect_url = env["VISA_HUB_CONNECT_URL"]
    _configure_instance_tokens(c)
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{int(env.get('VISA_PROXY_API_PORT', '8001'))}"
    c.ConfigurableHTTPProxy.command = _proxy_command()
    c.ConfigurableHTTPProxy.pid_file = str(data_dir / "jupyterhub-proxy.pid")

    c.JupyterHub.db_url = env.get("VISA_DB_URL") or f"sqlite:///{data_dir / 'jupyterhub.sqlite'}"
    hubdb.configure(c, c.JupyterHub.db_url)
    c.JupyterHub.cookie_secret_file = str(data_dir / "jupyterhub_cookie_secret")
    c.CryptKeeper.keys = [_crypt_key(data_dir, env).encode()]
    c.JupyterHub.cleanup_servers = env.get("VISA_KEEP_SERVERS", "1") != "1"
    c.JupyterHub.log_level = env.get("VISA_LOG_LEVEL", "INFO")

    c.JupyterHub.authenticator_class = env.get("VISA_AUTHENTICATOR", "visa-demo")
    c.JupyterHub.spawner_class = env.get("VISA_SPAWNER", "visa-local")
    _configure_web(c)

    configure_site(c, env)
    c.DemoAuthenticator.user_password = env.get("VISA_DEMO_PASSWORD", "visa-demo")
    c.LocalSpawner.data_dir = str(data_dir)
    c.Spawner.default_url = "/lab"
    c.Spawner.http_timeout = 60
    c.Spawner.start_timeout = 120
    c.OpenStackSpawner.start_timeout = 600  # a VM boots in minutes, not seconds
    _configure_openstack_shares(c, env)
    if env.get("VISA_SLURM_SYNC_INTERVAL"):
        from .slurm.service import slurm_sync_service

        c.JupyterHub.services.append(slurm_sync_service(float(env["VISA_SLURM_SYNC_INTERVAL"]), env=env))
    _configure_hub_pages(c)
    _configure_apps(c, env, data_dir)
    _configure_sessions(c, data_dir, env)
    _configure_sharing(c, env)
    _configure_operations(c)
    configure_restart_notice(c)
    return data_dir


def _configure_openstack_shares(c: Any, env: Mapping[str, str]) -> None:
    """OpenStack homes and experiment data on the site's file server (see OpenStackSpawner.home_source)."""
    if env.get("VISA_OPENSTACK_HOME_SOURCE"):
        c.OpenStackSpawner.home_source = env["VISA_OPENSTACK_HOME_SOURCE"]
    if env.get("VISA_OPENSTACK_DATA_SOURCE"):
        c.OpenStackSpawner.experiment_data_source = env["VISA_OPENSTACK_DATA_SOURCE"]


def _configure_operations(c: Any) -> None:
    """The operator console, the support role and visa-hub's metrics (visa_hub.ops)."""
    from .ops import configure_operations

    configure_operations(c)


def _configure_hub_pages(c: Any) -> None:
    """visa-hub's own hub pages: relaunch and stop an instance after a confirmation (visa_hub.hubpages)."""
    from .hubpages import configure_hub_pages

    configure_hub_pages(c)


def _configure_apps(c: Any, env: Mapping[str, str], data_dir: Path) -> None:
    """Apps: instances read the app catalog from shared storage; the hub keeps a copy of provenance records."""
    from .apps.hubstore import provenance_handlers

    c.JupyterHub.extra_handlers.extend(provenance_handlers(env.get("VISA_PROVENANCE_DIR") or data_dir / "provenance"))
    c.Spawner.environment.update({name: env[name] for name in ("VISA_APPS_CATALOG", "VISA_APPS_RUNTIME")
                                  if env.get(name)})


def configure_site(c: Any, env: Mapping[str, str] | None = None) -> None:
    """The site's catalog and User Office (and Keycloak) from the environment: what the hub and the site tasks
    beside it (``visa-hub slurm-sync``) share."""
    env = os.environ if env is None else env
    if env.get("VISA_CATALOG"):
        c.VisaSite.catalog_file = env["VISA_CATALOG"]
    if env.get("VISA_USER_OFFICE_FILE"):
        c.FileUserOffice.path = env["VISA_USER_OFFICE_FILE"]
    _configure_production_identity(c, env)


def _configure_instance_tokens(c: Any) -> None:
    """The hub endpoint where an instance trades its one-time bootstrap code for its server's API token."""
    from .bootstrap import INSTANCE_TOKEN_PATH

    # A JupyterHub service cannot do this (only the hub issues server tokens and owns their OAuth clients), so
    # it is one of the hub's own handlers; JupyterHub logs that extra_handlers are deprecated.
    c.JupyterHub.extra_handlers.append(  # tornado imports the handler by name
        (f"/api/{INSTANCE_TOKEN_PATH}", "visa_hub.bootstrap_api.InstanceTokenHandler"))


def _configure_sessions(c: Any, data_dir: Path, env: Mapping[str, str]) -> None:
    """The sessions service (lifetimes, extension requests): a managed service with its own role."""
    from .sessions import configure_service

    # with per-user origins the hub (and its services) are reached at the subdomain host
    public_url = (env.get("VISA_PUBLIC_URL") or env.get("VISA_SUBDOMAIN_HOST") or c.JupyterHub.bind_url).rstrip("/")
    configure_service(c, data_dir, public_url, env)


def _configure_sharing(c: Any, env: Mapping[str, str]) -> None:
    """Sharing roles as custom scopes, which a shared visitor's token may carry into the instance; per-user
    origins when ``VISA_SUBDOMAIN_HOST`` is set."""
    from .sharing.roles import CUSTOM_SCOPES, oauth_allowed_scopes

    c.JupyterHub.custom_scopes = {**CUSTOM_SCOPES, **c.JupyterHub.get("custom_scopes", {})}
    c.Spawner.oauth_client_allowed_scopes = oauth_allowed_scopes()
    # the server reads its own shares (JupyterHub puts only a share's access scope into a visitor's token)
    token_scopes = list(c.Spawner.get("server_token_scopes") or ["users:activity!user", "access:servers!server"])
    c.Spawner.server_token_scopes = [*token_scopes, *(["read:shares!server"] if "read:shares!server" not in
                                                      token_scopes else [])]
    if env.get("VISA_SUBDOMAIN_HOST"):
        c.JupyterHub.subdomain_host = env["VISA_SUBDOMAIN_HOST"].rstrip("/")
        c.JupyterHub.subdomain_hook = users_on_subdomains


def users_on_subdomains(name: str, domain: str, kind: str) -> str:
    """``JupyterHub.subdomain_hook``: each person's instances on her own origin, visa-hub's services on the hub's
    (its pages read them, e.g. the home page's "Shared with me"; they are the hub's own code)."""
    from jupyterhub.utils import subdomain_hook_idna

    return domain if kind == "service" else subdomain_hook_idna(name, domain, kind)


def _configure_production_identity(c: Any, env: Mapping[str, str]) -> None:
    """Keycloak and the User Office's GraphQL API, when their environment variables are set."""
    if env.get("VISA_KEYCLOAK_REALM_URL"):
        c.KeycloakAuthenticator.realm_url = env["VISA_KEYCLOAK_REALM_URL"]
        c.KeycloakAuthenticator.client_id = env.get("VISA_KEYCLOAK_CLIENT_ID", "visa-hub")
        if env.get("VISA_KEYCLOAK_CLIENT_SECRET"):
            c.KeycloakAuthenticator.client_secret = env["VISA_KEYCLOAK_CLIENT_SECRET"]
    if env.get("VISA_USER_OFFICE_URL"):
        c.VisaSite.user_office_class = "visa_hub.useroffice.graphql.GraphQLUserOffice"
        c.GraphQLUserOffice.url = env["VISA_USER_OFFICE_URL"]
        if env.get("VISA_USER_OFFICE_TOKEN"):
            c.GraphQLUserOffice.token = env["VISA_USER_OFFICE_TOKEN"]
        if env.get("VISA_USER_OFFICE_AMQP_URL"):
            c.GraphQLUserOffice.amqp_url = env["VISA_USER_OFFICE_AMQP_URL"]


def _configure_web(c: Any) -> None:
    """visa-hub's pages: its look (templates, logo, colours) and the instance dashboard on named servers."""
    from .dashboard import configure_dashboard
    from .look import configure_look

    configure_look(c)
    configure_dashboard(c)
