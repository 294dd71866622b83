"""The sharing routes of the server extension.

``GET  visa/api/sharing/me``        my role on this instance, whose it is, what I may do now (anyone let in)
``GET  visa/api/sharing/presence``  who is connected now: name, role, since when, to what (Lab roles)
``GET  visa/api/sharing/settings``  the owner's ``owner_away`` and "unrestricted access" (Lab roles)
``PUT  visa/api/sharing/settings``  change them (the owner only; JSON ``{"owner_away": ..., "unrestricted": ...}``)
``GET  visa/desktop-view``          the desktop-only page for guests: "view only", whose instance it is
``GET  visa/static/...``            that page's script and noVNC (no secrets: served without login)

Members, candidates and support requests go to the hub's sessions service: see :mod:`.forward`.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from string import Template
from typing import Any

from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ...sharing.roles import OWNER, ROLE_TITLES
from ..session import SessionError, load_session
from .auth import sharing_state
from .forward import call_service

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE.parent / "static"
GUEST_PAGE = HERE / "desktop_view.html"


def _experiment() -> dict[str, str]:
    try:
        session = load_session(os.environ) or {}
    except SessionError:
        session = {}
    experiment = session.get("experiment") or {}
    return {"code": experiment.get("code", ""), "title": experiment.get("title", "")}


class SharingHandler(APIHandler):
    """Base: JSON answers about this server's sharing state."""

    @property
    def state(self):
        state = sharing_state(self)
        if state is None:
            raise web.HTTPError(404, "Sharing is not enforced on this server (it does not run under visa-hub's hub).")
        return state

    @property
    def model(self) -> dict[str, Any]:
        return self.current_user.hub_user

    def write_json(self, data: Any) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data))


class MeHandler(SharingHandler):
    @web.authenticated
    def get(self) -> None:
        state = self.state
        access = state.access_of(self.model)
        base = self.base_url
        self.write_json({
            "user": self.model.get("name"), "role": access.role,
            "role_title": ROLE_TITLES.get(access.role or "", "no access"),
            "owner": state.owner, "server_name": state.server_name, "experiment": _experiment(),
            "access": {"lab": access.lab, "lab_write": access.lab_write, "desktop": access.desktop},
            "reason": "" if access.role == OWNER else access.reason,
            **state.policy(),
            "lab_url": url_path_join(base, "lab"), "desktop_view_url": url_path_join(base, "visa/desktop-view"),
        })


class PresenceHandler(SharingHandler):
    @web.authenticated
    def get(self) -> None:
        state = self.state
        self.write_json({"owner": state.owner, "connected": state.connected(), **state.policy()})


class SettingsHandler(SharingHandler):
    @web.authenticated
    def get(self) -> None:
        self.write_json(self.state.policy())

    @web.authenticated
    async def put(self) -> None:
        state = self.state
        if state.role_of(self.model) != OWNER:
            raise web.HTTPError(403, "Only the owner of this instance changes how it is shared.")
        try:
            body = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise web.HTTPError(400, f"The request body is not JSON: {exc.msg}") from None
        if not isinstance(body, dict) or set(body) - {"owner_away", "unrestricted"}:
            raise web.HTTPError(400, 'Send a JSON object with "owner_away" and/or "unrestricted".')
        unrestricted = body.get("unrestricted")
        if unrestricted is not None and not isinstance(unrestricted, bool):
            raise web.HTTPError(400, '"unrestricted" must be true or false.')
        try:
            state.set_policy(owner_away=body.get("owner_away"), unrestricted=unrestricted, actor=self.model["name"])
        except ValueError as exc:
            raise web.HTTPError(400, str(exc)) from None
        # kept by the sessions service, so that a restarted instance starts with it (best effort: it applies here)
        await call_service("PUT", "sharing-settings", {"owner_away": state.owner_away,
                                                       "unrestricted": state.unrestricted,
                                                       "actor": self.model["name"]})
        self.write_json(state.policy())

    post = put


class DesktopViewPage(JupyterHandler):
    """The desktop, view only, on a page of its own: what a guest opens (she may not load Lab)."""

    @web.authenticated
    def get(self) -> None:
        state = sharing_state(self)
        owner = state.owner if state else os.environ.get("JUPYTERHUB_USER", "")
        experiment = _experiment()
        role = state.access_of(self.current_user.hub_user).role if state else None
        page = Template(GUEST_PAGE.read_text()).substitute(
            owner=html.escape(owner), experiment=html.escape(experiment["code"] or "an experiment"),
            experiment_title=html.escape(experiment["title"]),
            role=html.escape(ROLE_TITLES.get(role or "", "visitor")),
            user=html.escape(self.current_user.username),
            base_url=html.escape(self.base_url, quote=True),
            static=html.escape(url_path_join(self.base_url, "visa/static/"), quote=True),
            xsrf=html.escape(self.xsrf_token.decode(), quote=True),  # the page's API calls send it back
        )
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page)


def setup_handlers(web_app: Any) -> None:
    from .forward import setup_forwarding

    setup_forwarding(web_app)
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [
        (url_path_join(base_url, "visa/api/sharing/me"), MeHandler),
        (url_path_join(base_url, "visa/api/sharing/presence"), PresenceHandler),
        (url_path_join(base_url, "visa/api/sharing/settings"), SettingsHandler),
        (url_path_join(base_url, "visa/desktop-view"), DesktopViewPage),
        (url_path_join(base_url, "visa/static/(.*)"), web.StaticFileHandler, {"path": str(STATIC_DIR)}),
    ])
