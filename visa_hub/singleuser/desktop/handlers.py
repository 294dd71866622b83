"""The desktop's routes: two websockets proxied by jupyter-server-proxy, and a status API for the Desktop tab.

``{base_url}visa-desktop/``
    Full control. A jupyter-server-proxy *raw socket* entry (``raw_socket_proxy``, ``unix_socket``): the
    websocket's bytes go to Xvnc's private unix socket unchanged. The first connection starts the desktop.
``{base_url}visa-desktop-view/``
    View-only, for guests of a shared session: the same proxy, with both directions passed through
    :class:`~visa_hub.singleuser.desktop.rfb.ViewOnlyFilter`, so keys, pointer, clipboard and resizing never
    reach Xvnc whatever the browser sends, and the owner's clipboard never reaches the guest.
``{base_url}visa/api/desktop``
    Whether the desktop can start (Xvnc installed), whether it runs, why it failed, and which websocket the
    current user may open.

Who may connect: jupyter-server-proxy answers 403 to a websocket without a logged-in user; under JupyterHub the
user is known only when the hub granted ``access:servers`` on this server, so another hub user gets 403. On top,
both websockets ask the server's authorizer: ``write`` on :data:`DESKTOP_RESOURCE` for full control, ``read`` for
the view-only path. The default authorizers allow both to whoever may use the server; a sharing policy that
makes someone a view-only guest denies her ``write``. Authorizers may answer synchronously or with an awaitable
(Jupyter Server 2 allows both): every answer is awaited, so an asynchronous "no" is a no.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import shutil
import sys
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import ensure_async, url_path_join
from jupyter_server_proxy.config import ServerProcess
from tornado import web

from .config import VisaDesktop, write_spec
from .rfb import RfbViolation, ViewOnlyFilter

#: The resource both websockets and the status API authorize against.
DESKTOP_RESOURCE = "visa-desktop"
FULL_PATH = "visa-desktop/"
VIEW_ONLY_PATH = "visa-desktop-view/"
#: RFB websocket close code for "policy violation".
POLICY_VIOLATION = 1008


class DesktopState:
    """The desktop of this server: its configuration, private directory and the proxy's shared process state."""

    def __init__(self, config: VisaDesktop, root_dir: str):
        self.config = config
        self.private_dir = config.make_private_dir()
        atexit.register(shutil.rmtree, self.private_dir, ignore_errors=True)
        self.spec = config.launch_spec(self.private_dir, cwd=root_dir)
        self.spec_path = self.private_dir / "launch.json"
        write_spec(self.spec, self.spec_path)
        #: jupyter-server-proxy keeps the supervised launcher here ("proc"); both websockets share it.
        self.proxy_state: dict[str, Any] = {}

    def command(self) -> list[str]:
        return [sys.executable, "-m", "visa_hub.singleuser.desktop.launch", str(self.spec_path)]

    @property
    def process(self) -> Any | None:
        proc = self.proxy_state.get("proc")
        return None if isinstance(proc, str) else proc

    def running(self) -> bool:
        return bool(self.process and self.process.running)

    def forget_dead_process(self) -> None:
        """jupyter-server-proxy never restarts a process that exited: drop it so the next connection starts anew."""
        if self.process is not None and not self.process.running and "proc_lock" in self.proxy_state:
            self.proxy_state.pop("proc", None)

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = Path(self.spec.log).read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(line for line in text.splitlines()[-lines:] if line.strip())

    def problem(self) -> str | None:
        """Why the desktop cannot be used now, for people; ``None`` when it can."""
        if not self.config.enabled:
            return "The desktop is switched off on this server (VisaDesktop.enabled = False)."
        if self.config.xvnc_path() is None:
            return self.config.missing_message()
        proc = self.process
        if proc is not None and not proc.running and proc.returncode not in (None, 0):
            return f"The desktop stopped (status {proc.returncode}). Reconnect to start it again.\n{self.log_tail()}"
        return None


def _make_proxy_base(state: DesktopState) -> tuple[type, dict[str, Any]]:
    """jupyter-server-proxy's handler class for our raw-socket entry, and its shared keyword arguments."""
    process = ServerProcess(
        name="visa-desktop",
        command=state.command(),
        unix_socket=state.spec.socket,
        raw_socket_proxy=True,
        timeout=state.config.startup_timeout,
        launcher_entry={"enabled": False},
        new_browser_tab=False,
    )
    cls, kwargs = process.make_proxy_handler()
    kwargs["state"] = state.proxy_state
    return cls, kwargs


def make_websocket_handlers(state: DesktopState) -> tuple[type, type, dict[str, Any]]:
    """The full-control and view-only websocket handler classes, and their init kwargs."""
    base, kwargs = _make_proxy_base(state)

    class DesktopSocketHandler(base):  # type: ignore[misc, valid-type]
        """Full control of the desktop: jupyter-server-proxy's raw socket proxy to Xvnc, plus authorization."""

        required_action = "write"

        async def prepare(self, *args: Any, **kwargs: Any) -> None:
            await super().prepare(*args, **kwargs)
            user = self.current_user
            if user is not None and not await ensure_async(
                    self.authorizer.is_authorized(self, user, self.required_action, DESKTOP_RESOURCE)):
                raise web.HTTPError(403, f"{self.required_action} access to the desktop is not granted")
            if not state.config.enabled or state.config.xvnc_path() is None:
                raise web.HTTPError(503, state.problem())

        async def open(self, path: str) -> None:
            state.forget_dead_process()
            await super().open(path)

    class ViewOnlyDesktopSocketHandler(DesktopSocketHandler):
        """View-only: the same proxy, but input never reaches Xvnc and the owner's clipboard never reaches the
        guest (see :class:`ViewOnlyFilter`, which both directions pass through)."""

        required_action = "read"

        refused = False

        async def open(self, path: str) -> None:
            self.rfb_filter = ViewOnlyFilter()
            await super().open(path)

        def refuse(self, reason: Exception, message: str) -> None:
            """Close the connection for good; what still arrives until the close completes is dropped."""
            if not self.refused:
                self.refused = True
                self.log.warning("visa-hub desktop: view-only connection closed: %s", reason)
                self.close(POLICY_VIOLATION, message)

        def on_message(self, message: str | bytes) -> None:
            if self.refused:
                return
            if isinstance(message, str):
                message = message.encode("utf-8")
            try:
                allowed = self.rfb_filter.feed(message)
            except RfbViolation as exc:
                self.refuse(exc, "view-only connection: input is not allowed")
                return
            if allowed:
                super().on_message(allowed)

        def write_message(self, message: str | bytes | dict[str, Any], binary: bool = False) -> Any:
            """What Xvnc sends (jupyter-server-proxy writes it here), filtered for a guest."""
            rfb_filter = getattr(self, "rfb_filter", None)
            if rfb_filter is None or not isinstance(message, bytes):
                return super().write_message(message, binary=binary)
            allowed = b""
            if not self.refused:
                try:
                    allowed = rfb_filter.feed_server(message)
                except RfbViolation as exc:
                    self.refuse(exc, "view-only connection: the desktop sent something unexpected")
            if allowed:
                return super().write_message(allowed, binary=True)
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done

        def on_close(self) -> None:
            stats = getattr(self, "rfb_filter", None)
            if stats is not None and stats.stats.dropped:
                self.log.info("visa-hub desktop: view-only connection dropped %s", stats.stats.dropped)
            super().on_close()

    return DesktopSocketHandler, ViewOnlyDesktopSocketHandler, kwargs


class DesktopStatusHandler(APIHandler):
    """``GET {base_url}visa/api/desktop``: can the desktop start, does it run, which websocket may I open."""

    auth_resource = DESKTOP_RESOURCE

    def initialize(self, state: DesktopState) -> None:
        self.state = state

    @web.authenticated
    @authorized
    async def get(self) -> None:
        full = bool(await ensure_async(self.authorizer.is_authorized(self, self.current_user, "write",
                                                                     DESKTOP_RESOURCE)))
        problem = self.state.problem()
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({
            "available": problem is None,
            "message": problem,
            "running": self.state.running(),
            "view_only": not full,
            "websocket_path": FULL_PATH if full else VIEW_ONLY_PATH,
            "view_only_websocket_path": VIEW_ONLY_PATH,
        }))


def setup_desktop(serverapp: Any) -> DesktopState:
    """Register the desktop's routes on ``serverapp``.

    They exist even when Xvnc is missing or the desktop is switched off: the websockets then answer 503 and
    the status API says why, which the Desktop tab shows instead of a blank canvas.
    """
    config = VisaDesktop(parent=serverapp)
    state = DesktopState(config, root_dir=str(Path(serverapp.root_dir).expanduser()))
    base_url = serverapp.web_app.settings["base_url"]
    full, view_only, kwargs = make_websocket_handlers(state)
    serverapp.web_app.add_handlers(".*$", [
        (url_path_join(base_url, "visa/api/desktop"), DesktopStatusHandler, {"state": state}),
        (url_path_join(base_url, FULL_PATH, "(.*)"), full, kwargs),
        (url_path_join(base_url, VIEW_ONLY_PATH, "(.*)"), view_only, kwargs),
    ])
    if config.xvnc_path() is None:
        serverapp.log.warning("visa-hub: %s", config.missing_message())
    return state
