"""Every HTTP door of wave 2, tried as another person would: a real hub, its sessions service, two real instances.

alice and bob (distinct hub users) each run an instance named ``loki`` of their LoKI experiment; olga is an
admin. Each row of :data:`DOORS` is one endpoint and the person who has the right to use it; the tests try it as

- that person from her own page (cookies and the right XSRF token): it works (the row's ``ok`` status);
- for changes (POST, PUT): her cookies sent along by another site's form (no XSRF token) or script (a made-up
  token): refused;
- bob (another person) with his own cookies, a logged-out visitor, and bob's instance's server token: refused.

(A script of another page of the *same origin* is not a principal here: on a single-origin hub such a page can
read any hub page with her cookies, XSRF tokens included, as JupyterHub documents; per-user origins
(``JupyterHub.subdomain_host``) are the protection, see docs/security.md.)

"Refused" means an error status or the login page — and for reads, never the answer's content. Odd names
(``..``, ``/`` encoded, unicode) and oversized bodies get a clear 4xx, never a file or a 500. The hub, its
service and the instances log at DEBUG; no token or cookie may show up in that log.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from security_support import (
    SERVICE,
    Principal,
    describe,
    environ_of_service,
    login_everywhere,
    refused,
    server_token,
)

from hubtest import REPO, HubProcess, UserSession, wait_until

pytestmark = pytest.mark.integration

EXPERIMENT = "LOKI-2026-042"  # alice's and bob's experiment in the demo User Office
SERVER = "loki"

HUB_CONFIG = """
from visa_hub.hubconfig import configure

c = get_config()  # noqa: F821
configure(c)
c.JupyterHub.log_level = "DEBUG"
c.Spawner.debug = True
c.SessionsApp.log_level = "DEBUG"
c.VisaSessions.poll_interval = 2
# secrets a production config holds (unused here): none may reach a log
c.KeycloakAuthenticator.client_secret = {keycloak_secret!r}
c.GraphQLUserOffice.token = {user_office_token!r}
"""


@dataclass
class Site:
    hub: HubProcess
    people: dict[str, UserSession]
    tokens: dict[str, str]  # server tokens of the running instances, by owner
    config_secrets: dict[str, str]  # secrets in the hub's configuration, by name
    outsider: httpx.Client  # no cookies (a logged-out visitor, or a caller with a token)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if not (REPO / "node_modules/.bin/configurable-http-proxy").exists():
        from conftest import missing_peer

        missing_peer("configurable-http-proxy not installed (run `npm install`)")
    directory = tmp_path_factory.mktemp("security")
    config = directory / "hub_config_security.py"
    config_secrets = {"Keycloak client secret": secrets.token_hex(16), "User Office token": secrets.token_hex(16),
                      "demo password": secrets.token_hex(12)}
    config.write_text(HUB_CONFIG.format(keycloak_secret=config_secrets["Keycloak client secret"],
                                        user_office_token=config_secrets["User Office token"]))
    hub = HubProcess(directory / "data", config_file=config,
                     extra_env={"VISA_DEMO_PASSWORD": config_secrets["demo password"]})
    people: dict[str, UserSession] = {}
    try:
        hub.start()
        for name in ("alice", "bob", "olga"):
            people[name] = UserSession(hub, name)
            assert people[name].login(config_secrets["demo password"]).status_code == 200
        for name in ("alice", "bob"):
            started = people[name].http.post(f"/hub/api/users/{name}/servers/{SERVER}", json={"experiment": EXPERIMENT},
                                             headers=people[name]._hub_xsrf())
            assert started.status_code in (201, 202), started.text
        for name in ("alice", "bob"):
            wait_until(lambda n=name: people[n].http.get(f"/hub/api/users/{n}", headers=people[n]._hub_xsrf())
                       .json()["servers"].get(SERVER, {}).get("ready"), 120, f"{name}'s instance")
            login_everywhere(people[name])
        login_everywhere(people["olga"], lab=False)
        tokens = {name: server_token(hub, name, SERVER) for name in ("alice", "bob")}
        for name in ("alice", "bob"):
            wait_until(lambda n=name: people[n].http.get(f"{SERVICE}api/instances/{n}/{SERVER}").status_code == 200,
                       60, f"the sessions service to follow {name}'s instance")
        config_secrets["auth_state key"] = (hub.data_dir / "jupyterhub_crypt_key").read_text().strip()
        with httpx.Client(base_url=hub.url, follow_redirects=True, timeout=30) as outsider:
            yield Site(hub, people, tokens, config_secrets, outsider)
    finally:
        for session in people.values():
            session.close()
        hub.stop()
        hub.kill_instances()


@dataclass(frozen=True)
class Door:
    """One endpoint: who has the right to use it, what she gets, and what only access would show."""

    name: str
    method: str
    path: str
    owner: str  # the person who has the right ("alice" or the admin "olga")
    ok: int | None  # her status (None: not tried, the call would change something the other rows need)
    secret: str | None = None  # a text only present when access was granted (reads)
    body: Any = None


USER = f"/user/alice/{SERVER}/"
DOORS = [
    # the hub's own pages and APIs (visa_hub.dashboard, visa_hub.hubpages, visa_hub.apps.hubstore)
    Door("dashboard-api", "GET", "/hub/api/visa/users/alice/instances", "alice", 200, EXPERIMENT),
    Door("relaunch-page", "GET", f"/hub/visa/relaunch/alice/{SERVER}", "alice", 200, "_xsrf"),
    Door("stop-page", "GET", f"/hub/visa/stop/alice/{SERVER}", "alice", 200, "_xsrf"),
    Door("stop", "POST", f"/hub/visa/stop/alice/{SERVER}", "alice", None),
    Door("relaunch", "POST", f"/hub/visa/relaunch/alice/{SERVER}", "alice", None),
    Door("ops-page", "GET", "/hub/visa/ops", "olga", 200, 'id="visa-ops-instances"'),
    Door("ops-instances", "GET", "/hub/api/visa/ops/instances", "olga", 200, EXPERIMENT),
    Door("ops-status", "GET", "/hub/api/visa/ops/status", "olga", 200, '"statuses"'),
    Door("ops-lifetimes", "GET", "/hub/api/visa/ops/lifetimes/api/instances?all=1", "olga", 200, '"user": "alice"'),
    Door("provenance-list", "GET", "/hub/api/visa/provenance/alice", "alice", 200, EXPERIMENT),
    # the sessions service (visa_hub.sessions.handlers)
    Door("service-instance", "GET", f"{SERVICE}api/instances/alice/{SERVER}", "alice", 200, EXPERIMENT),
    Door("service-extend", "POST", f"{SERVICE}api/instances/alice/{SERVER}/extend", "alice", 400, body={"hours": 0}),
    Door("service-stop", "POST", f"{SERVICE}api/instances/alice/{SERVER}/stop", "alice", None, body={}),
    Door("service-all-instances", "GET", f"{SERVICE}api/instances?all=1", "olga", 200, '"user": "alice"'),
    Door("service-audit", "GET", f"{SERVICE}api/audit?limit=50", "olga", 200, "instance-seen"),
    # (the service's admin page leads to the hub's operator console, visa_hub.ops)
    Door("service-admin-page", "GET", f"{SERVICE}admin", "olga", 200, 'id="visa-ops-instances"'),
    Door("service-expiry", "POST", f"{SERVICE}api/instances/alice/{SERVER}/expiry", "olga", 400,
         body={"expires_at": "2000-01-01T00:00:00+00:00"}),
    Door("service-decide", "POST", f"{SERVICE}api/requests/999999", "olga", 404, body={"decision": "accept"}),
    # its sharing API (visa_hub.sessions.sharing_handlers)
    Door("service-shares", "GET", f"{SERVICE}api/instances/alice/{SERVER}/shares", "alice", 200, '"members"'),
    Door("service-share", "POST", f"{SERVICE}api/instances/alice/{SERVER}/shares", "alice", None,
         body={"user": "bob", "role": "collaborator"}),
    Door("service-sharing-settings", "PUT", f"{SERVICE}api/instances/alice/{SERVER}/sharing-settings", "alice", 400,
         body={"owner_away": "no-such-policy"}),
    Door("service-support-requests", "GET", f"{SERVICE}api/instances/alice/{SERVER}/support-requests", "alice", 200,
         '"requests"'),
    Door("service-sharing-events", "POST", f"{SERVICE}api/instances/alice/{SERVER}/sharing-events", "alice", None,
         body={"event": "join", "user": "bob"}),
    # alice's instance (visa_hub.singleuser)
    Door("session-api", "GET", f"{USER}visa/api/session", "alice", 200, EXPERIMENT),
    Door("lifetime", "GET", f"{USER}visa/api/lifetime", "alice", 200, "expires_at"),
    Door("lifetime-extend", "POST", f"{USER}visa/api/lifetime/extend", "alice", 400, body={"hours": 0}),
    Door("keyboard", "GET", f"{USER}visa/api/desktop/keyboard", "alice", 200, "layouts"),
    Door("keyboard-set", "PUT", f"{USER}visa/api/desktop/keyboard", "alice", 400, body={"layout": "no-such"}),
    Door("desktop-folder", "GET", f"{USER}visa/api/desktop/folder", "alice", 200, '"path"'),
    Door("applications", "GET", f"{USER}visa/api/desktop/applications", "alice", 200, "visa-terminal"),
    Door("application-start", "POST", f"{USER}visa/api/desktop/applications/visa-terminal", "alice", 409, body={}),
    Door("apps", "GET", f"{USER}visa/api/apps", "alice", 200, '"revision"'),
    Door("apps-launch", "POST", f"{USER}visa/api/apps/launch", "alice", 400, body={"ref": "no-such@1"}),
    Door("apps-records", "GET", f"{USER}visa/api/apps/records", "alice", 200, EXPERIMENT),
    Door("dask-dashboard", "GET", f"{USER}visa-dask/8787/status", "alice", 404),
    Door("contents", "GET", f"{USER}api/contents", "alice", 200, '"directory"'),
]

#: who tries each door besides the right holder (the first two: her own cookies, sent by another site)
OTHERS = ["cookie-without-xsrf", "forged-xsrf", "bob", "visitor", "bob-server-token"]


def principal(site: Site, kind: str, owner: str) -> Principal:
    people = site.people
    if kind == "owner":
        return Principal(owner, people[owner].http, "cookie", session=people[owner])
    if kind == "cookie-without-xsrf":
        return Principal(kind, people[owner].http, "cookie-no-xsrf", session=people[owner])
    if kind == "forged-xsrf":
        return Principal(kind, people[owner].http, "cookie-forged-xsrf", session=people[owner])
    if kind == "bob":
        return Principal(kind, people["bob"].http, "cookie", session=people["bob"])
    if kind == "bob-server-token":
        return Principal(kind, site.outsider, "token", token=site.tokens["bob"])
    return Principal(kind, site.outsider, "anonymous")


@pytest.mark.parametrize("door", [d for d in DOORS if d.ok is not None], ids=lambda d: d.name)
def test_isolation_the_right_holder_gets_through(site: Site, door: Door) -> None:
    """Each door works for the person it is for (so that the refusals below mean something)."""
    response = principal(site, "owner", door.owner).request(door.method, door.path, door.body)
    assert response.status_code == door.ok, describe(response)
    if door.secret:
        assert door.secret in response.text, describe(response)


#: every door × everyone but its right holder; another site's requests only for changes (it cannot read a GET's
#: answer, and GETs change nothing)
ATTEMPTS = [(door, who) for door in DOORS for who in OTHERS
            if not (door.method == "GET" and who in ("cookie-without-xsrf", "forged-xsrf"))]


@pytest.mark.parametrize(("door", "who"), ATTEMPTS, ids=[f"{door.name}-{who}" for door, who in ATTEMPTS])
def test_isolation_nobody_else_gets_through(site: Site, door: Door, who: str) -> None:
    response = principal(site, who, door.owner).request(door.method, door.path, door.body)
    if door.method == "GET" and door.secret:
        assert refused(response) or door.secret not in response.text, describe(response)
    else:
        assert refused(response), describe(response)
    assert response.status_code < 500, describe(response)


# ------------------------------------------------------------------ odd names and oversized bodies

ODD = [
    ("stop-dotdot", "alice", "GET", "/hub/visa/stop/alice/..", None),
    ("stop-encoded-slash", "alice", "GET", "/hub/visa/stop/alice/%2e%2e%2fbob", None),
    ("stop-unicode-user", "alice", "GET", "/hub/visa/stop/al%C3%AFce/loki", None),
    ("relaunch-other-user-encoded", "alice", "GET", "/hub/visa/relaunch/bob%2Floki/", None),
    ("dashboard-dotdot-user", "alice", "GET", "/hub/api/visa/users/..%2Fbob/instances", None),
    ("provenance-traversal", "alice", "GET", "/hub/api/visa/provenance/alice/..%2F..%2Fjupyterhub_cookie_secret",
     None),
    ("provenance-traversal-user", "alice", "GET", "/hub/api/visa/provenance/..%2Falice", None),
    ("service-encoded-slash", "alice", "GET", f"{SERVICE}api/instances/alice%252Floki/x", None),
    ("service-unicode", "alice", "GET", f"{SERVICE}api/instances/%C3%A4lice/loki", None),
    ("service-other-user-double-encoded", "alice", "GET", f"{SERVICE}api/instances/b%256Fb/loki", None),
    ("service-audit-bad-limit", "olga", "GET", f"{SERVICE}api/audit?limit=lots", None),
    ("service-request-huge-id", "olga", "POST", f"{SERVICE}api/requests/{'9' * 40}", {"decision": "accept"}),
    ("service-support-decision-huge-id", "alice", "POST",
     f"{SERVICE}api/instances/alice/{SERVER}/support-requests/{'9' * 40}", {"decision": "refuse"}),
    ("service-extend-not-json", "alice", "POST", f"{SERVICE}api/instances/alice/{SERVER}/extend", b"{not json"),
    ("service-extend-infinite", "alice", "POST", f"{SERVICE}api/instances/alice/{SERVER}/extend",
     b'{"hours": Infinity}'),
    ("service-oversized", "alice", "POST", f"{SERVICE}api/instances/alice/{SERVER}/extend",
     b'{"hours": 1, "comment": "' + b"x" * (200 << 10) + b'"}'),
    ("instance-token-garbage", "alice", "POST", "/hub/api/visa/instance-token", b"[1, 2]"),
    # server names reach job scripts, user_data and paths: JupyterHub must refuse odd ones before any spawner
    ("server-name-newline", "bob", "POST", "/hub/api/users/bob/servers/x%0A%23SBATCH%20--uid=0",
     {"experiment": EXPERIMENT}),
    ("server-name-dotdot", "bob", "POST", "/hub/api/users/bob/servers/..", {"experiment": EXPERIMENT}),
    ("server-name-unicode", "bob", "POST", "/hub/api/users/bob/servers/l%C3%B8ki", {"experiment": EXPERIMENT}),
    ("server-name-shell", "bob", "POST", "/hub/api/users/bob/servers/%24(id)", {"experiment": EXPERIMENT}),
    ("contents-traversal", "alice", "GET", f"{USER}api/contents/..%2F..%2F..%2Fetc%2Fpasswd", None),
    ("dask-dashboard-huge-port", "alice", "GET", f"{USER}visa-dask/{'9' * 300}/status", None),
    ("application-traversal", "alice", "GET", f"{USER}visa/api/desktop/applications/..%2F..%2Fetc/icon", None),
    ("keyboard-not-json", "alice", "PUT", f"{USER}visa/api/desktop/keyboard", b"\xff\xfe"),
    ("apps-launch-args-not-strings", "alice", "POST", f"{USER}visa/api/apps/launch", {"ref": "x@1", "args": [1]}),
    ("instance-token-wrong-code", "alice", "POST", "/hub/api/visa/instance-token",
     {"user": "alice", "server_name": SERVER, "code": "guess"}),
]


@pytest.mark.parametrize(("name", "who", "method", "path", "body"), ODD, ids=[row[0] for row in ODD])
def test_isolation_odd_names_and_bodies_get_a_clear_refusal(site: Site, name: str, who: str, method: str,
                                                            path: str, body: Any) -> None:
    response = principal(site, "owner", who).request(method, path, body)
    assert 400 <= response.status_code < 500, describe(response)
    secret = (site.hub.data_dir / "jupyterhub_cookie_secret").read_bytes().hex()
    assert secret[:16] not in response.text


def test_isolation_provenance_refuses_oversized_records_and_other_owners(site: Site) -> None:
    """The instance's token writes its owner's records only, and no more than 1 MiB of one."""
    alice_token = Principal("alice-server-token", site.people["alice"].http, "token", token=site.tokens["alice"])
    big = {"schema": "visa-hub/provenance/1", "id": "big", "user": "alice", "apps": [], "pad": "x" * (2 << 20)}
    assert alice_token.request("POST", "/hub/api/visa/provenance/alice/big", big).status_code == 413
    bob_token = principal(site, "bob-server-token", "alice")
    forged = {"schema": "visa-hub/provenance/1", "id": "forged", "user": "alice", "apps": []}
    assert refused(bob_token.request("POST", "/hub/api/visa/provenance/alice/forged", forged))
    assert not (site.hub.data_dir / "provenance" / "alice" / "forged.json").exists()


# ------------------------------------------------------------------ the sessions service's own rules


def test_isolation_sessions_service_refuses_tokens_without_access_to_it(site: Site) -> None:
    """A token of bob's that was not given access to the service (e.g. the one his browser got from alice's
    server when he visited it, which her server sees) reads nothing of his there; his full token does."""
    bob = site.people["bob"]
    made = bob.http.post("/hub/api/users/bob/tokens", headers=bob._hub_xsrf(),
                         json={"note": "identify only", "scopes": ["read:users:name!user=bob"]})
    assert made.status_code == 201, made.text
    narrow = httpx.Client(base_url=site.hub.url, timeout=30, headers={"Authorization": f"token {made.json()['token']}"})
    full = bob.http.post("/hub/api/users/bob/tokens", headers=bob._hub_xsrf(), json={"note": "full"})
    wide = httpx.Client(base_url=site.hub.url, timeout=30, headers={"Authorization": f"token {full.json()['token']}"})
    try:
        for path in ("api/instances", "api/requests?status=all", "api/last-options", f"api/instances/bob/{SERVER}",
                     ""):
            assert narrow.get(SERVICE + path).status_code == 403, path
        listed = wide.get(SERVICE + "api/instances")
        assert listed.status_code == 200 and [i["user"] for i in listed.json()["instances"]] == ["bob"]
        # bob's instance's own token: its own instance only
        own = httpx.get(f"{site.hub.url}{SERVICE}api/instances/bob/{SERVER}",
                        headers={"Authorization": f"token {site.tokens['bob']}"})
        assert own.status_code == 200 and own.json()["user"] == "bob"
        assert httpx.get(f"{site.hub.url}{SERVICE}api/instances",
                         headers={"Authorization": f"token {site.tokens['bob']}"}).status_code == 403
    finally:
        narrow.close()
        wide.close()


def test_isolation_sessions_service_audit_names_who_really_asked(site: Site) -> None:
    """An instance's token cannot write another person's name into the audit trail."""
    alice_token = {"Authorization": f"token {site.tokens['alice']}"}
    response = httpx.post(f"{site.hub.url}{SERVICE}api/instances/alice/{SERVER}/extend", headers=alice_token,
                          json={"hours": 1, "comment": "needs a day more", "actor": "olga"}, timeout=30)
    assert response.status_code in (200, 409), response.text
    olga = site.people["olga"]
    events = olga.http.get(f"{SERVICE}api/audit?user=alice&limit=20",
                           headers={"X-XSRFToken": olga.http.cookies.get("_xsrf", path=SERVICE)}).json()["events"]
    asked = [e for e in events if e["action"] in ("extend", "extension-requested")]
    assert asked, events
    assert all(e["actor"] != "olga" for e in asked), asked
    assert all(e["actor"].startswith("alice") for e in asked), asked


# ------------------------------------------------------------------ logs (last: after everything above ran)


def test_isolation_no_secret_in_the_debug_log(site: Site) -> None:
    """Hub, sessions service and instances at DEBUG (all in the hub's log): none of their tokens, no login cookie
    and nothing secret of the hub's configuration is logged."""
    hidden = {f"{owner}'s server token": token for owner, token in site.tokens.items()} | site.config_secrets
    service = environ_of_service(site.hub)
    assert service.get("JUPYTERHUB_API_TOKEN"), "the sessions service is running"
    hidden["the sessions service's token"] = service["JUPYTERHUB_API_TOKEN"]
    hidden["the cookie secret"] = (site.hub.data_dir / "jupyterhub_cookie_secret").read_bytes().hex()
    for name, session in site.people.items():
        for cookie in session.http.cookies.jar:
            # the session id is no credential (JupyterHub itself logs it at INFO, in the XSRF cookie's id)
            if len(cookie.value or "") >= 16 and cookie.name not in ("_xsrf", "jupyterhub-session-id"):
                hidden[f"{name}'s cookie {cookie.name} ({cookie.path})"] = cookie.value
    log = site.hub.log_text()
    assert "[D " in log and "[SessionsApp]" in log, "the hub and its service log at DEBUG"
    leaked = [what for what, value in hidden.items() if value in log]
    assert not leaked, f"in the log at DEBUG: {leaked}"
