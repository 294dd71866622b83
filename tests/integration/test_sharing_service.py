"""Sharing through visa-hub's sessions service, against a real hub, its real service and distinct people.

The owner shares from her instance (the Session panel's calls, which the instance forwards to the service with
its own token); the service applies the rules and grants JupyterHub shares; support staff ask on the service's
support page; the audit trail is read through the service's REST API by an administrator.
"""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import websocket

from hubtest import UserSession, wait_until
from lifetime_support import ServiceClient
from peers.oidc_realm import DEFAULT_USERS, follow_login
from sharing_support import confirm_oauth, server_xsrf, sharing_hub, visit, ws_url
from useroffice_support import broker, keycloak_hub_env, realm, remove_bob_by_event, uo  # noqa: F401

pytestmark = pytest.mark.integration

BASE = "/user/alice/"
SHARING = BASE + "visa/api/sharing/"


def login(hub, name: str) -> UserSession:
    person = UserSession(hub, name)
    assert person.login().status_code == 200
    return person


def alice_with_instance(hub) -> UserSession:
    alice = login(hub, "alice")
    alice.submit_spawn_form(experiment="LOKI-2026-042")
    alice.wait_ready()
    assert alice.lab().status_code == 200
    return alice


def cookie_header(session: UserSession) -> str:
    return "; ".join(f"{c.name}={c.value}" for c in session.http.cookies.jar)


def audit_rows(admin: ServiceClient, **match) -> list[dict]:
    rows = admin.get("api/audit?user=alice&limit=500")["events"]
    return [r for r in rows if all(r.get(k) == v or r["detail"].get(k) == v for k, v in match.items())]


def test_sharing_owner_shares_by_the_rules_and_revokes(tmp_path):
    with sharing_hub(tmp_path / "data", VISA_TEST_SHARING=json.dumps({"interval": 1})) as (hub, _sharer):
        olga = login(hub, "olga")  # staff and admin, not a member of LOKI-2026-042
        alice = alice_with_instance(hub)
        bob = login(hub, "bob")
        xsrf = server_xsrf(alice, "alice")

        outsider = alice.http.post(SHARING + "members", json={"user": "olga", "role": "collaborator"}, headers=xsrf)
        assert outsider.status_code == 400
        assert "not a member of experiment LOKI-2026-042" in outsider.json()["message"]
        assert "Share as guest" in outsider.json()["message"]
        as_support = alice.http.post(SHARING + "members", json={"user": "olga", "role": "support"}, headers=xsrf)
        assert as_support.status_code == 400 and "on request" in as_support.json()["message"]
        assert "bob" in [c["username"] for c in alice.http.get(SHARING + "candidates?q=bo").json()["candidates"]]

        shared = alice.http.post(SHARING + "members", json={"user": "bob", "role": "collaborator"}, headers=xsrf)
        assert shared.status_code == 200, shared.text
        assert visit(bob, BASE + "lab").status_code == 200
        me = bob.http.get(SHARING + "me").json()
        assert (me["role"], me["owner"]) == ("collaborator", "alice")
        # a collaborator sees the members, but only the owner shares
        assert [m["user"] for m in bob.http.get(SHARING + "members").json()["members"]] == ["bob"]
        by_bob = bob.http.post(SHARING + "members", json={"user": "olga", "role": "guest"},
                               headers=server_xsrf(bob, "alice"))
        assert by_bob.status_code == 403
        # users do not hold JupyterHub's shares scope: bob cannot share alice's server through the hub either
        hub_xsrf = {"X-XSRFToken": bob.http.cookies.get("_xsrf", path="/hub/")}
        direct = bob.http.post("/hub/api/shares/alice/", json={"user": "olga"}, headers=hub_xsrf)
        assert direct.status_code == 403

        # bob joins (a websocket of Lab, while alice is here): the instance reports it to the audit trail
        owner_ws = websocket.create_connection(ws_url(hub, BASE + "api/events/subscribe"),
                                               cookie=cookie_header(alice), timeout=15)
        wait_until(lambda: alice.http.get(SHARING + "settings").json()["owner_present"], 10, "alice to be present")
        ws = websocket.create_connection(ws_url(hub, BASE + "api/events/subscribe"), cookie=cookie_header(bob),
                                         timeout=15)
        admin = ServiceClient(olga)
        wait_until(lambda: audit_rows(admin, action="join", actor="bob"), 15, "bob's join in the audit trail")

        revoked = alice.http.delete(SHARING + "members/bob", headers=xsrf)
        assert revoked.status_code == 200, revoked.text
        assert bob.http.get(BASE + "api/contents").status_code == 403  # at once: the instance re-read its shares
        ws.settimeout(10)
        with pytest.raises((websocket.WebSocketConnectionClosedException, ConnectionError)):
            while True:
                ws.recv()

        granted = audit_rows(admin, action="share-granted", whom="bob")[0]
        assert granted["actor"] == "alice" and granted["detail"]["role"] == "collaborator"
        assert granted["detail"]["experiment"] == "LOKI-2026-042" and granted["at"]
        assert audit_rows(admin, action="share-refused", whom="olga")
        assert audit_rows(admin, action="share-revoked", whom="bob")[0]["actor"] == "alice"
        assert audit_rows(admin, action="leave", actor="bob") or \
            wait_until(lambda: audit_rows(admin, action="leave", actor="bob"), 15, "bob's leave")
        assert ServiceClient(alice).http.get("/services/visa-sessions/api/audit").status_code == 403
        owner_ws.close()
        log = hub.log_text()
        assert '"action": "share-granted"' in log and '"whom": "bob"' in log


def test_sharing_support_request_accepted_for_a_window_and_audited(tmp_path):
    window = 0.006  # hours: about 22 s
    with sharing_hub(tmp_path / "data", VISA_TEST_SHARING=json.dumps({"interval": 1, "support_hours": window})) \
            as (hub, _sharer):
        olga = login(hub, "olga")
        alice = alice_with_instance(hub)
        carl = login(hub, "carl")  # staff, local contact of LOKI-2026-042
        bob = login(hub, "bob")

        support = ServiceClient(carl)
        page = carl.http.get("/services/visa-sessions/support")
        assert page.status_code == 200 and "Request access" in page.text
        rows = support.get("api/supportable")["instances"]
        assert [(r["owner"], r["experiment"], r["state"]) for r in rows] == [("alice", "LOKI-2026-042", None)]
        assert ServiceClient(bob).post("api/instances/alice//support-requests", {"comment": "hi"},
                                       expect=403)["message"].startswith("Only facility support staff")
        request = support.post("api/instances/alice//support-requests", {"comment": "Your LoKI reduction fails"})
        assert request["status"] == "pending"
        assert visit(carl, BASE + "lab").status_code == 403  # nothing before the answer
        assert support.get("api/supportable")["instances"][0]["state"] == "pending"

        pending = alice.http.get(SHARING + "requests").json()["requests"]
        assert [(r["requester"], r["status"], r["comment"]) for r in pending] == [
            ("carl", "pending", "Your LoKI reduction fails")]
        accepted_at = time.monotonic()
        answer = alice.http.post(SHARING + f"requests/{request['id']}", json={"decision": "support"},
                                 headers=server_xsrf(alice, "alice"))
        assert answer.status_code == 200 and answer.json()["status"] == "accepted-as-support", answer.text
        assert visit(carl, BASE + "lab").status_code == 200
        assert carl.http.get(SHARING + "me").json()["role"] == "support"
        assert support.get("api/supportable")["instances"][0]["state"] == "accepted-as-support"
        member = next(m for m in alice.http.get(SHARING + "members").json()["members"] if m["user"] == "carl")
        assert member["role"] == "support" and member["expires_at"]

        admin = ServiceClient(olga)
        asked = audit_rows(admin, action="support-requested")[0]
        assert asked["actor"] == "carl" and asked["user"] == "alice" and asked["at"]
        approved = audit_rows(admin, action="support-accepted-as-support")[0]
        assert approved["detail"]["whom"] == "carl" and approved["detail"]["approved_by"] == "alice"
        granted = audit_rows(admin, action="share-granted", whom="carl")[0]
        assert granted["detail"]["role"] == "support" and granted["detail"]["expires_at"]

        # after the support window, carl is out
        wait_until(lambda: carl.http.get(BASE + "api/contents").status_code == 403, window * 3600 + 20,
                   "carl's support window to end")
        assert time.monotonic() - accepted_at >= window * 3600 - 1
        ended = audit_rows(admin, action="share-revoked", whom="carl")[0]
        assert ended["actor"] == "visa-sessions" and ended["detail"]["reason"] == "support window ended"
        assert support.get("api/supportable")["instances"][0]["state"] == "ended"


# -- a member removed in the User Office loses her share: real Keycloak realm, GraphQL User Office, RabbitMQ ----
def test_sharing_member_removed_by_user_office_event_loses_her_share(tmp_path, realm, broker, uo):  # noqa: F811
    passwords = {u.username: u.password for u in DEFAULT_USERS}
    env = {**keycloak_hub_env(realm, uo, broker), "VISA_TEST_SHARING": json.dumps({"interval": 1})}
    with sharing_hub(tmp_path / "data", **env) as (hub, _sharer):
        people = {}
        for name in ("alice", "bob"):
            people[name] = UserSession(hub, name)
            page = follow_login(people[name].http, f"{hub.url}/hub/oauth_login?next=/hub/home", name,
                                passwords[name])
            assert page.status_code == 200, page.text[:500]
        alice, bob = people["alice"], people["bob"]
        response = alice.submit_spawn_form(experiment="587412", flavour="small")
        assert response.status_code == 200, response.text[:1000]
        alice.wait_ready()
        assert alice.lab().status_code == 200
        shared = alice.http.post(SHARING + "members", json={"user": "bob", "role": "collaborator"},
                                 headers=server_xsrf(alice, "alice"))
        assert shared.status_code == 200, shared.text
        assert visit(bob, BASE + "lab").status_code == 200
        wait_until(lambda: hub.log_text().count("Listening to User Office events") >= 2, 30,
                   "the sessions service to listen to User Office events")

        remove_bob_by_event(uo, broker)
        removed = time.monotonic()
        wait_until(lambda: not [m for m in alice.http.get(SHARING + "members").json()["members"]
                                if m["user"] == "bob"], 10, "bob's share to be removed")
        wait_until(lambda: bob.http.get(BASE + "api/contents").status_code == 403,
                   10 - (time.monotonic() - removed), "bob to lose access")
        print(f"User Office event → share gone: {time.monotonic() - removed:.1f} s")
        assert "no longer a member of 587412" in hub.log_text()


def test_sharing_unrestricted_access_lets_support_in_while_the_owner_is_away(tmp_path):
    with sharing_hub(tmp_path / "data", VISA_TEST_SHARING=json.dumps({"interval": 1})) as (hub, _sharer):
        olga = login(hub, "olga")
        alice = alice_with_instance(hub)
        carl = login(hub, "carl")
        settings = alice.http.put(SHARING + "settings", json={"unrestricted": True},
                                  headers=server_xsrf(alice, "alice"))
        assert settings.status_code == 200 and settings.json()["unrestricted"]
        support = ServiceClient(carl)
        # alice has no tab open: with unrestricted access, carl's request is accepted without her, and audited
        request = support.post("api/instances/alice//support-requests", {"comment": "night shift check"})
        assert request["status"] == "accepted-as-support"
        assert visit(carl, BASE + "lab").status_code == 200
        me = carl.http.get(SHARING + "me").json()
        assert (me["role"], me["access"]["lab_write"]) == ("support", True)  # not locked: unrestricted
        admin = ServiceClient(olga)
        accepted = audit_rows(admin, action="support-accepted-as-support")[0]
        assert accepted["actor"] == "visa-sessions"
        assert accepted["detail"]["reason"] == "unrestricted access while the owner is away"
        assert audit_rows(admin, action="sharing-settings")[0]["detail"]["unrestricted"] is True
        # share codes are off unless the site enables them
        refused = alice.http.post(SHARING + "codes", json={}, headers=server_xsrf(alice, "alice"))
        assert refused.status_code == 403 and "not enabled" in refused.json()["message"]


def test_sharing_guest_by_share_code_where_the_site_enables_them(tmp_path):
    with sharing_hub(tmp_path / "data", VISA_TEST_SHARING=json.dumps({"share_codes": True})) as (hub, _sharer):
        alice = alice_with_instance(hub)
        bob = login(hub, "bob")
        made = alice.http.post(SHARING + "codes", json={}, headers=server_xsrf(alice, "alice"))
        assert made.status_code == 200, made.text
        accept_url = made.json()["accept_url"]
        page = bob.http.get(accept_url)
        assert page.status_code == 200 and "alice" in page.text
        form = {"_xsrf": bob.http.cookies.get("_xsrf", path="/hub/"),
                "code": parse_qs(urlsplit(accept_url).query)["code"][0]}
        landed = confirm_oauth(bob, bob.http.post(urlsplit(accept_url).path + "?" + urlsplit(accept_url).query,
                                                  data=form))
        assert landed.url.path == BASE + "visa/desktop-view" and "View only" in landed.text, landed.url
        assert bob.http.get(SHARING + "me").json()["role"] == "guest"
        assert bob.http.get(BASE + "lab").status_code == 403



def test_sharing_ends_when_the_instance_stops_and_does_not_reach_her_next_one(tmp_path):
    """JupyterHub keeps the shares of a stopped default server; her next instance must not inherit them."""
    with sharing_hub(tmp_path / "data", VISA_TEST_SHARING=json.dumps({"interval": 1})) as (hub, _sharer):
        olga = login(hub, "olga")
        alice = alice_with_instance(hub)
        bob = login(hub, "bob")
        shared = alice.http.post(SHARING + "members", json={"user": "bob", "role": "collaborator"},
                                 headers=server_xsrf(alice, "alice"))
        assert shared.status_code == 200, shared.text
        assert visit(bob, BASE + "lab").status_code == 200

        alice.stop_server()
        alice.submit_spawn_form(experiment="LOKI-2026-042")  # her next instance, at once
        alice.wait_ready()
        assert alice.lab().status_code == 200
        owner_ws = websocket.create_connection(ws_url(hub, BASE + "api/events/subscribe"),
                                               cookie=cookie_header(alice), timeout=15)  # she is there
        wait_until(lambda: alice.http.get(SHARING + "settings").json()["owner_present"], 10, "alice to be present")
        wait_until(lambda: visit(bob, BASE + "lab").status_code == 403, 20,
                   "bob to be out of alice's next instance")
        owner_ws.close()
        hub_xsrf = {"X-XSRFToken": olga.http.cookies.get("_xsrf", path="/hub/")}
        assert olga.http.get("/hub/api/shares/alice/", headers=hub_xsrf).json()["items"] == []
        assert alice.http.get(SHARING + "members").json()["members"] == []
        ended = audit_rows(ServiceClient(olga), action="share-revoked", whom="bob")
        assert ended[0]["actor"] == "visa-sessions" and ended[0]["detail"]["reason"] == "the instance stopped"
