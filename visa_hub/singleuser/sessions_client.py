"""Calls from an instance to the hub's sessions service about this very server.

The service lives at ``$VISA_SESSIONS_URL``; every call names this server (``$JUPYTERHUB_USER``,
``$JUPYTERHUB_SERVER_NAME``) and carries the server's own token (``$JUPYTERHUB_API_TOKEN``), which the service
accepts for this server only.
"""

from __future__ import annotations

import json
import os
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

NO_SERVICE_MESSAGE = "This server has no sessions service (VISA_SESSIONS_URL is not set)."


def service_url() -> str:
    """The sessions service's base URL, or ``""`` when this server has none."""
    return os.environ.get("VISA_SESSIONS_URL", "")


async def call_service(method: str, path: str = "", body: dict[str, Any] | None = None,
                       query: dict[str, str] | None = None, *,
                       no_service_message: str = NO_SERVICE_MESSAGE) -> tuple[int, bytes]:
    """One call about this server (``.../api/instances/<user>/<server>[/<path>]``): (status, JSON body).

    404 with ``no_service_message`` when there is no service; 503 when it cannot be reached.
    """
    service = service_url()
    if not service:
        return 404, json.dumps({"message": no_service_message}).encode()
    owner = quote(os.environ.get("JUPYTERHUB_USER", ""), safe="")
    server = quote(os.environ.get("JUPYTERHUB_SERVER_NAME", ""), safe="")
    url = f"{service.rstrip('/')}/api/instances/{owner}/{server}" + (f"/{path}" if path else "")
    if query:
        url += "?" + urlencode(query)
    request = HTTPRequest(url, method=method, request_timeout=20, allow_nonstandard_methods=True,
                          headers={"Authorization": f"token {os.environ.get('JUPYTERHUB_API_TOKEN', '')}",
                                   "Content-Type": "application/json"},
                          body=None if body is None else json.dumps(body))
    try:
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
    except OSError as exc:
        return 503, json.dumps({"message": f"The sessions service cannot be reached: {exc}"}).encode()
    if response.code == 599:
        return 503, json.dumps({"message": "The sessions service cannot be reached right now."}).encode()
    return response.code, response.body or b"{}"
