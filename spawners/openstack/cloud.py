"""openstacksdk off the event loop: one connection per worker thread, bounded retries with backoff.

openstacksdk is synchronous and its connections are not guaranteed thread-safe, so every
:class:`CloudWorker` owns one connection used only from its own single-thread executor. A :class:`Cloud`
has one worker for the poller (a slow create or delete never delays status updates) and a small pool for
actions. Every call goes through :meth:`Cloud.call`: transient failures (5xx, timeouts, refused connections)
are retried with exponential backoff a bounded number of times; anything else is raised at once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from visa_hub.metrics import observe_cloud_call

from .errors import is_transient

T = TypeVar("T")


@dataclass(frozen=True)
class CloudSettings:
    """How to reach the cloud and how hard to try; built from the spawner's traitlets."""

    cloud_name: str = ""  # an entry of clouds.yaml (OS_CLIENT_CONFIG_FILE); empty: OS_CLOUD / OS_* vars
    auth: str = ""  # explicit connect() kwargs as JSON (then clouds.yaml is ignored); hashable
    api_timeout: float = 30.0
    retries: int = 3
    backoff: float = 1.0
    action_workers: int = 4

    def connect(self) -> Any:
        """A new openstacksdk connection (called on a worker thread)."""
        import openstack

        if self.auth:
            return openstack.connect(**json.loads(self.auth), api_timeout=self.api_timeout,
                                     load_yaml_config=False, load_envvars=False)
        kwargs: dict[str, Any] = {"api_timeout": self.api_timeout}
        if self.cloud_name:
            kwargs["cloud"] = self.cloud_name
        return openstack.connect(**kwargs)

    @property
    def key(self) -> tuple:
        """Identity of the cloud account (for sharing one :class:`Cloud` between spawners)."""
        return (self.cloud_name, self.auth, self.api_timeout, self.retries, self.backoff, self.action_workers)


class CloudWorker:
    """One openstacksdk connection, used only from its own thread."""

    def __init__(self, settings: CloudSettings, name: str):
        self.settings = settings
        self.name = name
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._conn: Any = None
        self.busy = 0

    def _connection(self) -> Any:
        if self._conn is None:
            self._conn = self.settings.connect()
        return self._conn

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """``func(connection, *args)`` on this worker's thread."""
        self.busy += 1
        try:
            return await observe_cloud_call(getattr(func, "__name__", "call"), asyncio.get_running_loop(
                ).run_in_executor(self._executor, lambda: func(self._connection(), *args)))
        finally:
            self.busy -= 1

    def close(self) -> None:
        def close_conn() -> None:
            if self._conn is not None:
                self._conn.close()

        self._executor.submit(close_conn)
        self._executor.shutdown(wait=False)


class Cloud:
    """Cloud calls for all spawners of a hub: a poll worker, an action pool and the retry policy."""

    def __init__(self, settings: CloudSettings, log: logging.Logger):
        self.settings = settings
        self.log = log
        self.poll_worker = CloudWorker(settings, "visa-os-poll")
        self.workers = [CloudWorker(settings, f"visa-os-{n}") for n in range(max(1, settings.action_workers))]
        self._round_robin = itertools.cycle(self.workers)

    def _pick(self) -> CloudWorker:
        """The least busy action worker (round-robin among equals)."""
        least = min(w.busy for w in self.workers)
        return next(w for w in self._round_robin if w.busy == least)

    async def call(self, what: str, func: Callable[..., T], *args: Any, poll: bool = False,
                   retries: int | None = None, on_retry: Callable[[BaseException], Any] | None = None) -> T:
        """Run ``func(conn, *args)``; retry transient failures with backoff, at most ``retries`` times.

        ``what`` names the operation for the log ("creating server visa-alice-..."). ``on_retry`` is awaited
        (if a coroutine function) before each retry, e.g. to adopt a server whose create timed out.
        """
        attempts = 1 + (self.settings.retries if retries is None else retries)
        for attempt in range(1, attempts + 1):
            worker = self.poll_worker if poll else self._pick()
            try:
                return await worker.run(func, *args)
            except Exception as exc:
                if not is_transient(exc) or attempt == attempts:
                    raise
                delay = self.settings.backoff * 2 ** (attempt - 1) * random.uniform(0.8, 1.2)
                self.log.warning("Cloud call failed while %s (attempt %d of %d: %s); retrying in %.1f s",
                                 what, attempt, attempts, type(exc).__name__, delay)
                await asyncio.sleep(delay)
                if on_retry is not None:
                    adopted = on_retry(exc)
                    if asyncio.iscoroutine(adopted):
                        adopted = await adopted
                    if adopted is not None:
                        return adopted  # type: ignore[return-value]
        raise AssertionError("unreachable")

    def close(self) -> None:
        for worker in (self.poll_worker, *self.workers):
            worker.close()
