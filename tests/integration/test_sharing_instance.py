"""The instance enforces sharing roles, against a real hub, real instances and distinct people.

Shares are granted through the hub's REST API by a test service holding what the sessions service holds in
production; what is tested here is the instance: the gate in front of every route, the authorizer, the
owner's presence (lock, disconnect) and revocation closing open websockets.
"""

from __future__ import annotations

import time

import httpx
import pytest
import websocket

from hubtest import UserSession, wait_until
from sharing_support import (
    instance_routes,
    sample_path,
    server_xsrf,
    sharing_hub,
    visit,
    ws_url,
)

pytestmark = pytest.mark.integration

BASE = "/user/alice/"
#: Handlers that answer without a login at all (static files and icons, the API version, login/logout, 404s, the
#: redirect to Lab): a guest gets 403 there too, or at most what a stranger gets.
PUBLIC_HANDLERS = {
    "jupyter_server.base.handlers.MainHandler",
    "jupyter_server_proxy.api.IconHandler",
    "jupyterlab_server.themes_handler.ThemesHandler",
    "jupyter_server.base.handlers.FileFindHandler",
    "jupyter_server.base.handlers.PublicStaticFileHandler",
    "jupyter_server.base.handlers.APIVersionHandler",
    "jupyter_server.base.handlers.Template404",
    "jupyter_server.base.handlers.TrailingSlashHandler",
    "jupyter_server.auth.login.LoginFormHandler",
    "jupyter_server.auth.logout.LogoutHandler",
    "tornado.web.StaticFileHandler",  # visa/static: the guest page's script and noVNC
}
#: What a guest is there for: her role, the desktop's status, the view-only page and websocket.
GUEST_HANDLERS = {
    "visa_hub.singleuser.sharing.handlers.MeHandler",
    "visa_hub.singleuser.sharing.handlers.DesktopViewPage",
    "visa_hub.singleuser.desktop.handlers.DesktopStatusHandler",
    "visa_hub.singleuser.desktop.handlers.ViewOnlyDesktopSocketHandler",
}


#: jupyterlab_server's LicensesHandler overrides finish() with a required argument, so it cannot send any error:
#: every refused request (a guest's, or one without login) gets no answer at all — and no data.
NO_ERROR_PAGE = "jupyterlab_server.licenses_handler.LicensesHandler"


def http_status(session: UserSession, method: str, path: str, headers: dict[str, str]) -> int | str:
    try:
        return session.http.request(method, path, headers=headers, follow_redirects=False, content=b"{}",
                                    timeout=10).status_code
    except httpx.ReadTimeout:
        return "no answer"


def cookie_header(session: UserSession) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.http.cookies.jar)


def ws_status(hub, session: UserSession, path: str) -> int:
    """The HTTP status of a websocket handshake at ``path`` as this person (101: opened)."""
    try:
        ws = websocket.create_connection(ws_url(hub, path), cookie=cookie_header(session), timeout=15)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    ws.close()
    return 101


def open_ws(hub, session: UserSession, path: str) -> websocket.WebSocket:
    return websocket.create_connection(ws_url(hub, path), cookie=cookie_header(session), timeout=15)


def closed_within(ws: websocket.WebSocket, timeout: float) -> float | None:
    """Seconds until the server closed ``ws`` (None if it stayed open), reading whatever it sends meanwhile."""
    start = time.monotonic()
    ws.settimeout(0.5)
    while time.monotonic() - start < timeout:
        try:
            opcode, _ = ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            continue
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return time.monotonic() - start
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return time.monotonic() - start
    return None


def alice_with_instance(hub) -> UserSession:
    alice = UserSession(hub, "alice")
    alice.login()
    alice.submit_spawn_form(experiment="LOKI-2026-042")
    alice.wait_ready()
    assert alice.lab().status_code == 200
    return alice


def visitor(hub, name: str) -> UserSession:
    person = UserSession(hub, name)
    assert person.login().status_code == 200
    return person


def test_sharing_guest_gets_403_on_every_lab_and_api_route(tmp_path):
    routes = [r for r in instance_routes(tmp_path) if sample_path(r["pattern"]).startswith(BASE)]
    assert len(routes) > 60, routes  # every extension of the instance environment is there
    with sharing_hub(tmp_path / "data") as (hub, sharer):
        alice = alice_with_instance(hub)
        bob = visitor(hub, "bob")
        sharer.grant("alice", "bob", "guest")
        page = visit(bob, BASE + "visa/desktop-view")
        assert page.status_code == 200 and "View only" in page.text and "alice" in page.text
        xsrf = server_xsrf(bob, "alice")
        # what she is there for works: the view-only desktop, never the control one
        assert ws_status(hub, bob, BASE + "visa-desktop-view/") == 101
        assert ws_status(hub, bob, BASE + "visa-desktop/") == 403
        status = bob.http.get(BASE + "visa/api/desktop").json()
        assert status["view_only"] and status["websocket_path"] == "visa-desktop-view/"
        me = bob.http.get(BASE + "visa/api/sharing/me").json()
        assert (me["role"], me["owner"], me["access"]) == ("guest", "alice",
                                                          {"lab": False, "lab_write": False, "desktop": "view"})

        stranger = UserSession(hub, "nobody")  # not logged in
        refused, reached, unlike_stranger, sockets = [], [], [], []
        for route in routes:
            if route["handler"].endswith("LogoutHandler"):
                continue  # anyone may log out (and it would end this visit)
            path = sample_path(route["pattern"])
            guest_may = route["handler"] in PUBLIC_HANDLERS | GUEST_HANDLERS
            if route["websocket"]:
                results = [("WS", ws_status(hub, bob, path))]
                sockets.append(path[len(BASE):].strip("/"))
            else:
                results = [(m.upper(), http_status(bob, m.upper(), path, xsrf)) for m in route["methods"]]
            for method, status in results:
                row = (method, path, route["handler"], status)
                if route["handler"] in PUBLIC_HANDLERS and not route["websocket"]:
                    if method == "GET" and status != 403 and http_status(stranger, method, path, {}) != status:
                        unlike_stranger.append(row)
                elif guest_may:
                    reached.append(row)
                elif status != 403 and not (route["handler"] == NO_ERROR_PAGE and status == "no answer"):
                    refused.append(row)
        assert not refused, "a guest reached these routes (method, path, handler, status):\n" + \
            "\n".join(map(str, refused))
        assert not unlike_stranger, f"public routes answered the guest unlike a stranger: {unlike_stranger}"
        log = hub.log_text()  # each websocket was refused by the role gate, not for another reason
        assert not [p for p in sockets if "desktop-view" not in p and f"bob (guest) may not reach /{p}:" not in log]
        stranger.close()
        # the routes exist: the owner reaches them
        for path in ("api/contents", "api/kernels", "api/sessions", "api/terminals", "lab/api/settings"):
            assert alice.http.get(BASE + path).status_code == 200, path
        assert any(p.endswith("visa/desktop-view") for _m, p, _h, _s in reached)
        with httpx.Client(base_url=hub.url) as anonymous:  # the licenses route fails the same way without login
            try:
                anonymous.get(BASE + "lab/api/licenses/", timeout=5)
                answered = True
            except httpx.ReadTimeout:
                answered = False
            assert not answered


def test_sharing_revoked_collaborator_is_closed_out_within_seconds(tmp_path):
    with sharing_hub(tmp_path / "data") as (hub, sharer):
        alice = alice_with_instance(hub)
        bob = visitor(hub, "bob")
        assert visit(bob, BASE + "api/contents").status_code == 403  # nothing shared yet
        sharer.grant("alice", "bob", "collaborator")
        lab = visit(bob, BASE + "lab")
        assert lab.status_code == 200, lab.text[:500]
        owner_events = open_ws(hub, alice, BASE + "api/events/subscribe")  # alice is here: nothing is locked
        wait_until(lambda: alice.http.get(BASE + "visa/api/sharing/settings").json()["owner_present"], 10,
                   "alice to count as present")
        assert bob.http.put(BASE + "api/contents/from-bob.txt", headers=server_xsrf(bob, "alice"),
                            json={"type": "file", "format": "text", "content": "hello"}).status_code == 201
        assert alice.get_file("from-bob.txt").json()["content"] == "hello"
        events = open_ws(hub, bob, BASE + "api/events/subscribe")
        wait_until(lambda: any(p["name"] == "bob" for p in
                               alice.http.get(BASE + "visa/api/sharing/presence").json()["connected"]),
                   10, "bob to show up as connected")
        presence = alice.http.get(BASE + "visa/api/sharing/presence").json()
        bob_row = next(p for p in presence["connected"] if p["name"] == "bob")
        assert bob_row["role"] == "collaborator" and bob_row["since"] and bob_row["connections"] == ["lab"]

        revoked = time.monotonic()
        sharer.revoke("alice", "bob")
        gone = closed_within(events, 15)
        assert gone is not None and gone < 10, f"bob's open websocket survived the revocation ({gone})"
        wait_until(lambda: bob.http.get(BASE + "api/contents").status_code == 403, 10 - (time.monotonic() - revoked),
                   "bob's next request to be refused")
        print(f"revoke → access gone: websocket {gone:.1f} s, requests {time.monotonic() - revoked:.1f} s")
        assert closed_within(owner_events, 1) is None  # the owner is untouched
        owner_events.close()
        log = hub.log_text()
        assert '"action": "access-ended"' in log and '"actor": "bob"' in log


@pytest.mark.parametrize("policy", ["lock", "disconnect"])
def test_sharing_owner_away_locks_or_drops_collaborators(tmp_path, policy):
    with sharing_hub(tmp_path / "data") as (hub, sharer):
        alice = alice_with_instance(hub)
        bob = visitor(hub, "bob")
        sharer.grant("alice", "bob", "collaborator")
        assert visit(bob, BASE + "lab").status_code == 200
        xsrf = server_xsrf(alice, "alice")
        settings = alice.http.put(BASE + "visa/api/sharing/settings", headers=xsrf, json={"owner_away": policy})
        assert settings.status_code == 200 and settings.json()["owner_away"] == policy
        assert bob.http.put(BASE + "visa/api/sharing/settings", headers=server_xsrf(bob, "alice"),
                            json={"owner_away": "open"}).status_code == 403  # only the owner decides
        assert alice.http.put(BASE + "visa/api/sharing/settings", json={"owner_away": "open"}).status_code == 403, \
            "a change without the XSRF token must be refused"

        owner_ws = open_ws(hub, alice, BASE + "api/events/subscribe")
        wait_until(lambda: alice.http.get(BASE + "visa/api/sharing/settings").json()["owner_present"], 10,
                   "alice to count as present")
        assert ws_status(hub, bob, BASE + "visa-desktop/") == 101  # control while she is here
        bob_ws = open_ws(hub, bob, BASE + "api/events/subscribe")

        owner_ws.close()  # alice closes her last tab
        gone = closed_within(bob_ws, 10)
        assert gone is not None and gone < 5, f"bob kept his connection {gone} s after alice left ({policy})"
        if policy == "lock":
            assert ws_status(hub, bob, BASE + "visa-desktop/") == 403
            assert ws_status(hub, bob, BASE + "visa-desktop-view/") == 101
            assert bob.http.get(BASE + "api/contents").status_code == 200  # reading goes on
            write = bob.http.put(BASE + "api/contents/locked.txt", headers=server_xsrf(bob, "alice"),
                                 json={"type": "file", "format": "text", "content": "x"})
            assert write.status_code == 403 and "not connected" in write.json()["message"]
            assert bob.http.get(BASE + "visa/api/desktop").json()["view_only"]
        else:
            assert ws_status(hub, bob, BASE + "visa-desktop-view/") == 403
            assert bob.http.get(BASE + "api/contents").status_code == 403
        me = bob.http.get(BASE + "visa/api/sharing/me").json()
        assert "alice is not connected" in me["reason"]

        back = open_ws(hub, alice, BASE + "api/events/subscribe")  # she returns: control comes back
        wait_until(lambda: ws_status(hub, bob, BASE + "visa-desktop/") == 101, 10, "control to come back")
        assert bob.http.get(BASE + "api/contents").status_code == 200
        back.close()
