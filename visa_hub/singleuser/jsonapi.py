"""JSON in and out for the instance's small APIs (apps, desktop workstation)."""

from __future__ import annotations

import json
from typing import Any

from jupyter_server.base.handlers import APIHandler
from tornado import web


class JsonApiHandler(APIHandler):
    """An API handler whose requests carry a JSON object and whose answers are JSON, never cached."""

    def body(self) -> dict[str, Any]:
        """The request's JSON object (``{}`` when empty); 400 when it is not JSON or not an object."""
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "The request body is not JSON.") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "The request body must be a JSON object.")
        return data

    def answer(self, payload: Any, status: int = 200) -> None:
        """Send ``payload`` as JSON with ``status``, marked not to be cached."""
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(payload))
