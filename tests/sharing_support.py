"""Helpers for the sharing tests: a hub whose test service grants shares, and people visiting shared servers."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx

from hubtest import HubProcess, UserSession, free_port
from visa_hub.sharing.roles import share_scopes

SHARING_CONFIG = Path(__file__).with_name("sharing_hub_config.py")


@contextlib.contextmanager
def sharing_hub(data_dir: Path, subdomains: bool = False, config_file: Path = SHARING_CONFIG,
                **env: str) -> Iterator[tuple[HubProcess, Sharer]]:
    """A real hub (visa-hub's config + a share-granting test service); stopped with its instances afterwards.

    ``subdomains``: per-user origins (``JupyterHub.subdomain_host`` = ``http://localhost:<port>``; alice's
    instance is then at ``http://alice.localhost:<port>``, which Chromium resolves to this machine).
    ``config_file``: a test's own config that loads ``SHARING_CONFIG`` and adds what it needs.
    """
    token = secrets.token_hex(16)
    port = free_port()
    if subdomains:
        env = {"VISA_SUBDOMAIN_HOST": f"http://localhost:{port}", **env}
    hub = HubProcess(data_dir, config_file=config_file, port=port,
                     extra_env={"VISA_TEST_SHARING_TOKEN": token, **env})
    try:
        hub.start()
        sharer = Sharer(hub, token)
        yield hub, sharer
        sharer.close()
    finally:
        hub.stop()
        hub.kill_instances()


class Sharer:
    """Grants and revokes shares through the hub's REST API, as visa-hub's sessions service does."""

    def __init__(self, hub: HubProcess, token: str):
        self.http = httpx.Client(base_url=f"{hub.url}/hub/api/", headers={"Authorization": f"token {token}"},
                                 timeout=30)

    def close(self) -> None:
        self.http.close()

    def grant(self, owner: str, user: str, role: str, server: str = "") -> dict:
        response = self.http.post(f"shares/{owner}/{server}", json={"user": user,
                                                                     "scopes": share_scopes(role, owner, server)})
        assert response.status_code == 200, response.text
        return response.json()

    def revoke(self, owner: str, user: str, server: str = "") -> None:
        response = self.http.patch(f"shares/{owner}/{server}", json={"user": user})
        assert response.status_code == 200, response.text


def confirm_oauth(session: UserSession, response: httpx.Response) -> httpx.Response:
    """JupyterHub asks a person once before another user's server may identify her: say yes."""
    if "Authorize access" not in response.text or "/oauth2/authorize" not in str(response.url):
        return response
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', response.text).group(1)
    scopes = re.findall(r'<input type="hidden" name="scopes" value="([^"]+)"', response.text)
    return session.http.post(str(response.url), data={"_xsrf": xsrf, "scopes": scopes})


def visit(session: UserSession, path: str) -> httpx.Response:
    """GET a path on the hub's origin as this person, through the OAuth dance with the server if needed."""
    return confirm_oauth(session, session.http.get(path))


def server_xsrf(session: UserSession, owner: str, server: str = "") -> dict[str, str]:
    prefix = f"/user/{owner}/" + (f"{server}/" if server else "")
    token = session.http.cookies.get("_xsrf", path=prefix)
    return {"X-XSRFToken": token} if token else {}


def ws_url(hub: HubProcess, path: str) -> str:
    return urljoin(hub.url.replace("http://", "ws://") + "/", path.lstrip("/"))


# -- every route of an instance, for the table-driven guest test ------------------------------------------------
ROUTE_LISTER = r"""
import inspect, json, sys
from jupyter_server.serverapp import ServerApp
from tornado.web import RequestHandler
from tornado.websocket import WebSocketHandler
app = ServerApp.instance()
app.initialize(argv=["--ServerApp.port=0", "--allow-root", "--ServerApp.base_url=/user/alice/",
                     "--ServerApp.open_browser=False"])
from visa_hub.singleuser.sharing.handlers import setup_handlers
setup_handlers(app.web_app)
routes = []
for rule in app.web_app.default_router.rules:
    for r in getattr(rule.target, "rules", []):
        target = r.target
        if not isinstance(target, type):
            continue
        methods = [m for m in ("get", "post", "put", "patch", "delete")
                   if getattr(target, m) is not getattr(RequestHandler, m)]
        routes.append({"pattern": r.matcher.regex.pattern, "handler": f"{target.__module__}.{target.__name__}",
                       "websocket": issubclass(target, WebSocketHandler), "methods": methods})
json.dump(routes, sys.stdout)
"""


def instance_routes(tmp: Path) -> list[dict]:
    """Every route a visa-hub instance serves (its Jupyter Server with every extension of this environment)."""
    import json
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "JUPYTER_"))}
    env |= {"JUPYTER_CONFIG_DIR": str(tmp / "cfg"), "JUPYTER_DATA_DIR": str(tmp / "data"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "rt")}
    out = subprocess.run([sys.executable, "-c", ROUTE_LISTER], env=env, cwd=tmp, capture_output=True, timeout=120,
                         check=True)
    return json.loads(out.stdout)


def sample_path(pattern: str) -> str:
    """A concrete path the route ``pattern`` matches (simple, URL-safe characters)."""
    import re._parser as sre  # the regex parser behind re; stable across 3.11+

    def render(items) -> str:
        out = []
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name in ("NOT_LITERAL", "ANY"):
                out.append("a")
            elif name == "IN":
                out.append(_pick(arg))
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                low, _high, sub = arg
                out.append(render(sub) * max(low, 1) if low or _prefer_one(sub) else "")
            elif name == "SUBPATTERN":
                out.append(render(arg[-1]))
            elif name == "BRANCH":
                out.append(render(arg[1][0]))
            elif name == "CATEGORY":
                out.append("1" if "DIGIT" in str(arg) else "a")
        return "".join(out)

    def _prefer_one(sub) -> bool:
        rendered = render(sub)
        return rendered not in ("", "/")

    def _pick(arg) -> str:
        for op, value in arg:
            name = str(op)
            if name == "CATEGORY":
                return "1" if "DIGIT" in str(value) else "a"
            if name == "RANGE":
                return chr(value[0])
            if name == "LITERAL" and chr(value) not in "/:@":
                return chr(value)
        return "a"

    return render(sre.parse(pattern.rstrip("$")))
