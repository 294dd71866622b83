"""The Desktop tab's workstation API: keyboard layout, applications, and where uploads land.

``GET/PUT {base_url}visa/api/desktop/keyboard``
    The layouts this instance knows, the one in use (or her saved choice while the desktop is not running);
    ``PUT {"layout": "de"}`` switches the running desktop (``setxkbmap``) and remembers it for next time.
``GET {base_url}visa/api/desktop/applications``, ``POST .../applications/<id>``, ``GET .../applications/<id>/icon``
    The desktop's applications (:mod:`.applications`); ``POST`` starts one on the running desktop.
``GET {base_url}visa/api/desktop/folder``
    The contents-API path of ``~/Desktop`` (whose files the desktop shows as icons), for upload and download
    with Jupyter's own contents and files handlers; ``null`` when her home is outside the server's root.

Reading needs ``read`` on the desktop resource, changing anything ``write`` (a view-only guest cannot).
"""

from __future__ import annotations

import mimetypes
import os
import subprocess
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.ioloop import IOLoop

from ..jsonapi import JsonApiHandler
from . import keyboard
from .applications import Application, load_applications
from .handlers import DESKTOP_RESOURCE, DesktopState
from .launch import display_file
from .sessionfiles import bin_dir_of, session_environment

NOT_RUNNING = "The desktop is not running: open the Desktop tab first."


class DesktopApiHandler(JsonApiHandler):
    """Common part: the desktop's state and the environment of programs on its display."""

    auth_resource = DESKTOP_RESOURCE

    def initialize(self, state: DesktopState) -> None:
        self.state = state

    def display(self) -> str | None:
        """``:1`` while the desktop runs, else ``None``."""
        if not self.state.running():
            return None
        try:
            value = display_file(self.state.spec).read_text().strip()
        except OSError:
            return None
        return value or None

    def desktop_env(self, display: str) -> dict[str, str]:
        spec = self.state.spec
        return session_environment(os.environ, display, spec.xauthority, bin_dir_of(Path(spec.socket).parent),
                                   spec.application_dirs)


class KeyboardHandler(DesktopApiHandler):
    """``visa/api/desktop/keyboard``: the layout choices, the current layout, and switching it."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        display = self.display()
        layout = None
        if display:
            try:
                layout = keyboard.current_layout(self.desktop_env(display))
            except keyboard.KeyboardError as exc:
                self.log.warning("visa-hub desktop: %s", exc)
        self.answer({
            "layout": layout or keyboard.load_preference(Path.home()),
            "running": bool(display),
            "layouts": [{"name": layout.name, "description": layout.description}
                        for layout in keyboard.available_layouts()],
        })

    @web.authenticated
    @authorized
    def put(self) -> None:
        name = self.body().get("layout")
        if not isinstance(name, str) or not name:
            raise web.HTTPError(400, 'Send {"layout": "<name>"}, e.g. {"layout": "de"}.')
        if name not in {layout.name for layout in keyboard.available_layouts()}:
            raise web.HTTPError(400, f"Unknown keyboard layout {name!r}.")
        display = self.display()
        if display:
            try:
                keyboard.set_layout(name, self.desktop_env(display))
            except keyboard.KeyboardError as exc:
                raise web.HTTPError(500, str(exc)) from None
        try:
            keyboard.save_preference(Path.home(), name)
        except OSError as exc:  # applied, but not remembered: say so in the log, not as an error to her
            self.log.warning("visa-hub desktop: cannot save the keyboard layout: %s", exc)
        self.log.info("visa-hub desktop: keyboard layout %s (%s)", name, "applied" if display else "saved")
        self.answer({"layout": name, "applied": bool(display)})


class ApplicationsHandler(DesktopApiHandler):
    """``visa/api/desktop/applications``: what the desktop's menus offer."""

    def applications(self) -> list[Application]:
        apps, problems = load_applications(self.state.config.all_application_dirs())
        for problem in problems:
            self.log.warning("visa-hub desktop: %s", problem)
        return apps

    def find(self, app_id: str) -> Application:
        for app in self.applications():
            if app.id == app_id:
                return app
        raise web.HTTPError(404, f"No application {app_id!r} on this desktop.")

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.answer({"applications": [app.to_json() for app in self.applications()]})


class ApplicationHandler(ApplicationsHandler):
    """``POST visa/api/desktop/applications/<id>``: start it on the running desktop."""

    @web.authenticated
    @authorized
    def post(self, app_id: str) -> None:
        app = self.find(app_id)
        display = self.display()
        if not display:
            raise web.HTTPError(409, NOT_RUNNING)
        command = list(app.command)
        if app.terminal:
            command = ["visa-terminal", "-e", *command]
        env = self.desktop_env(display)
        try:
            with open(self.state.spec.log, "ab") as log:
                proc = subprocess.Popen(command, cwd=self.state.spec.cwd, env=env, stdin=subprocess.DEVNULL,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise web.HTTPError(500, f"{app.name} could not start: {exc.strerror}") from None
        IOLoop.current().run_in_executor(None, proc.wait)  # reap it when it ends
        self.log.info("visa-hub desktop: started %s (pid %s)", app.id, proc.pid)
        self.answer({"started": app.id, "pid": proc.pid}, 202)


class ApplicationIconHandler(ApplicationsHandler):
    """``GET visa/api/desktop/applications/<id>/icon``: an entry's icon file (absolute .svg/.png only)."""

    @web.authenticated
    @authorized
    def get(self, app_id: str) -> None:  # type: ignore[override]
        icon = self.find(app_id).icon_file()
        if icon is None:
            raise web.HTTPError(404, f"{app_id!r} has no icon file.")
        self.set_header("Content-Type", mimetypes.guess_type(icon.name)[0] or "application/octet-stream")
        self.set_header("Cache-Control", "max-age=300")
        self.finish(icon.read_bytes())


class FolderHandler(DesktopApiHandler):
    """``visa/api/desktop/folder``: where ``~/Desktop`` is for the contents API."""

    @web.authenticated
    @authorized
    def get(self) -> None:
        root = Path(self.contents_manager.root_dir).expanduser().resolve()
        folder = (Path.home() / "Desktop").resolve()
        if folder == root or root in folder.parents:
            self.answer({"path": folder.relative_to(root).as_posix(), "message": None})
        else:
            self.answer({"path": None,
                         "message": f"Your desktop folder {folder} is outside the files this server shows."})


def setup_desktop_api(serverapp: Any, state: DesktopState) -> None:
    """Register the workstation API next to the desktop's own routes."""
    base_url = serverapp.web_app.settings["base_url"]
    kwargs = {"state": state}
    api = url_path_join(base_url, "visa/api/desktop")
    serverapp.web_app.add_handlers(".*$", [
        (url_path_join(api, "keyboard"), KeyboardHandler, kwargs),
        (url_path_join(api, "applications"), ApplicationsHandler, kwargs),
        (url_path_join(api, "applications", r"([^/]+)"), ApplicationHandler, kwargs),
        (url_path_join(api, "applications", r"([^/]+)", "icon"), ApplicationIconHandler, kwargs),
        (url_path_join(api, "folder"), FolderHandler, kwargs),
    ])
