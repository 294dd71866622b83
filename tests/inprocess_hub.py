"""visa-hub's hub inside the test process: JupyterHub's MockHub with ``jupyterhub_config.py``'s settings.

For tests about what the authenticator and the spawners do (logins, refusals, the spawn form, the site's rules,
the hub's own pages), where starting a ``jupyterhub`` process (seconds of imports and start-up on a busy 2-core
machine) is not what is tested. Tests about the hub *process* — restarts, its log file, its database — keep
:class:`hubtest.HubProcess`.

The hub is JupyterHub's own application — ``jupyterhub.tests.mocking.MockHub``, the one pytest-jupyterhub's
fixtures build; it only skips signal handlers and uses a fresh SQLite file — with visa-hub's configuration, a
real configurable-http-proxy and real instances. pytest-jupyterhub 0.1.0's fixtures (``configured_mockhub_instance``,
``hub_app``) run it on the test's own event loop, where neither our synchronous HTTP sessions nor Playwright's
browser (which keeps its own loop running) can use it; so it runs here on an event loop of its own, in a thread,
and :class:`hubtest.UserSession` and the browser drive it as they drive a hub process.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from traitlets.config import Config

from hubtest import HubProcess, free_port, wait_until


@dataclass
class InProcessHub:
    """Like :class:`hubtest.HubProcess` (``url``, ``data_dir``, ``start``, ``stop``, ``log_text``), in-process."""

    data_dir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    more_config: Callable[[Config], None] | None = None  # what an operator's config file adds after configure(c)
    port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    proxy_api_port: int = field(default_factory=free_port)
    app: Any = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _log: io.StringIO = field(default_factory=io.StringIO)
    _handler: logging.Handler | None = None

    url = HubProcess.url

    def env(self) -> dict[str, str]:
        """The variables a hub process gets from :class:`hubtest.HubProcess` (read by ``configure``)."""
        return {
            **os.environ,
            "VISA_DATA_DIR": str(self.data_dir),
            "VISA_HUB_PORT": str(self.port),
            "VISA_HUB_API_PORT": str(self.api_port),
            "VISA_PROXY_API_PORT": str(self.proxy_api_port),
            "VISA_KEEP_SERVERS": "0",
            **self.extra_env,
        }

    def config(self) -> Config:
        from visa_hub.hubconfig import configure

        config = Config()
        configure(config, env=self.env())
        if self.more_config is not None:
            self.more_config(config)
        return config

    def start(self, timeout: float = 60) -> InProcessHub:
        from jupyterhub.tests.mocking import MockHub

        from visa_hub.ops.config import OperatorConsole
        from visa_hub.site import VisaSite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        for singleton in (VisaSite, OperatorConsole, MockHub):  # one per hub, as in a hub process
            singleton.clear_instance()
        self.app = MockHub.instance(config=self.config())
        self._handler = logging.StreamHandler(self._log)
        self._handler.setFormatter(logging.Formatter("[%(levelname)1.1s %(asctime)s %(name)s] %(message)s"))
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self.app.initialize([]))
                self.app.log.addHandler(self._handler)
                self._loop.run_until_complete(self.app.start())
            except BaseException as exc:  # noqa: BLE001  (reported by start())
                failure.append(exc)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="in-process-hub", daemon=True)
        self._thread.start()
        ready.wait(timeout)
        if failure:
            raise RuntimeError(f"the in-process hub did not start: {failure[0]!r}") from failure[0]
        wait_until(lambda: httpx.get(f"{self.url}/hub/api/", timeout=2).status_code == 200, timeout,
                   f"the in-process hub on {self.url}")
        return self

    def stop(self, timeout: float = 30) -> None:
        if self._loop is None or self.app is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        with contextlib.suppress(Exception):
            future.result(timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(timeout)
        self.app.log.removeHandler(self._handler)
        self._loop = self._thread = None
        type(self.app).clear_instance()

    async def _shutdown(self) -> None:
        # what JupyterHub does on SIGTERM: stop the instances it started (cleanup_servers), the proxy, its tasks
        await self.app.cleanup()
        if self.app.http_server:
            self.app.http_server.stop()
        await self.app.shutdown_cancel_tasks()

    def kill_instances(self) -> None:
        HubProcess.kill_instances(self)  # type: ignore[arg-type]

    def log_text(self) -> str:
        return self._log.getvalue()

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

