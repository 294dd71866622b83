"""The instance follows its session's expiry, so that an extension reaches what runs inside it.

The hub's sessions service owns the expiry (extensions, an admin's change). The spawner gave the instance the
expiry it had at the start (``VISA_EXPIRES_AT``, ``expires_at`` in ``VISA_SESSION``), which the instance's Dask
configuration cuts worker walltimes at. So the server extension asks the service about its own server (with the
server's token, as :mod:`.lifetime` does) every ``follow_seconds``, and also reads the expiry from every answer
the labextension's lifetime calls bring. When it has moved:

- ``VISA_EXPIRES_AT`` and ``VISA_SESSION`` in the server's environment say the new end: the session API, and the
  kernels and terminals started from now on, see it;
- the instance's Dask configuration is rewritten with the new expiry and the same TLS credentials
  (:func:`visa_hub.dask.instance.move_expiry`): workers that running clusters start later still join their
  scheduler, ``SessionCluster`` (also in kernels that were already running) cuts walltimes at the new end, and
  a plain ``SLURMCluster`` does so in kernels started from now on (one made in an older kernel keeps the caps
  that kernel read at its start).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sys
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from traitlets import Float
from traitlets.config import Configurable

from ..dask.instance import EXPIRY_VARIABLE, move_expiry
from .session import SESSION_VARIABLE, SessionError, parse_time

SETTING = "visa_expiry"  # the web application's setting that holds this server's ExpiryFollower


class VisaExpiry(Configurable):
    """How the instance follows its session's expiry."""

    follow_seconds = Float(
        60.0, config=True,
        help="Seconds between two questions to the sessions service about this instance's expiry (0: only when "
             "Lab asks). A new expiry (an extension) reaches the instance's Dask configuration at most this late. "
             "Default: $VISA_EXPIRY_FOLLOW_SECONDS, else 60.",
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if "VISA_EXPIRY_FOLLOW_SECONDS" in os.environ and "follow_seconds" not in kwargs:
            self.follow_seconds = float(os.environ["VISA_EXPIRY_FOLLOW_SECONDS"])


def service_url(environ: MutableMapping[str, str]) -> str | None:
    """The sessions service's URL of this very server (``None`` without a service)."""
    service = environ.get("VISA_SESSIONS_URL", "")
    if not service:
        return None
    user = quote(environ.get("JUPYTERHUB_USER", ""), safe="")
    server = quote(environ.get("JUPYTERHUB_SERVER_NAME", ""), safe="")
    return f"{service.rstrip('/')}/api/instances/{user}/{server}"


def expiry_in_answer(body: bytes | str) -> str | None:
    """The instance's expiry in an answer of the sessions service (its view, or an extension's result)."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    view = data.get("instance") if isinstance(data.get("instance"), dict) else data
    value = view.get("expires_at")
    return value if isinstance(value, str) else None


class ExpiryFollower:
    """This server's idea of its expiry, kept equal to the sessions service's."""

    def __init__(self, log: Any, environ: MutableMapping[str, str] | None = None):
        self.log = log
        self.environ = os.environ if environ is None else environ
        value = self.environ.get(EXPIRY_VARIABLE)
        try:
            self.expires_at = parse_time(value) if value else None
        except SessionError:
            self.expires_at = None

    def apply(self, value: str) -> bool:
        """Take ``value`` (ISO 8601) as the session's expiry; whether it moved. Never raises: Lab goes on."""
        try:
            new = parse_time(value)
        except SessionError:
            self.log.warning("visa-hub: the sessions service sent an unreadable expiry %r", value)
            return False
        if new == self.expires_at:
            return False
        old, self.expires_at = self.expires_at, new
        self._update_session(new)
        try:
            path = move_expiry(new, self.environ)
        except (OSError, ValueError) as exc:
            self.log.error("visa-hub: the session now ends at %s, but the Dask configuration could not be "
                           "updated: %s", new.isoformat(), exc)
            return True
        if path is not None and "dask" in sys.modules:  # dask-labextension's clusters, in this very process
            import dask.config

            dask.config.refresh()
        self.log.info("visa-hub: the session now ends at %s (was %s)%s", new.isoformat(),
                      old.isoformat() if old else "no end",
                      f"; Dask configuration updated in {path}" if path else "")
        return True

    def _update_session(self, new: dt.datetime) -> None:
        self.environ[EXPIRY_VARIABLE] = new.isoformat()
        try:
            session = json.loads(self.environ.get(SESSION_VARIABLE) or "null")
        except ValueError:
            return
        if isinstance(session, dict):
            session["expires_at"] = new.isoformat()
            self.environ[SESSION_VARIABLE] = json.dumps(session)

    async def ask_service(self) -> bool:
        """Ask the sessions service once; whether the expiry moved."""
        url = service_url(self.environ)
        if not url:
            return False
        request = HTTPRequest(url, request_timeout=20, headers={
            "Authorization": f"token {self.environ.get('JUPYTERHUB_API_TOKEN', '')}"})
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code != 200:  # 404: the service has not seen this instance yet; 599: unreachable for now
            self.log.debug("visa-hub: the sessions service answered %s about this instance", response.code)
            return False
        value = expiry_in_answer(response.body)
        return self.apply(value) if value else False

    async def follow(self, interval: float) -> None:
        """Forever: ask the service every ``interval`` seconds."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.ask_service()
            except Exception:  # never let the loop die: the next question may work
                self.log.exception("visa-hub: could not ask the sessions service about this instance's expiry")


def setup_expiry(serverapp: Any) -> ExpiryFollower | None:
    """Follow the session's expiry (only in an instance with a sessions service and an expiry)."""
    environ = os.environ
    if not (environ.get("VISA_SESSIONS_URL") and environ.get(EXPIRY_VARIABLE)):
        return None
    follower = ExpiryFollower(serverapp.log, environ)
    serverapp.web_app.settings[SETTING] = follower
    interval = VisaExpiry(parent=serverapp).follow_seconds
    if interval > 0:
        serverapp.io_loop.add_callback(follower.follow, interval)
    return follower
