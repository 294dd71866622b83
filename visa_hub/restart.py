"""A hub that stops cleanly tells the people whose requests it cuts off that it is restarting.

On SIGTERM/SIGINT JupyterHub cleans up (managed services, its proxy) and then cancels every task of its event
loop; tornado answers each request still in flight with a bare ``500 Internal Server Error``. Someone who had just
pressed Start reads that as "my instance is broken". With visa-hub:

- the hub stops accepting connections as soon as the signal arrives (a proxy in front answers 503 and browsers
  retry), instead of taking new requests it can no longer finish;
- an answer that the shutdown turns into a 500 becomes a 503 with ``Retry-After`` and a message that says what
  happened (JSON for the APIs, a small page that reloads itself for browsers). The instance is not affected: a
  spawn that was under way is re-checked by the hub when it is back.
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from typing import Any

from tornado.httputil import HTTPHeaders, HTTPServerRequest
from tornado.web import OutputTransform

MESSAGE = ("The hub is restarting and could not finish this request. Your instances are not affected: "
           "try again in a minute.")
RETRY_AFTER_SECONDS = 30
PAGE = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>The hub is restarting</title>
<meta http-equiv="refresh" content="{RETRY_AFTER_SECONDS}"></head>
<body style="font-family: sans-serif; margin: 3em"><h1>The hub is restarting</h1><p>{MESSAGE}</p>
<p>This page reloads itself.</p></body></html>
"""


class _State:
    stopping = False


def stopping() -> bool:
    """Whether the hub has been told to stop (by a signal)."""
    return _State.stopping


class RestartNotice(OutputTransform):
    """Turns a 500 written while the hub stops into a 503 that says the hub is restarting."""

    def __init__(self, request: HTTPServerRequest) -> None:
        self.request = request

    def transform_first_chunk(self, status_code: int, headers: HTTPHeaders, chunk: bytes,
                              finishing: bool) -> tuple[int, HTTPHeaders, bytes]:
        if status_code != 500 or not _State.stopping:
            return status_code, headers, chunk
        if "json" in headers.get("Content-Type", ""):
            chunk = json.dumps({"status": 503, "message": MESSAGE}).encode()
        else:
            headers["Content-Type"] = "text/html; charset=UTF-8"
            chunk = PAGE.encode()
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        if "Content-Length" in headers:
            headers["Content-Length"] = str(len(chunk))
        return 503, headers, chunk


def configure_restart_notice(c: Any) -> None:
    """Install :class:`RestartNotice` in the hub's tornado application and, inside a starting hub, the signal
    handlers that stop accepting connections first."""
    c.JupyterHub.tornado_settings.update({"transforms": [RestartNotice]})
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not inside a starting hub (a config check, a unit test)
        return
    if threading.current_thread() is not threading.main_thread():  # a hub inside a test process: no signals
        return
    from jupyterhub.app import JupyterHub

    if JupyterHub.initialized():
        loop.create_task(_take_over_signals(JupyterHub.instance()), name="visa-restart-notice")


async def _take_over_signals(app: Any) -> None:
    """Once the hub has started (and installed its own handlers), put ours in front of its shutdown."""
    started = getattr(app, "_start_future", None)  # JupyterHub sets it when start() is done, signals included
    if started is None:
        app.log.warning("visa-hub: cannot tell when the hub has started; a restart answers requests in flight "
                        "with JupyterHub's plain 500")
        return
    await started
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _stop, app, sig)


def _stop(app: Any, sig: signal.Signals) -> None:
    if _State.stopping:
        return
    _State.stopping = True
    if app.http_server is not None:
        app.http_server.stop()  # no new connections; those open finish or get the notice
    asyncio.ensure_future(app.shutdown_cancel_tasks(sig))
