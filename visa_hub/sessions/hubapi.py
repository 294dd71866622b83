"""The few JupyterHub REST API calls the sessions service makes, with its own token.

Scopes it needs (its role, see :func:`visa_hub.sessions.service_role`): ``list:users`` and ``read:servers`` to
see running servers, ``read:users:activity`` for their activity, ``admin:server_state`` for the session plan
the spawner keeps there (experiment, expiry, owner, the Slurm job), ``read:users`` for the admin flag,
``delete:servers`` to stop an instance. Nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest


class HubUnavailable(RuntimeError):
    """The hub did not answer (e.g. restarting): try again at the next tick."""


def parse_time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class RunningServer:
    """One server the hub lists (``ready``, or starting, stopping or re-checked after a restart), with what its
    spawner keeps in state."""

    user: str
    name: str
    started: dt.datetime
    last_activity: dt.datetime | None
    user_options: dict[str, Any]
    state: dict[str, Any] = field(default_factory=dict)
    ready: bool = True

    @property
    def session(self) -> dict[str, Any]:
        return self.state.get("visa_session") or {}

    @property
    def owner(self) -> dict[str, Any]:
        return self.state.get("visa_owner") or {}

    @property
    def backend(self) -> tuple[str, str | None]:
        """(backend, its handle): ('slurm', job id), ('openstack', server id) or ('local', pid)."""
        if self.state.get("job_id"):
            return "slurm", str(self.state["job_id"])
        if self.state.get("server_id"):
            return "openstack", str(self.state["server_id"])
        if self.state.get("pid"):
            return "local", str(self.state["pid"])
        return "unknown", None


class HubAPI:
    """An async client of the hub's REST API (``JUPYTERHUB_API_URL``) with the service's token."""

    def __init__(self, api_url: str, token: str, timeout: float = 20.0):
        self.api_url = api_url.rstrip("/")
        self._token = token
        self.timeout = timeout
        self.http = AsyncHTTPClient()

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        request = HTTPRequest(
            f"{self.api_url}/{path.lstrip('/')}", method=method,
            headers={"Authorization": f"token {self._token}", "Accept": "application/jupyterhub-pagination+json",
                     "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            request_timeout=self.timeout,
        )
        try:
            response = await self.http.fetch(request)
        except HTTPClientError as exc:
            if exc.code == 599 or exc.code >= 502:
                raise HubUnavailable(f"hub API {method} {path}: {exc}") from None
            raise
        except OSError as exc:
            raise HubUnavailable(f"hub API {method} {path}: {exc}") from None
        return json.loads(response.body) if response.body else None

    async def running_servers(self, *, listed: bool = False) -> list[RunningServer]:
        """Every ready server of every user (one paginated list call); ``listed``: also those the hub lists but
        that are not ready (starting, stopping, or re-checked after a hub restart), with ``ready=False``."""
        servers: list[RunningServer] = []
        offset = 0
        state = "active" if listed else "ready"
        while True:
            page = await self.request("GET", f"users?state={state}&offset={offset}&limit=200")
            items = page["items"] if isinstance(page, dict) else page
            for user in items:
                for name, model in (user.get("servers") or {}).items():
                    if not model.get("started") or not (listed or model.get("ready")):
                        continue
                    servers.append(RunningServer(
                        user=user["name"], name=name, started=parse_time(model["started"]),  # type: ignore[arg-type]
                        last_activity=parse_time(model.get("last_activity")),
                        user_options=model.get("user_options") or {}, state=model.get("state") or {},
                        ready=bool(model.get("ready")),
                    ))
            if not isinstance(page, dict) or not (page.get("_pagination") or {}).get("next"):
                return servers
            offset = page["_pagination"]["next"]["offset"]

    async def user(self, name: str) -> dict[str, Any] | None:
        try:
            return await self.request("GET", f"users/{quote(name, safe='')}")
        except HTTPClientError as exc:
            if exc.code == 404:
                return None
            raise

    async def stop_server(self, user: str, server_name: str) -> None:
        """Ask the hub to stop a server (its spawner frees the backend's resources); 404 = already gone."""
        path = (f"users/{quote(user, safe='')}/servers/{quote(server_name, safe='')}" if server_name
                else f"users/{quote(user, safe='')}/server")
        try:
            await self.request("DELETE", path)
        except HTTPClientError as exc:
            if exc.code not in (400, 404):  # 400: not running any more
                raise
