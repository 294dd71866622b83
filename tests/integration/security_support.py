"""Shared pieces of the security review's isolation tests: who asks (principals), and what counts as a refusal.

A *principal* is one way of reaching the hub, its services or an instance: a person's browser session (cookies
with the right XSRF token), the same cookies sent along by another site's form (no XSRF token) or script (a
made-up XSRF token), a logged-out visitor, or an instance's own server token (``Authorization: token``).
Nothing is mocked: the requests go to a real hub, its sessions service and real instances.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import httpx

from hubtest import HubProcess, UserSession, process_environ, processes_under

SERVICE = "/services/visa-sessions/"
#: What Chromium sends with a form another site's page submits to us (cross-site request forgery).
CROSS_SITE_FORM = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "document"}
#: What Chromium sends with a ``fetch()`` from another page (a script that made up an XSRF token).
CROSS_SITE_FETCH = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Dest": "empty"}


def server_token(hub: HubProcess, user: str, server_name: str) -> str:
    """The API token of ``user``'s running instance ``server_name``, from its process's environment."""
    for pid in processes_under(hub.data_dir):
        env = process_environ(pid)
        if env.get("JUPYTERHUB_USER") == user and env.get("JUPYTERHUB_SERVER_NAME") == server_name \
                and env.get("JUPYTERHUB_API_TOKEN"):
            return env["JUPYTERHUB_API_TOKEN"]
    raise AssertionError(f"no running instance {user}/{server_name} under {hub.data_dir}")


def xsrf_for(session: UserSession, path: str) -> str | None:
    """The XSRF cookie her browser would send with a request to ``path`` (the one with the longest path)."""
    best: tuple[int, str] | None = None
    for cookie in session.http.cookies.jar:
        if cookie.name == "_xsrf" and path.startswith(cookie.path) and (best is None or len(cookie.path) > best[0]):
            best = (len(cookie.path), cookie.value)
    return best[1] if best else None


@dataclass
class Principal:
    """One way of asking: a client, and how it sets its headers for a path."""

    name: str
    client: httpx.Client
    kind: str  # "cookie", "cookie-no-xsrf", "cookie-forged-xsrf", "token", "anonymous"
    session: UserSession | None = None
    token: str | None = None

    def headers(self, path: str) -> dict[str, str]:
        if self.kind == "token":
            return {"Authorization": f"token {self.token}"}
        if self.kind == "cookie-no-xsrf":
            return dict(CROSS_SITE_FORM)
        if self.kind == "cookie-forged-xsrf":
            return {**CROSS_SITE_FETCH, "X-XSRFToken": "2|forged|token|1700000000"}
        if self.kind == "cookie" and self.session is not None:
            token = xsrf_for(self.session, path)
            return {"X-XSRFToken": token} if token else {}
        return {}

    def request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        return self.client.request(method, path, headers=self.headers(path),
                                   json=body if body is not None and not isinstance(body, bytes) else None,
                                   content=body if isinstance(body, bytes) else None)


def refused(response: httpx.Response) -> bool:
    """Whether the answer gives nothing: an error status, or (after redirects) the hub's login page."""
    if response.status_code >= 400:
        return True
    final = response.url.path
    return final.endswith("/hub/login") or final.endswith("/hub/api/oauth2/authorize")


def describe(response: httpx.Response) -> str:
    return f"{response.request.method} {response.request.url} -> {response.status_code} {response.text[:300]!r}"


def login_everywhere(session: UserSession, *, lab: bool = True) -> None:
    """Her browser after she opened the sessions service and (if she has one) her instance: cookies and XSRF."""
    assert session.http.get(SERVICE).status_code == 200
    if lab:
        session.http.get(f"/user/{session.username}/loki/lab")


def environ_of_service(hub: HubProcess) -> dict[str, str]:
    """The sessions service's environment (its own API token), read from /proc."""
    for proc in os.listdir("/proc"):
        if proc.isdigit():
            env = process_environ(int(proc))
            if env.get("JUPYTERHUB_SERVICE_NAME") == "visa-sessions" and env.get("VISA_DATA_DIR") == str(
                    hub.data_dir):
                return env
    return {}
