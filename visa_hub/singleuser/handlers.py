"""HTTP handlers of the instance-side extension; the logic lives in small pure modules beside this one."""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from .session import SessionError, session_payload

#: The resource name our handlers authorize against (Jupyter Server 2 authorizers).
AUTH_RESOURCE = "visa"

NOT_VISA_MESSAGE = "This server was not started by visa-hub: there is no VISA session (VISA_SESSION is not set)."


class SessionHandler(APIHandler):
    """``GET {base_url}visa/api/session``: the session this instance runs for, with the seconds left."""

    auth_resource = AUTH_RESOURCE

    @web.authenticated
    @authorized
    def get(self) -> None:
        try:
            payload = session_payload(os.environ, now=dt.datetime.now(dt.UTC))
        except SessionError as exc:
            self.log.error("visa-hub: unreadable session in the environment: %s", exc)
            raise web.HTTPError(500, f"The VISA session of this instance cannot be read: {exc}") from None
        if payload is None:
            raise web.HTTPError(404, NOT_VISA_MESSAGE)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(payload))


def setup_handlers(web_app: Any) -> None:
    """Add our routes under the server's base URL."""
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base_url, "visa/api/session"), SessionHandler)])
