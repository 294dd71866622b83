"""Run :meth:`Sessions.tick` every ``poll_interval`` seconds; a failing tick is logged and retried."""

from __future__ import annotations

import asyncio
import logging

from .hubapi import HubUnavailable
from .service import Sessions


class Scheduler:
    def __init__(self, sessions: Sessions, interval: float, log: logging.Logger):
        self.sessions, self.interval, self.log = sessions, interval, log
        self._task: asyncio.Task | None = None
        self.ticks = 0

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()

    async def _run(self) -> None:
        while True:
            try:
                await self.sessions.tick()
                self.ticks += 1
            except HubUnavailable as exc:
                self.sessions.hub_reachable = False
                self.log.warning("The hub does not answer (%s); trying again in %g s", exc, self.interval)
            except Exception:
                self.sessions.db.rollback()
                self.log.exception("A pass over the instances failed; trying again in %g s", self.interval)
            await asyncio.sleep(self.interval)
