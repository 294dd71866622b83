"""Every person is a separate principal: a second identity with alice's e-mail gets nothing, a removal event
is never undone by an answer that was on its way, and no instance starts without a membership decision.

All against real peers on loopback: the User Office GraphQL server, RabbitMQ for its events, the Keycloak
realm (npm oidc-provider) and a real ``jupyterhub`` process.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest
from conftest import missing_peer

from hubtest import HubProcess, UserSession, free_port, processes_under, wait_until
from peers import PeerError
from peers.oidc_realm import DEFAULT_USERS, KeycloakUser, follow_login, keycloak_realm
from peers.useroffice_graphql import load_sample_data, user_office
from useroffice_support import PROPOSALS, broker, keycloak_hub_env, user_office_peer  # noqa: F401
from visa_hub.useroffice import IdentityConflict, UserOfficeUnavailable
from visa_hub.useroffice.graphql import GraphQLUserOffice

pytestmark = pytest.mark.integration

SUB = {u.username: u.sub for u in DEFAULT_USERS}
ALICE_EMAIL = "alice.smith@example.org"
#: A second identity of the realm that claims alice's (verified) e-mail address.
MALLORY = KeycloakUser(username="mallory", password="mallory-password", sub="3c1d9e0f-7b2a-4c5d-8e6f-0a1b2c3d4e99",
                       email=ALICE_EMAIL, first_name="Mallory", last_name="Smith")
MEMBER_REMOVED = {
    "proposalPk": 101, "shortCode": "587412", "title": "Self-assembly of peptide amphiphiles under shear",
    "callId": 1, "instruments": [{"id": 1, "shortCode": "LOKI", "allocatedTime": 3}],
    "proposer": {"id": 1, "firstName": "Alice", "lastName": "Smith", "email": ALICE_EMAIL},
    "members": [],
}


@pytest.fixture(scope="module")
def peer():
    yield from user_office_peer()


@pytest.fixture
def uo(peer):
    yield peer
    peer.clear_faults()
    peer.replace_data(load_sample_data())
    peer.clear_requests()


def client(uo, **config) -> GraphQLUserOffice:
    return GraphQLUserOffice(url=uo.url, token=uo.token, **config)


async def mallory(office: GraphQLUserOffice):
    return await office.find_person(username="mallory", subject=MALLORY.sub, email=ALICE_EMAIL)


# -- a second identity with alice's e-mail: the User Office client on every path -------------------------
async def test_isolation_second_identity_cold_lookup_gets_nothing(uo):
    with pytest.raises(IdentityConflict):
        await mallory(client(uo))


async def test_isolation_second_identity_after_alice_is_cached_gets_nothing(uo):
    office = client(uo, cache_ttl=3600)
    alice = await office.find_person(username="alice", subject=SUB["alice"], email=ALICE_EMAIL)
    assert {e.code for e in alice.experiments} == {"587412", "587533"}
    with pytest.raises(IdentityConflict):
        await mallory(office)
    # alice's own cached answer is untouched and still served without asking the User Office
    uo.clear_requests()
    again = await office.find_person(username="alice", subject=SUB["alice"], email=ALICE_EMAIL)
    assert {e.code for e in again.experiments} == {"587412", "587533"} and uo.requests() == []


async def test_isolation_second_identity_during_an_outage_gets_nothing(uo):
    office = client(uo, cache_ttl=0, timeout=2)  # every lookup asks the User Office, which is down
    await office.find_person(username="alice", subject=SUB["alice"], email=ALICE_EMAIL)
    uo.set_faults(status=503)
    with pytest.raises(IdentityConflict):
        await mallory(office)
    alice = await office.find_person(username="alice", subject=SUB["alice"], email=ALICE_EMAIL)
    assert {e.code for e in alice.experiments} == {"587412", "587533"}  # the outage serves her from the cache


async def test_isolation_unknown_login_during_an_outage_is_unavailable_not_a_guess(uo):
    office = client(uo, timeout=2)
    await office.find_person(username="bob", subject=SUB["bob"])
    uo.set_faults(status=503)
    with pytest.raises(UserOfficeUnavailable):
        await office.find_person(username="newcomer", subject="f" * 36, email="newcomer@example.org")


async def test_isolation_email_only_user_office_users_are_still_found_by_email(uo):
    """Erin has no oidcSub in the User Office: her verified e-mail finds her, cold and cached."""
    office = client(uo)
    erin = await office.find_person(username="erin", subject="erin-sub", email="erin.novak@example.org")
    cached = await office.find_person(username="erin", subject="erin-sub", email="erin.novak@example.org")
    assert erin.experiments and cached.experiments == erin.experiments


# -- a removal event racing an answer on its way ---------------------------------------------------------
async def test_isolation_removal_event_is_not_undone_by_an_older_answer(uo, broker):  # noqa: F811
    office = client(uo, amqp_url=broker.url, cache_ttl=3600)
    office.start_events()
    try:
        await asyncio.wait_for(office._events.ready.wait(), 30)
        uo.set_faults(hold=2.0, times=1)  # bob's answer is computed now (still a member) and arrives in 2 s
        lookup = asyncio.create_task(office.find_person(username="bob", subject=SUB["bob"]))
        while not uo.requests():
            await asyncio.sleep(0.05)
        generation = office.cache.generation
        uo.remove_member(101, 2)
        await asyncio.to_thread(broker.publish, PROPOSALS, "PROPOSAL_UPDATED", MEMBER_REMOVED)
        while office.cache.generation == generation:  # the event arrived while the answer is on its way
            await asyncio.sleep(0.05)
        assert not lookup.done()
        bob = await lookup
        assert {e.code for e in bob.experiments} == {"587533"}, "an answer older than the event undid it"
        assert len(uo.requests()) >= 2, "the answer that crossed the event was not asked again"
        cached = await office.find_person(username="bob", subject=SUB["bob"])
        assert {e.code for e in cached.experiments} == {"587533"}
    finally:
        await office.stop_events()


async def test_isolation_staff_listing_older_than_an_event_does_not_bring_a_member_back(uo, broker):  # noqa: F811
    office = client(uo, amqp_url=broker.url, cache_ttl=3600)
    office.start_events()
    try:
        await asyncio.wait_for(office._events.ready.wait(), 30)
        await office.find_person(username="bob", subject=SUB["bob"])
        uo.set_faults(hold=2.0, times=1)
        listing = asyncio.create_task(office.site_experiments())
        while len(uo.requests()) < 2:
            await asyncio.sleep(0.05)
        generation = office.cache.generation
        uo.remove_member(101, 2)
        await asyncio.to_thread(broker.publish, PROPOSALS, "PROPOSAL_UPDATED", MEMBER_REMOVED)
        while office.cache.generation == generation:
            await asyncio.sleep(0.05)
        await listing
        assert 2 not in office.cache.proposals[101].member_ids
    finally:
        await office.stop_events()


# -- the hub: logins and spawns --------------------------------------------------------------------------
HUB_CONFIG = """
from visa_hub.hubconfig import configure

c = get_config()  # noqa: F821
configure(c)
c.KeycloakAuthenticator.auth_refresh_age = 2
c.KeycloakAuthenticator.token_refresh_margin = 1
c.GraphQLUserOffice.timeout = 3
c.KeycloakAuthenticator.discovery_timeout = 3
"""


def keycloak_hub(data_dir: Path, realm, uo, extra_config: str = "") -> HubProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    config = data_dir.parent / "isolation_config.py"
    config.write_text(HUB_CONFIG + extra_config)
    return HubProcess(data_dir, config_file=config, extra_env=keycloak_hub_env(realm, uo))


def session(hub, username: str, password: str):
    """A new browser-like session that logs in through the realm's login page; the page it ends on."""
    person = UserSession(hub, username)
    return person, follow_login(person.http, f"{hub.url}/hub/oauth_login?next=/hub/spawn", username, password)


def assert_refused_second_identity(page) -> None:
    assert page.status_code == 403, (page.status_code, page.text[:800])
    assert "knows your e-mail address under another login" in page.text
    assert "587412" not in page.text and "587533" not in page.text


def test_isolation_second_identity_gets_nothing_at_the_hub_cold_cached_and_in_an_outage(tmp_path):
    users = (*DEFAULT_USERS, MALLORY)
    try:
        with keycloak_realm(users=users) as realm, user_office() as uo:
            hub = keycloak_hub(tmp_path / "data", realm, uo).start()
            try:
                # cold: nobody is cached yet
                _, page = session(hub, "mallory", MALLORY.password)
                assert_refused_second_identity(page)
                # cached: alice logged in, so her record (and e-mail) is in the hub's User Office cache
                alice, page = session(hub, "alice", "alice-password")
                assert page.url.path == "/hub/spawn", page.text[:800]
                _, page = session(hub, "mallory", MALLORY.password)
                assert_refused_second_identity(page)
                # outage: the User Office is gone; alice is served from the cache, mallory still gets nothing
                uo.set_faults(status=503)
                time.sleep(2.5)  # auth_refresh_age: alice's next page asks again (and falls back on the cache)
                assert "587412" in alice.spawn_form().text
                _, page = session(hub, "mallory", MALLORY.password)
                assert_refused_second_identity(page)
                # mallory never became a hub user with experiments, groups or roles
                log = hub.log_text()
                assert "Login refused for mallory" in log and "mallory logged in" not in log
            finally:
                hub.stop()
                hub.kill_instances()
    except PeerError as exc:
        missing_peer(str(exc))


def test_isolation_no_spawn_without_a_membership_decision(tmp_path):
    """alice is logged in; the hub restarts (its User Office cache is empty) while the User Office and then
    Keycloak are down: her spawn is refused with the reason and no instance starts. Once the User Office is
    back, the decision is made without Keycloak and the spawn goes ahead."""
    data = tmp_path / "data"
    uo_port = free_port()
    try:
        with keycloak_realm(users=DEFAULT_USERS, access_token_ttl=3) as realm:
            with user_office(port=uo_port) as uo:
                token = uo.token
                hub = keycloak_hub(data, realm, uo).start()
                alice, page = session(hub, "alice", "alice-password")
                assert page.url.path == "/hub/spawn", page.text[:800]
                hub.stop()
            # the User Office is down and the new hub process has never heard from it
            hub.start()
            try:
                refused = alice.submit_spawn_form(experiment="587412", flavour="small")
                assert_no_instance(hub, alice, refused)

                realm.process.process.terminate()  # Keycloak goes down too (her tokens have expired)
                realm.process.process.wait(10)
                time.sleep(3.5)
                refused = alice.submit_spawn_form(experiment="587412", flavour="small")
                assert_no_instance(hub, alice, refused)
                assert "Keycloak unreachable while refreshing alice" in hub.log_text()

                with user_office(port=uo_port, token=token):  # the User Office is back (Keycloak is not)
                    started = alice.submit_spawn_form(experiment="587412", flavour="small")
                    assert started.status_code == 200, started.text[:800]
                    alice.wait_ready()
                    assert "Membership of alice checked before the spawn" in hub.log_text()
                    alice.stop_server()
            finally:
                hub.stop()
                hub.kill_instances()
    except PeerError as exc:
        missing_peer(str(exc))


def assert_no_instance(hub, alice, response) -> None:
    text = response.text
    assert "No instance was started" in text and "User Office cannot be reached" in text, \
        (response.status_code, text[:1500])
    wait_until(lambda: not alice.server_model().get("pending"), 30, "the refused spawn to settle")
    assert not alice.server_model().get("ready")
    assert processes_under(hub.data_dir) == [], "an instance process runs although the spawn was refused"


def test_isolation_a_reused_login_name_does_not_inherit_the_hub_user(tmp_path):
    """Keycloak gives the login name ``alice`` to another person (her account deleted and re-created for
    someone else): the hub user alice, her instances and her home stay hers — the newcomer is refused."""
    newcomer = KeycloakUser(username="alice", password="new-password", sub=SUB["bob"],
                            email="bob.jones@example.org", first_name="Bob", last_name="Jones")
    data = tmp_path / "data"
    try:
        with user_office() as uo:
            with keycloak_realm(users=DEFAULT_USERS) as realm:
                hub = keycloak_hub(data, realm, uo).start()
                try:
                    _, page = session(hub, "alice", "alice-password")
                    assert page.url.path == "/hub/spawn", page.text[:800]
                finally:
                    hub.stop()
            with keycloak_realm(users=(newcomer,)) as realm:
                hub = keycloak_hub(data, realm, uo).start()
                try:
                    _, page = session(hub, "alice", "new-password")
                    assert page.status_code == 403, (page.status_code, page.text[:800])
                    assert "belongs to another person" in page.text
                    assert "587412" not in page.text  # none of alice's experiments
                    assert "Login refused for alice: the hub user belongs to another identity" in hub.log_text()
                finally:
                    hub.stop()
                    hub.kill_instances()
    except PeerError as exc:
        missing_peer(str(exc))


def test_a_refused_form_comes_back_as_the_form_while_the_user_office_is_slow(tmp_path):
    """The policy's refusal is decided before the (slow) pre-spawn User Office check: she gets her form back with
    her choices and the reason, not JupyterHub's "start failed" page (JupyterHub waits 1 s for a spawn)."""
    try:
        with keycloak_realm(users=DEFAULT_USERS) as realm, user_office() as uo:
            # every User Office answer is fresh (no cache), and each takes 2 s
            hub = keycloak_hub(tmp_path / "data", realm, uo, "c.GraphQLUserOffice.cache_ttl = 0\n").start()
            try:
                alice, page = session(hub, "alice", "alice-password")
                assert page.url.path == "/hub/spawn", page.text[:800]
                uo.set_faults(delay=2)
                refused = alice.submit_spawn_form(experiment="587412", flavour="gpu-large", lifetime_hours="10")
                assert refused.status_code == 400, refused.text[:800]
                assert "is not available for LoKI experiments" in refused.text
                assert 'id="spawn_form"' in refused.text  # the form itself, with her choice kept
                assert re.search(r'value="587412"[^>]*checked', refused.text)
                assert "Start failed" not in refused.text
                assert alice.server_model() == {}
            finally:
                uo.clear_faults()
                hub.stop()
                hub.kill_instances()
    except PeerError as exc:
        missing_peer(str(exc))
