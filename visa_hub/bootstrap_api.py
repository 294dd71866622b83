"""The hub's endpoint where an instance trades its one-time bootstrap code for its server's API token.

Registered under the hub's API by :func:`visa_hub.hubconfig.configure` (``JupyterHub.extra_handlers``: a
JupyterHub service could not do this, as only the hub can issue a server's token and update its OAuth client).
It works with any spawner that implements ``redeem_bootstrap_code(code, remote_ip) -> str | None``
(``spawners.bootstrap.BootstrapCodes``); see :mod:`visa_hub.bootstrap` for the exchange.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from .bootstrap import INSTANCE_TOKEN_PATH

__all__ = ["INSTANCE_TOKEN_PATH", "InstanceTokenHandler"]


class InstanceTokenHandler(APIHandler):
    """``POST /hub/api/visa/instance-token``: a bootstrap code → the server's API token, once."""

    REFUSED = "This bootstrap code is not valid for that server (already used, or never issued)."

    async def post(self) -> None:
        body: Any = self.get_json_body() or {}
        if not isinstance(body, dict):
            raise web.HTTPError(400, "Send a JSON object with 'user', 'server_name' and 'code'.")
        user_name, server_name, code = body.get("user"), body.get("server_name", ""), body.get("code")
        if not all(isinstance(value, str) for value in (user_name, server_name, code)) or not code:
            raise web.HTTPError(400, "Send JSON with 'user', 'server_name' and 'code' (strings).")
        user = self.find_user(user_name)
        spawner = None
        if user is not None and server_name in user.orm_user.orm_spawners:
            spawner = user.spawners[server_name]
        redeem = getattr(spawner, "redeem_bootstrap_code", None)
        token = await redeem(code, self.request.remote_ip) if redeem is not None else None
        if not token:
            if redeem is None:
                self.log.warning("Refused an instance bootstrap for %s/%s from %s: no such server", user_name,
                                 server_name, self.request.remote_ip)
            raise web.HTTPError(403, self.REFUSED)
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "application/json")
        self.finish({"token": token, "user": user_name, "server_name": server_name})
