"""Run the simulator on its own event loop in a background thread, for synchronous callers.

    with SimulatorThread(boot_delay=0.2, workdir=tmp_path) as sim_thread:
        conn = sim_thread.connect()
        conn.compute.servers()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from .app import OpenStackSimulator

T = TypeVar("T")


class SimulatorThread:
    """Context manager: an :class:`OpenStackSimulator` served from a daemon thread."""

    def __init__(self, port: int = 0, **options: Any) -> None:
        self.port = port
        self.sim = OpenStackSimulator(**options)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="openstack-sim", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def start(self) -> SimulatorThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.sim.start(self.port), self.loop).result(timeout=30)
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        try:
            asyncio.run_coroutine_threadsafe(self.sim.stop(), self.loop).result(timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self.loop.close()

    def __enter__(self) -> SimulatorThread:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def call(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``func(*args, **kwargs)`` on the simulator's loop (safe access to its state) and return its result."""

        async def run() -> T:
            return func(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout=30)

    @property
    def url(self) -> str:
        return self.sim.url

    def connect(self, use_app_credential: bool = False, **extra: Any) -> Any:
        """An ``openstack.connection.Connection`` to the simulator (needs openstacksdk)."""
        import openstack

        return openstack.connect(**self.sim.connect_kwargs(use_app_credential), **extra)
