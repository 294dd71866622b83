"""Telling the hub how many people are on this instance's desktop, by role (``visa_desktop_viewers``).

After each look at the connections (``_watch_presence``), :meth:`DesktopViewersReporter.note` gets the numbers
(:meth:`~.state.SharingState.desktop_viewers`) and sends them to the hub — ``POST {hub API}/visa/desktop-viewers/
<owner>/<server>`` with this server's own token, answered by :mod:`visa_hub.ops.viewers` — when they differ from
what the hub last accepted, not at every look. A report that fails is sent again after a backoff (doubling up to
five minutes). While anyone is on the desktop the numbers are sent again every
``VisaSharing.viewers_refresh_interval``, so that a restarted hub, which forgets them, has them back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from jupyterhub import version_info

#: Seconds before the first retry of a failed report; doubled at each failure up to ``MAX_RETRY``.
FIRST_RETRY = 2.0
MAX_RETRY = 300.0
#: How HubAuth._api_request takes a request body: aiohttp's ``data`` from JupyterHub 6 on, tornado's ``body`` before.
BODY_ARGUMENT = "data" if version_info >= (6,) else "body"


class DesktopViewersReporter:
    """Sends this instance's desktop viewers per role to the hub when they change (and after a failure)."""

    def __init__(self, *, hub_auth: Any, owner: str, server_name: str, log: logging.Logger,
                 refresh_interval: float = 300.0, clock: Callable[[], float] = time.monotonic):
        self.hub_auth, self.owner, self.server_name, self.log = hub_auth, owner, server_name, log
        self.refresh_interval, self.clock = refresh_interval, clock
        #: what the hub accepted last (nothing yet: it counts none of this instance's viewers)
        self.sent: dict[str, int] = {}
        self._sent_at: float | None = None
        self._retry_at: float | None = None
        self._delay = FIRST_RETRY
        self._failures = 0
        self._sending: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"{self.hub_auth.api_url.rstrip('/')}/visa/desktop-viewers/{quote(self.owner, safe='')}/" \
               f"{quote(self.server_name, safe='')}"

    def note(self, viewers: Mapping[str, int]) -> asyncio.Task | None:
        """The numbers now; starts a report when the hub should hear them (returns its task, else None)."""
        if self._sending is not None and not self._sending.done():
            return None
        now = self.clock()
        if self._retry_at is not None and now < self._retry_at:
            return None
        viewers = {role: count for role, count in viewers.items() if count}
        changed = viewers != self.sent or self._retry_at is not None
        refresh = bool(self.sent) and self._sent_at is not None and now - self._sent_at >= self.refresh_interval
        if not (changed or refresh):
            return None
        self._sending = asyncio.ensure_future(self._send(viewers))
        return self._sending

    async def _send(self, viewers: dict[str, int]) -> None:
        try:
            # HubAuth's own call to the hub: this server's token, the hub's TLS settings
            await self.hub_auth._api_request("POST", self.url, headers={"Content-Type": "application/json"},
                                             **{BODY_ARGUMENT: json.dumps({"viewers": viewers})})
        except Exception as exc:  # noqa: BLE001 - whatever failed, the report is sent again later
            self._failures += 1
            log = self.log.warning if self._failures == 1 else self.log.debug
            log("visa-hub sharing: the hub did not take the desktop viewers of %s/%s (%s); trying again in %.0f s",
                self.owner, self.server_name, exc, self._delay)
            self._retry_at = self.clock() + self._delay
            self._delay = min(self._delay * 2, MAX_RETRY)
            return
        if self._failures:
            self.log.info("visa-hub sharing: the hub has the desktop viewers of %s/%s again (after %d failures)",
                          self.owner, self.server_name, self._failures)
        self.sent, self._sent_at = viewers, self.clock()
        self._retry_at, self._delay, self._failures = None, FIRST_RETRY, 0
