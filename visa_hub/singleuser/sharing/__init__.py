"""Shared instances, on the instance's side: roles enforced by the server, not by the browser.

- :mod:`.gate` (pure) which routes a visitor's access reaches; :mod:`.auth` the identity-provider gate and the
  authorizer; :mod:`.state` who is connected, the owner's presence, closing what is no longer allowed
- :mod:`.viewers` tells the hub how many people are on the desktop, by role (``visa_desktop_viewers``)
- :mod:`.handlers` ``visa/api/sharing/me`` (my role here), ``visa/api/sharing/presence`` (who is connected now),
  ``visa/api/sharing/settings`` (the owner's ``owner_away`` and "unrestricted access"), and the guests'
  desktop-only page ``visa/desktop-view``

Roles come from the visitor's JupyterHub token: the shares the hub's sessions service grants carry them as
custom scopes (:mod:`visa_hub.sharing.roles`). Enforcement is on only under JupyterHub (jupyterhub-singleuser's
identity provider) with ``VisaSharing.enabled``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from tornado.ioloop import IOLoop

from .config import VisaSharing
from .state import SharingState
from .viewers import DesktopViewersReporter


def _hub_identity_provider(serverapp: Any):
    from .auth import JupyterHubIdentityProvider

    provider = serverapp.identity_provider
    if JupyterHubIdentityProvider is None or not isinstance(provider, JupyterHubIdentityProvider):
        return None
    return provider


def _install_authorizer(serverapp: Any) -> None:
    """Our authorizer, unless the operator configured one (``ServerApp.authorizer_class``) on purpose."""
    from jupyter_server.auth.authorizer import AllowAllAuthorizer

    from .auth import VisaAuthorizer

    current = serverapp.authorizer
    if isinstance(current, VisaAuthorizer):
        return
    if type(current) is not AllowAllAuthorizer:
        serverapp.log.warning("visa-hub sharing: ServerApp.authorizer_class is %s, not visa-hub's: roles are "
                              "enforced only by the route gate", type(current).__name__)
        return
    authorizer = VisaAuthorizer(parent=serverapp, log=serverapp.log, identity_provider=serverapp.identity_provider)
    serverapp.authorizer = authorizer
    serverapp.web_app.settings["authorizer"] = authorizer


def setup_sharing(serverapp: Any) -> SharingState | None:
    """Turn on role enforcement for this server when it runs under JupyterHub; returns the state (or None)."""
    from .auth import DISABLED_SETTING, STATE_SETTING, VisaIdentityProvider
    from .handlers import setup_handlers

    config = VisaSharing(parent=serverapp)
    provider = _hub_identity_provider(serverapp)
    owner = os.environ.get("JUPYTERHUB_USER", "")
    if not config.enabled:
        serverapp.web_app.settings[DISABLED_SETTING] = True
    if provider is None or not owner or not config.enabled:
        serverapp.log.info("visa-hub sharing: not enforced (no JupyterHub, or VisaSharing.enabled is False)")
        return None
    # jupyterhub-singleuser forces its identity provider class in the server's config; ours extends it with the
    # sharing gate, so the provider already built (with its HubOAuth, its handlers) becomes ours in place
    provider.__class__ = VisaIdentityProvider
    _install_authorizer(serverapp)
    hub_auth = provider.hub_auth
    hub_auth.cache_max_age = int(config.hub_cache_seconds)
    hub_auth.cache.max_age = hub_auth.cache.purge_interval = config.hub_cache_seconds
    state = SharingState(owner=owner, server_name=os.environ.get("JUPYTERHUB_SERVER_NAME", ""), config=config,
                         hub_auth=hub_auth, log=serverapp.log)
    serverapp.web_app.settings[STATE_SETTING] = state
    if os.environ.get("VISA_SESSIONS_URL"):
        from .forward import report_event

        state.report = report_event
        IOLoop.current().add_callback(_load_settings, state)
    setup_handlers(serverapp.web_app)
    viewers = DesktopViewersReporter(hub_auth=hub_auth, owner=owner, server_name=state.server_name,
                                     log=serverapp.log, refresh_interval=config.viewers_refresh_interval)
    IOLoop.current().add_callback(_watch_presence, state, viewers)
    IOLoop.current().add_callback(_recheck_visitors, state)
    serverapp.log.info("visa-hub sharing: roles enforced on %s/%s (owner away: %s)", owner, state.server_name,
                       state.owner_away)
    return state


async def _load_settings(state: SharingState) -> None:
    """The owner's last sharing settings for this instance, as the sessions service keeps them."""
    import json

    from .forward import call_service

    status, body = await call_service("GET", "sharing-settings")
    if status != 200:
        state.log.info("visa-hub sharing: no settings from the sessions service (%s); owner away: %s", status,
                       state.owner_away)
        return
    data = json.loads(body)
    if data.get("owner_away") in ("lock", "disconnect", "open"):
        state.owner_away = data["owner_away"]
    state.unrestricted = bool(data.get("unrestricted", state.unrestricted))
    state.enforce()


async def _watch_presence(state: SharingState, viewers: DesktopViewersReporter) -> None:
    while True:
        try:
            state.look()
            viewers.note(state.desktop_viewers())
        except Exception:  # a bug here must not stop enforcement for good
            state.log.exception("visa-hub sharing: looking at the connections failed")
        await asyncio.sleep(state.config.presence_interval)


async def _recheck_visitors(state: SharingState) -> None:
    """While anyone but the owner is connected, read the shares again: a revoked share closes her connections."""
    while True:
        await asyncio.sleep(state.config.recheck_interval)
        if not state.has_guests():
            continue
        try:
            await state.refresh_shares()
        except Exception:
            state.log.exception("visa-hub sharing: reading this server's shares from the hub failed")
