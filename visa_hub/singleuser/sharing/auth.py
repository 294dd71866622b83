"""The server enforces sharing roles: a gate in front of every route, and an authorizer for every action.

:class:`VisaIdentityProvider` extends JupyterHub's identity provider: after JupyterHub identified the visitor
(and checked she may reach this server at all), the gate (:mod:`.gate`) decides whether her role lets her reach
this route; a visitor turned away gets 403 with the reason, whatever the handler and the method (the Lab page and
jupyter-server-proxy's routes never ask an authorizer). Her websockets are registered with the
:class:`~.state.SharingState`, which closes them when her access ends.

:class:`VisaAuthorizer` (installed by the extension unless ``ServerApp.authorizer_class`` names another)
answers Jupyter Server's per-action questions: ``write`` and ``execute`` need a role that may change things
now; ``write`` on the desktop is control, ``read`` watching.
"""

from __future__ import annotations

import os
from typing import Any

from jupyter_server.auth.authorizer import Authorizer
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.websocket import WebSocketHandler

from ..desktop.handlers import DESKTOP_RESOURCE
from .gate import connection_kind, may_reach, relative_path

try:  # the instance runs jupyterhub-singleuser; a plain jupyter server has no hub and no sharing
    from jupyterhub.singleuser.extension import JupyterHubIdentityProvider
except ImportError:  # pragma: no cover
    JupyterHubIdentityProvider = None  # type: ignore[assignment, misc]

STATE_SETTING = "visa_sharing"
DISABLED_SETTING = "visa_sharing_disabled"


def sharing_state(handler: Any):
    """The server's :class:`~.state.SharingState`, or ``None`` when sharing is not enforced here."""
    return handler.settings.get(STATE_SETTING)


if JupyterHubIdentityProvider is not None:

    class VisaIdentityProvider(JupyterHubIdentityProvider):  # type: ignore[misc, valid-type]
        """JupyterHub's identity provider, plus the sharing gate and websocket registration."""

        async def get_user(self, handler: Any) -> Any:
            if hasattr(handler, "_visa_gate_user"):
                return handler._visa_gate_user
            user = await super().get_user(handler)
            state = sharing_state(handler)
            if user is None or state is None:
                handler._visa_gate_user = user
                return user
            model = user.hub_user
            if model.get("name") != state.owner and state.shares_stale(model.get("name", "")):
                try:
                    await state.refresh_shares()
                except Exception as exc:  # the hub does not answer: the last shares read stand (none at first)
                    handler.log.warning("visa-hub sharing: cannot read this server's shares from the hub: %s", exc)
            access = state.access_of(model)
            rel = relative_path(handler.request.path, handler.settings.get("base_url", "/"))
            websocket = isinstance(handler, WebSocketHandler) or \
                handler.request.headers.get("Upgrade", "").lower() == "websocket"
            if not may_reach(access, rel, websocket=websocket, method=handler.request.method):
                reason = access.reason or "Your role on this instance does not include this."
                if access.desktop and not access.lab:
                    reason += f" Watch it at {url_path_join(handler.base_url, 'visa/desktop-view')}"
                handler.log.info("visa-hub sharing: %s (%s) may not reach /%s: %s", model.get("name"),
                                 access.role or "no role", rel, reason)
                handler._jupyterhub_user = None
                handler._visa_gate_user = None  # the error page asks again: she is nobody here
                handler.current_user = handler._jupyter_current_user = None
                raise web.HTTPError(403, reason.replace("%", "%%"))
            if websocket:
                state.register(handler, model, connection_kind(rel))
            handler._visa_gate_user = user
            return user


class VisaAuthorizer(Authorizer):
    """Per-action decisions from the visitor's role and the owner's presence.

    Without visa-hub's sharing on this server (a plain ``jupyter server``, or ``VisaSharing.enabled = False``)
    it allows whatever the identity provider let in, as Jupyter Server's default authorizer does.
    """

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        state = sharing_state(handler)
        if state is None:
            # no enforcement here: only where no hub is (plain jupyter server) or it was switched off on purpose
            owner = os.environ.get("JUPYTERHUB_USER")
            return not owner or handler.settings.get(DISABLED_SETTING, False) or user.username == owner
        model = getattr(user, "hub_user", None)
        if model is None:
            return False
        access = state.access_of(model)
        if resource == DESKTOP_RESOURCE:
            return access.desktop == "control" if action == "write" else access.desktop is not None
        if not access.lab:
            return False
        return access.lab_write or action == "read"
