"""A real hub with Keycloak login and the User Office's GraphQL API and events (all real peers, loopback).

The realm (npm oidc-provider laid out like Keycloak), the User Office GraphQL server and a private
RabbitMQ broker run for the module; the hub runs ``jupyterhub_config.py`` switched to production by the
same environment variables an operator sets (VISA_AUTHENTICATOR, VISA_KEYCLOAK_*, VISA_USER_OFFICE_*).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from conftest import missing_peer

from hubtest import HubProcess, UserSession, wait_until
from peers import PeerError
from peers.oidc_realm import DEFAULT_USERS, KeycloakUser, follow_login, parse_forms
from peers.useroffice_graphql import load_sample_data, user_office
from useroffice_support import PROPOSALS, keycloak_hub_env, keycloak_peer, rabbitmq_peer, remove_bob_by_event

pytestmark = pytest.mark.integration

ACCESS_TOKEN_TTL = 5  # seconds: short enough to wait out

FRANK = KeycloakUser(username="frank", password="frank-password", sub="0b1c2d3e-4f50-4617-8293-a4b5c6d7e855",
                     email="frank.miller@example.org", first_name="Frank", last_name="Miller")
ERIN = KeycloakUser(username="erin", password="erin-password", sub="7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c66",
                    email="erin.novak@example.org", first_name="Erin", last_name="Novak")
USERS = (*DEFAULT_USERS, FRANK, ERIN)
PASSWORDS = {u.username: u.password for u in USERS}

HUB_CONFIG = """
from visa_hub.hubconfig import configure

c = get_config()  # noqa: F821
configure(c)
c.KeycloakAuthenticator.auth_refresh_age = 2       # pages re-check her login every 2 s (default 300)
c.KeycloakAuthenticator.token_refresh_margin = 1
c.GraphQLUserOffice.timeout = 3
"""


def sample_data() -> dict:
    """The peer's sample data plus Frank, registered in the User Office but on no proposal."""
    data = load_sample_data()
    data["users"].append({"id": 6, "firstname": "Frank", "lastname": "Miller", "email": FRANK.email,
                          "oidcSub": FRANK.sub, "institutionId": 2, "roles": ["user"]})
    return data


@pytest.fixture(scope="module")
def realm():
    yield from keycloak_peer(users=USERS, access_token_ttl=ACCESS_TOKEN_TTL)


@pytest.fixture(scope="module")
def broker():
    yield from rabbitmq_peer()


def start_keycloak_hub(data_dir: Path, realm, uo, broker=None) -> HubProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.parent / "keycloak_config.py"
    config.write_text(HUB_CONFIG)
    env = {**keycloak_hub_env(realm, uo, broker), "VISA_LOG_LEVEL": "DEBUG"}
    return HubProcess(data_dir, config_file=config, extra_env=env)


@pytest.fixture(scope="module")
def stack(realm, broker, tmp_path_factory):
    """Realm + User Office + RabbitMQ + hub, shared by the module's tests (each uses its own users)."""
    try:
        uo_context = user_office(sample_data())
        uo = uo_context.__enter__()
    except PeerError as exc:
        missing_peer(str(exc))
    hub = start_keycloak_hub(tmp_path_factory.mktemp("keycloak-hub") / "data", realm, uo, broker)
    try:
        hub.start()
        yield hub, realm, uo, broker
    finally:
        hub.stop()
        hub.kill_instances()
        uo_context.__exit__(None, None, None)


class KeycloakSession(UserSession):
    """A person's browser-like session: logs in through the realm's login page."""

    def login(self, password: str | None = None, next_url: str = "/hub/spawn"):
        return follow_login(self.http, f"{self.hub.url}/hub/oauth_login?next={next_url}", self.username,
                            password or PASSWORDS[self.username])


def offered(page_text: str) -> list[str]:
    return re.findall(r'name="experiment"[^>]*value="([^"]+)"', page_text)


def instrument_of(page_text: str, code: str) -> str:
    return re.search(rf'value="{re.escape(code)}" data-instrument="([^"]+)"', page_text).group(1)


def logged_in(hub, username: str) -> KeycloakSession:
    session = KeycloakSession(hub, username)
    page = session.login()
    assert page.url.path == "/hub/spawn", (page.url, page.text[:1000])
    return session


# ---------------------------------------------------------------------------------------------
def test_member_logs_in_and_is_offered_exactly_her_experiments(stack):
    hub, *_ = stack
    alice = logged_in(hub, "alice")
    form = alice.spawn_form()
    assert offered(form.text) == ["587412", "587533"]  # running LoKI experiment first, then ODIN (in 10 days)
    assert "principal investigator" in form.text and "co proposer" in form.text
    groups = alice.http.get("/hub/api/user", headers=alice._hub_xsrf()).json()["groups"]
    assert sorted(groups) == ["instrument:LoKI", "instrument:ODIN", "proposal:587412", "proposal:587533"]


def test_user_without_experiment_is_refused_with_the_reason(stack):
    hub, *_ = stack
    frank = KeycloakSession(hub, "frank")
    page = frank.login()
    assert page.status_code == 403
    assert "not a member of any experiment in the User Office" in page.text


def test_user_known_by_email_only_is_found_and_undated_proposals_are_not_offered(stack):
    hub, *_ = stack
    erin = logged_in(hub, "erin")  # no oidcSub in the User Office: found by her verified email
    # co-proposer of 587533; her own 587690 has no scheduled experiment yet, so it has no dates
    assert offered(erin.spawn_form().text) == ["587533"]
    assert "Experiment 587690 on BIFROST not offered: no scheduled experiment" in hub.log_text()


def test_staff_see_every_experiment_and_roles_come_from_keycloak(stack):
    hub, *_ = stack
    carol = logged_in(hub, "carol")  # realm role staff, client role support
    assert offered(carol.spawn_form().text) == ["587412", "587533"]
    me = carol.http.get("/hub/api/user", headers=carol._hub_xsrf()).json()
    assert me["admin"] is False

    dave = logged_in(hub, "dave")  # realm role staff, client role admin
    assert dave.http.get("/hub/api/user", headers=dave._hub_xsrf()).json()["admin"] is True
    alice = dave.http.get("/hub/api/users/alice", headers=dave._hub_xsrf())
    assert alice.status_code in (200, 404)


def test_spawn_after_the_access_token_expired_refreshes_it(stack):
    hub, *_ = stack
    bob = logged_in(hub, "bob")
    time.sleep(ACCESS_TOKEN_TTL + 1)
    started = bob.submit_spawn_form(experiment="587533", flavour="medium")
    assert started.status_code == 200, started.text[:1000]
    bob.wait_ready()
    assert "Refreshed the Keycloak tokens of bob" in hub.log_text()
    bob.stop_server()


def test_revoked_refresh_token_sends_her_back_to_the_login_page(stack):
    hub, realm, *_ = stack
    dave = logged_in(hub, "dave")
    realm.sign_out_everywhere("dave")  # as a Keycloak admin: sessions end, refresh tokens revoked
    time.sleep(2.5)  # auth_refresh_age
    page = dave.http.get("/hub/spawn")
    assert 'id="kc-form-login"' in page.text, page.text[:1000]  # Keycloak asks for her password
    assert "login required" in hub.log_text()


def test_logout_ends_the_keycloak_session(stack):
    hub, *_ = stack
    alice = logged_in(hub, "alice")
    page = alice.http.get("/hub/logout")
    confirmation = next(f for f in parse_forms(page.text) if f.id == "op.logoutForm")  # browsers submit it by JS
    page = alice.http.post(str(page.url.join(confirmation.action)), data=confirmation.fields)
    assert 'id="kc-form-login"' in page.text, page.text[:1000]  # signing in again needs the password
    assert alice.http.get(f"{hub.url}/hub/api/user").status_code == 403


def test_member_removed_event_refuses_her_next_spawn_within_seconds(stack):
    hub, realm, uo, broker = stack
    bob = logged_in(hub, "bob")
    assert offered(bob.spawn_form().text) == ["587412", "587533"]
    remove_bob_by_event(uo, broker)
    started = time.monotonic()

    def refused():
        response = bob.submit_spawn_form(experiment="587412")
        return response if response.status_code == 400 else None

    response = wait_until(refused, 10, "the spawn to be refused")
    assert "You are not a member of experiment 587412" in response.text
    assert time.monotonic() - started < 10  # the cache TTL is 300 s: the event did it
    assert offered(bob.spawn_form().text) == ["587533"]
    assert "User Office event PROPOSAL_UPDATED: proposal 101 (587412) updated" in hub.log_text()


def test_instrument_selected_event_changes_the_offered_flavours(stack):
    hub, realm, uo, broker = stack
    alice = logged_in(hub, "alice")
    assert instrument_of(alice.spawn_form().text, "587412") == "LoKI"
    uo.patch(upsert={"proposals": [{"primaryKey": 101, "instruments": [2]}]})
    broker.publish(PROPOSALS, "PROPOSAL_INSTRUMENTS_SELECTED", {
        "proposalPk": 101, "shortCode": "587412", "instruments": [{"id": 2, "shortCode": "ODIN", "allocatedTime": 3}],
    })

    def moved():
        form = alice.spawn_form().text
        return form if instrument_of(form, "587412") == "ODIN" else None

    form = wait_until(moved, 10, "587412 to move to ODIN", interval=1)
    gpu = re.search(r'<option value="gpu-large"\s+data-instruments="([^"]*)"', form).group(1)
    assert "ODIN" in gpu.split()  # the GPU flavour is now offered for it
    uo.patch(upsert={"proposals": [{"primaryKey": 101, "instruments": [1]}]})


def test_no_token_or_secret_in_the_debug_log(stack):
    hub, realm, uo, _ = stack
    dave = logged_in(hub, "dave")
    alice = logged_in(hub, "alice")
    state = dave.http.get("/hub/api/users/alice", headers=dave._hub_xsrf()).json()["auth_state"]
    secrets = {
        "client secret": realm.client_secret,
        "User Office token": uo.token,
        "access token": state["access_token"],
        "refresh token": state["refresh_token"],
        "ID token": state["id_token"],
    }
    alice.spawn_form()
    log = hub.log_text()
    assert "DEBUG" in log or "[D " in log
    leaked = [name for name, value in secrets.items() if value and value in log]
    assert leaked == []


# ---------------------------------------------------------------------------------------------
def test_user_office_outage_keeps_known_users_working_and_tells_new_ones(realm, tmp_path):
    try:
        uo_context = user_office(sample_data())
        uo = uo_context.__enter__()
    except PeerError as exc:
        missing_peer(str(exc))
    hub = start_keycloak_hub(tmp_path / "data", realm, uo)
    try:
        hub.start()
        alice = logged_in(hub, "alice")
        uo.process.process.terminate()  # the GraphQL server goes away
        uo.process.process.wait(10)

        time.sleep(2.5)  # auth_refresh_age: the next page re-checks her
        assert offered(alice.spawn_form().text) == ["587412", "587533"]
        started = alice.submit_spawn_form(experiment="587412", flavour="small")  # refreshed before the spawn
        assert started.status_code == 200, started.text[:1000]
        alice.wait_ready()
        alice.stop_server()

        bob = KeycloakSession(hub, "bob")
        page = bob.login()
        assert page.status_code == 503
        assert "User Office is unavailable" in page.text and "try again in a few minutes" in page.text
        log = hub.log_text()
        assert "User Office unavailable" in log and "Traceback" not in log
    finally:
        hub.stop()
        hub.kill_instances()
        uo_context.__exit__(None, None, None)
