"""The sessions service's lifetime data and decisions on the operator console (one page for operators).

The console is a hub page; lifetimes, extensions and extension requests belong to the sessions service
(:mod:`visa_hub.sessions`, a managed service with its own login cookie). So that the console's script talks to
the hub alone, ``{hub}/hub/api/visa/ops/lifetimes/<service API path>`` passes a few of the service's API calls
on, on behalf of the person looking, with a short-lived API token of hers that only reaches that service:

==========================================  ============================================================
``GET  .../lifetimes/api/instances?all=1``  every running instance's expiry, warnings, pending request
``GET  .../lifetimes/api/requests``         pending extension requests
``POST .../lifetimes/api/instances/<user>/<server>/expiry``  ``{"expires_at": ISO}``: extend or shorten
``POST .../lifetimes/api/requests/<id>``    ``{"decision": "accept"|"refuse", "answer": "..."}``
==========================================  ============================================================

The service decides, as for any call: hub admins may do all of it; anyone else sees her own instances and
may change nothing of others' (support staff therefore see the hub's view of expiries, read-only).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .handlers import OpsMixin

SERVICE_NAME = "visa-sessions"
#: (method, service API path) the console may use
ALLOWED = [
    ("GET", re.compile(r"api/instances")),
    ("GET", re.compile(r"api/requests")),
    ("POST", re.compile(r"api/instances/[^/]+/[^/]*/expiry")),
    ("POST", re.compile(r"api/requests/\d+")),
]
TOKEN_SECONDS = 600


class OpsLifetimesAPIHandler(OpsMixin, APIHandler):
    """``{hub}/hub/api/visa/ops/lifetimes/<path>``: the sessions service's API, for the console."""

    @property
    def tokens(self) -> dict[str, tuple[float, str]]:
        """user name → (expiry on the monotonic clock, token) of the console's service tokens."""
        return self.settings.setdefault("visa_ops_service_tokens", {})

    def service_token(self) -> str:
        user = self.current_user
        cached = self.tokens.get(user.name)
        if cached and cached[0] - time.monotonic() > 60:
            return cached[1]
        token = user.new_api_token(scopes=[f"access:services!service={SERVICE_NAME}"], expires_in=TOKEN_SECONDS,
                                   note="visa-hub operator console")
        self.tokens[user.name] = (time.monotonic() + TOKEN_SECONDS, token)
        return token

    async def get(self, path: str) -> None:
        await self.forward("GET", path)

    async def post(self, path: str) -> None:
        await self.forward("POST", path)

    async def forward(self, method: str, path: str) -> None:
        self.check_ops_access()
        if not any(method == m and pattern.fullmatch(path) for m, pattern in ALLOWED):
            raise web.HTTPError(404, f"The console does not pass {method} {path} to the sessions service.")
        service = self.services.get(SERVICE_NAME)
        if service is None or not service.url:
            self.set_header("Cache-Control", "no-store")
            self.finish({"available": False, "message": "The sessions service is not configured on this hub."})
            return
        query = f"?{self.request.query}" if self.request.query else ""
        url = f"{service.url.rstrip('/')}{service.prefix}{path}{query}"
        body = self.request.body if method == "POST" else None
        request = HTTPRequest(url, method=method, body=body, request_timeout=15, headers={
            "Authorization": f"token {self.service_token()}", "Content-Type": "application/json"})
        try:
            response = await AsyncHTTPClient().fetch(request)
        except HTTPClientError as exc:
            if exc.response is None:
                raise web.HTTPError(502, f"The sessions service did not answer: {exc}") from None
            self.set_status(exc.code)
            self.finish(self._json(exc.response.body, exc.code))
            return
        except OSError as exc:
            raise web.HTTPError(502, f"The sessions service cannot be reached: {exc}") from None
        self.set_header("Cache-Control", "no-store")
        self.finish(self._json(response.body, response.code))

    @staticmethod
    def _json(body: bytes, status: int) -> dict[str, Any]:
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            data = {"status": status, "message": body.decode(errors="replace")[:300]}
        return data if isinstance(data, dict) else {"data": data}


ROUTES = [(r"/api/visa/ops/lifetimes/(api/.*)", OpsLifetimesAPIHandler)]
