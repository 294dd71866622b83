"""One poller for all instances: a single ``GET servers/detail?tags=<hub tag>`` per cycle.

Every spawner's ``poll`` and progress read the latest :class:`Snapshot`; none of them calls the cloud, so
the number of API calls per cycle does not grow with the number of instances. The poller runs every
``interval`` seconds, every ``fast_interval`` while a spawn or stop waits for a change, and keeps the last
good snapshot (marked stale) when the cloud API fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .cloud import Cloud
from .errors import is_transient


@dataclass(frozen=True)
class ServerView:
    """What the hub needs to know about one server, from one list call."""

    id: str
    name: str
    status: str
    task_state: str | None
    vm_state: str | None
    progress: int
    ip: str | None
    fault: dict | None
    metadata: dict[str, str]
    created_at: str | None

    @classmethod
    def from_sdk(cls, server: Any, network: str = "") -> ServerView:
        return cls(
            id=server.id, name=server.name or "", status=(server.status or "").upper(),
            task_state=server.task_state, vm_state=server.vm_state, progress=int(server.progress or 0),
            ip=fixed_ip(server.addresses or {}, network) or server.access_ipv4 or None,
            fault=dict(server.fault) if server.fault else None, metadata=dict(server.metadata or {}),
            created_at=server.created_at,
        )


def fixed_ip(addresses: dict[str, list[dict[str, Any]]], network: str = "") -> str | None:
    """The first fixed IPv4 address, preferring the named network."""
    nets = [addresses[network]] if network in addresses else list(addresses.values())
    for entries in nets:
        for entry in entries:
            if entry.get("OS-EXT-IPS:type", "fixed") == "fixed" and entry.get("version", 4) == 4:
                return entry.get("addr")
    return None


@dataclass
class Snapshot:
    """The hub's servers as of one list call started at ``taken_at`` (monotonic clock)."""

    servers: dict[str, ServerView] = field(default_factory=dict)
    taken_at: float = float("-inf")
    cycle: int = 0
    stale: bool = True  # the latest attempt failed (or none succeeded yet)


class ServerPoller:
    """The periodic list call and the snapshot everyone reads."""

    def __init__(self, cloud: Cloud, tag: str, network: str, interval: float, fast_interval: float,
                 log: logging.Logger, after_cycle: Callable[[Snapshot], Awaitable[None]] | None = None):
        self.cloud, self.tag, self.network = cloud, tag, network
        self.interval, self.fast_interval = interval, fast_interval
        self.log = log
        self.after_cycle = after_cycle
        self.snapshot = Snapshot()
        self.failures = 0
        self._urgent = 0  # spawns/stops waiting for a change: poll at fast_interval
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="visa-openstack-poller")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _list_servers(self, conn: Any) -> list[ServerView]:
        return [ServerView.from_sdk(s, self.network) for s in conn.compute.servers(details=True, tags=self.tag)]

    async def cycle(self) -> None:
        """One list call; on success publish the snapshot and run ``after_cycle`` (the reaper)."""
        started = time.monotonic()
        try:
            # no retries here: the next cycle is the retry, and a stale snapshot is safe to read meanwhile
            servers = await self.cloud.call("listing the hub's servers", self._list_servers, poll=True, retries=0)
        except Exception as exc:
            self.failures += 1
            self.snapshot.stale = True
            level = logging.WARNING if self.failures in (1, 10) or self.failures % 100 == 0 else logging.DEBUG
            self.log.log(level, "Listing the hub's servers failed (%d in a row%s): %s", self.failures,
                         "" if is_transient(exc) else ", not transient", exc)
        else:
            if self.failures:
                self.log.info("Listing the hub's servers works again after %d failures", self.failures)
            self.failures = 0
            self.snapshot = Snapshot({s.id: s for s in servers}, started, self.snapshot.cycle + 1, stale=False)
            if self.after_cycle is not None:
                try:
                    await self.after_cycle(self.snapshot)
                except Exception:
                    self.log.exception("Error after a poll cycle (reaper)")
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _run(self) -> None:
        while True:
            began = time.monotonic()
            await self.cycle()
            base = self.fast_interval if self._urgent else self.interval
            pause = min(base * 2 ** min(self.failures, 4), max(base, 60.0)) if self.failures else base
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, pause - (time.monotonic() - began)))
            # even when woken, never more often than fast_interval: calls per second stay bounded
            elapsed = time.monotonic() - began
            if elapsed < self.fast_interval:
                await asyncio.sleep(self.fast_interval - elapsed)

    # ---------------------------------------------------------------- readers

    def urgent(self) -> _Urgent:
        """``with poller.urgent():`` poll at the fast interval while waiting for a change."""
        return _Urgent(self)

    async def next_cycle(self, timeout: float | None = None) -> Snapshot:
        """Wait for the next cycle (successful or not) and return the snapshot."""
        self.start()
        changed = self._changed
        if self._urgent:
            self._wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), timeout)
        return self.snapshot

    async def fresh(self, timeout: float = 30.0) -> Snapshot:
        """A snapshot from a successful cycle, waiting for the first one if needed (stale after timeout)."""
        self.start()
        deadline = time.monotonic() + timeout
        while self.snapshot.cycle == 0 and time.monotonic() < deadline:
            await self.next_cycle(timeout=max(0.0, deadline - time.monotonic()))
        return self.snapshot


class _Urgent:
    def __init__(self, poller: ServerPoller):
        self.poller = poller

    def __enter__(self) -> ServerPoller:
        self.poller._urgent += 1
        self.poller._wake.set()
        return self.poller

    def __exit__(self, *exc: object) -> None:
        self.poller._urgent -= 1
