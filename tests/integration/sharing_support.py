"""Helpers for the sharing tests: a hub whose test service grants shares, and people visiting shared servers."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx

from hubtest import HubProcess, UserSession
from visa_hub.sharing.roles import share_scopes

SHARING_CONFIG = Path(__file__).with_name("sharing_hub_config.py")


@contextlib.contextmanager
def sharing_hub(data_dir: Path, **env: str) -> Iterator[tuple[HubProcess, Sharer]]:
    """A real hub (visa-hub's config + a share-granting test service); stopped with its instances afterwards."""
    token = secrets.token_hex(16)
    hub = HubProcess(data_dir, config_file=SHARING_CONFIG, extra_env={"VISA_TEST_SHARING_TOKEN": token, **env})
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
