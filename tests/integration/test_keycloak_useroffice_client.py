"""GraphQLUserOffice against the real User Office GraphQL peer: lookups, cache, slowness, tokens."""

from __future__ import annotations

import logging

import pytest
from conftest import missing_peer

from peers import PeerError
from peers.oidc_realm import DEFAULT_USERS
from peers.useroffice_graphql import load_sample_data, user_office
from visa_hub.people import CO_PROPOSER, LOCAL_CONTACT, PRINCIPAL_INVESTIGATOR, STAFF
from visa_hub.useroffice import UserOfficeUnavailable
from visa_hub.useroffice.graphql import GraphQLUserOffice

pytestmark = pytest.mark.integration

SUB = {u.username: u.sub for u in DEFAULT_USERS}


@pytest.fixture(scope="module")
def peer():
    try:
        with user_office(api_tokens=[{"token": "no-permissions", "permissions": []}]) as peer:
            yield peer
    except PeerError as exc:
        missing_peer(str(exc))


@pytest.fixture
def uo(peer):
    yield peer
    peer.clear_faults()
    peer.replace_data(load_sample_data())
    peer.clear_requests()


def client(uo, **config) -> GraphQLUserOffice:
    return GraphQLUserOffice(url=uo.url, token=uo.token, **config)


async def test_her_experiments_with_dates_roles_and_local_contact(uo):
    alice = await client(uo).find_person(username="alice", subject=SUB["alice"])
    assert alice.name == "Alice Smith" and alice.roles == frozenset()
    experiments = {e.code: e for e in alice.experiments}
    assert set(experiments) == {"587412", "587533"}
    loki = experiments["587412"]
    assert (loki.instrument, loki.proposal_pk, loki.role) == ("LoKI", 101, PRINCIPAL_INVESTIGATOR)
    assert loki.local_contact == "Carol White (carol.white@ess.eu)"
    assert loki.starts_at < loki.ends_at
    assert experiments["587533"].role == CO_PROPOSER


async def test_instrument_scientists_are_staff_and_see_every_scheduled_experiment(uo):
    office = client(uo)
    carol = await office.find_person(username="carol", subject=SUB["carol"])
    assert STAFF in carol.roles
    assert {e.code for e in await office.site_experiments()} == {"587412", "587533"}
    carol = await office.find_person(username="carol", subject=SUB["carol"])
    assert [(e.code, e.role) for e in carol.experiments] == [("587412", LOCAL_CONTACT)]


async def test_answers_are_cached(uo):
    office = client(uo)
    await office.find_person(username="alice", subject=SUB["alice"])
    await office.find_person(username="alice", subject=SUB["alice"])
    assert len(uo.requests()) == 1


async def test_slow_user_office_first_time_unavailable_then_cached_answer_used(uo, caplog):
    office = client(uo, timeout=0.5, cache_ttl=0)
    uo.set_faults(delay=2.0)
    with pytest.raises(UserOfficeUnavailable, match="no answer from .* within 0.5 s"):
        await office.find_person(username="bob", subject=SUB["bob"])
    uo.clear_faults()
    assert await office.find_person(username="bob", subject=SUB["bob"])
    uo.set_faults(status=503)
    caplog.set_level(logging.WARNING)
    bob = await office.find_person(username="bob", subject=SUB["bob"])
    assert {e.code for e in bob.experiments} == {"587412", "587533"}
    assert "User Office unavailable" in caplog.text and "using what it said about bob" in caplog.text


async def test_a_refused_token_is_an_outage_and_a_token_without_permissions_looks_like_nobody(uo, caplog):
    with pytest.raises(UserOfficeUnavailable, match="refused the API token .*GraphQLUserOffice.token"):
        await GraphQLUserOffice(url=uo.url, token="not-a-token").find_person(subject=SUB["alice"])
    caplog.set_level(logging.INFO)
    office = GraphQLUserOffice(url=uo.url, token="no-permissions", email_fallback=False)
    assert await office.find_person(username="alice", subject=SUB["alice"]) is None
    assert "check that the API token has the permissions" in caplog.text
    assert "no-permissions" not in caplog.text and uo.token not in caplog.text
