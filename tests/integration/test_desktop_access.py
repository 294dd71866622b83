"""Only the owner of an instance (and whom the hub grants access) can open its desktop websockets.

A real hub: alice starts her instance; bob, another logged-in hub user who knows the URL, presents his own
cookies to both of alice's desktop websockets and is refused with 403, while alice's cookies open them.
"""

from __future__ import annotations

import shutil

import pytest
import websocket
from conftest import missing_peer

from hubtest import UserSession

pytestmark = pytest.mark.integration


def _cookie_header(session: UserSession) -> str:
    """Every cookie the user's browser holds for the hub, whatever its path (the worst case)."""
    return "Cookie: " + "; ".join(f"{c.name}={c.value}" for c in session.http.cookies.jar)


def _open(url: str, session: UserSession, origin: str) -> websocket.WebSocket:
    return websocket.create_connection(url, header=[_cookie_header(session)], origin=origin,
                                       subprotocols=["binary"], timeout=20)


def test_another_hub_user_gets_403_on_the_desktop_websockets(start_hub):
    if shutil.which("Xvnc") is None:
        missing_peer("Xvnc not installed (scripts/install-desktop.sh)")
    hub = start_hub()
    alice, bob = UserSession(hub, "alice"), UserSession(hub, "bob")
    try:
        alice.login()
        alice.submit_spawn_form(experiment="LOKI-2026-042")
        alice.wait_ready()
        assert alice.lab().status_code == 200  # completes the OAuth dance: alice now has her server's cookie
        bob.login()
        assert bob.http.get("/user/alice/lab").status_code == 403  # the hub refuses him the page too

        base = hub.url.replace("http://", "ws://") + "/user/alice/"
        for path in ("visa-desktop/", "visa-desktop-view/"):
            with pytest.raises(websocket.WebSocketBadStatusException) as refused:
                _open(base + path, bob, hub.url)
            assert refused.value.status_code == 403, path

            ws = _open(base + path, alice, hub.url)
            assert ws.recv().startswith(b"RFB 003."), path
            ws.close()
    finally:
        alice.close()
        bob.close()
