"""The instance's door to the sessions service: lifetime, warnings and extensions for the labextension.

``GET {base_url}visa/api/lifetime`` and ``POST {base_url}visa/api/lifetime/extend`` forward to the hub's
sessions service (``$VISA_SESSIONS_URL``) with the server's own token (``$JUPYTERHUB_API_TOKEN``), which the
service accepts for this server only. Extending is for the instance's owner. The expiry in every answer reaches
the instance at once (:mod:`.expiry`: its Dask configuration, its environment).
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .expiry import SETTING as EXPIRY_SETTING
from .expiry import expiry_in_answer
from .handlers import AUTH_RESOURCE


class LifetimeHandler(APIHandler):
    """Forward one call to the sessions service about this very server."""

    auth_resource = AUTH_RESOURCE

    async def forward(self, method: str, suffix: str = "", body: dict[str, Any] | None = None) -> None:
        service = os.environ.get("VISA_SESSIONS_URL", "")
        if not service:
            raise web.HTTPError(404, "This server has no sessions service (VISA_SESSIONS_URL is not set).")
        user = os.environ.get("JUPYTERHUB_USER", "")
        server = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
        url = f"{service.rstrip('/')}/api/instances/{quote(user, safe='')}/{quote(server, safe='')}{suffix}"
        request = HTTPRequest(url, method=method, request_timeout=20,
                              headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}",
                                       "Content-Type": "application/json"},
                              body=None if body is None else json.dumps(body))
        try:
            response = await AsyncHTTPClient().fetch(request, raise_error=False)
        except OSError as exc:
            raise web.HTTPError(503, f"The sessions service cannot be reached: {exc}") from None
        except HTTPClientError as exc:  # pragma: no cover - raise_error=False
            raise web.HTTPError(503, str(exc)) from None
        self.set_status(response.code if response.code != 599 else 503)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        if response.code == 599:
            self.finish(json.dumps({"message": "The sessions service cannot be reached right now."}))
        else:
            self._learn_expiry(response.code, response.body)
            self.finish(response.body or b"{}")

    def _learn_expiry(self, code: int, body: bytes | None) -> None:
        follower = self.settings.get(EXPIRY_SETTING)
        value = expiry_in_answer(body or b"") if follower is not None and code == 200 else None
        if value:
            follower.apply(value)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.forward("GET")


class ExtendHandler(LifetimeHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        visitor = self.current_user.username
        if visitor != os.environ.get("JUPYTERHUB_USER"):
            raise web.HTTPError(403, "Only the instance's owner can extend it.")
        data = self.get_json_body() or {}
        body = {"hours": data.get("hours"), "comment": str(data.get("comment") or ""), "actor": visitor}
        await self.forward("POST", "/extend", body)


def setup_lifetime(web_app: Any) -> None:
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [
        (url_path_join(base_url, "visa/api/lifetime"), LifetimeHandler),
        (url_path_join(base_url, "visa/api/lifetime/extend"), ExtendHandler),
    ])
