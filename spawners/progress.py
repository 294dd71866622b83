"""Progress events a spawner emits while it works, read by JupyterHub's progress API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from visa_hub.instances import start_step


class ProgressLog:
    """An append-only list of progress events that any number of readers can follow."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()

    def emit(self, progress: int, message: str, **extra: Any) -> None:
        """Record an event; it carries the named step its progress belongs to (``visa_hub.instances.START_STEPS``)."""
        self.events.append({"progress": progress, "message": message, "step": start_step(progress).key, **extra})
        self._changed.set()
        self._changed = asyncio.Event()

    async def follow(self) -> AsyncIterator[dict[str, Any]]:
        """Yield every event, then new ones as they come (JupyterHub stops reading when the spawn ends)."""
        seen = 0
        while True:
            while seen < len(self.events):
                yield self.events[seen]
                seen += 1
            await self._changed.wait()
