"""The instance's door to the sessions service: lifetime, warnings and extensions for the labextension.

``GET {base_url}visa/api/lifetime`` and ``POST {base_url}visa/api/lifetime/extend`` forward to the hub's
sessions service (:mod:`.sessions_client`: ``$VISA_SESSIONS_URL``, with the server's own token, which the
service accepts for this server only). Extending is for the instance's owner. The expiry in every answer reaches
the instance at once (:mod:`.expiry`: its Dask configuration, its environment).
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .expiry import SETTING as EXPIRY_SETTING
from .expiry import expiry_in_answer
from .handlers import AUTH_RESOURCE
from .sessions_client import call_service


class LifetimeHandler(APIHandler):
    """Forward one call to the sessions service about this very server."""

    auth_resource = AUTH_RESOURCE

    async def forward(self, method: str, path: str = "", body: dict[str, Any] | None = None) -> None:
        status, payload = await call_service(method, path, body)
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self._learn_expiry(status, payload)
        self.finish(payload)

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
        await self.forward("POST", "extend", body)


def setup_lifetime(web_app: Any) -> None:
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [
        (url_path_join(base_url, "visa/api/lifetime"), LifetimeHandler),
        (url_path_join(base_url, "visa/api/lifetime/extend"), ExtendHandler),
    ])
