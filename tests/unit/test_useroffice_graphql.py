"""User Office data → visa experiments, and events applied to the cache (pure: no server involved)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import pytest

from visa_hub.people import CO_PROPOSER, LOCAL_CONTACT, PRINCIPAL_INVESTIGATOR
from visa_hub.useroffice.cache import UserOfficeCache
from visa_hub.useroffice.events import UserOfficeEvents, safe_url
from visa_hub.useroffice.graphql import GraphQLUserOffice
from visa_hub.useroffice.records import experiments_for, parse_proposal, parse_user

UTC = dt.UTC


def proposal(**overrides):
    """A GraphQL Proposal as user-office-core answers it (Float experiment keys, ISO dates with ms and Z)."""
    data = {
        "primaryKey": 101, "proposalId": "587412", "title": "Peptides under shear", "proposerId": 1,
        "users": [{"id": 2}],
        "instruments": [{"id": 1, "name": "LoKI", "shortCode": "LOKI"}],
        "experiments": [
            {"experimentPk": 1001.0, "scheduledEventId": 1001.0, "startsAt": "2026-05-04T08:00:00.000Z",
             "endsAt": "2026-05-06T08:00:00.000Z", "status": "ACTIVE", "instrumentId": 1.0, "localContactId": 3.0,
             "localContact": {"id": 3, "firstname": "Carol", "lastname": "White", "email": "carol.white@ess.eu"},
             "instrument": {"id": 1, "name": "LoKI", "shortCode": "LOKI"}},
            {"experimentPk": 1002.0, "scheduledEventId": 1002.0, "startsAt": "2026-03-01T08:00:00.000Z",
             "endsAt": "2026-03-03T08:00:00.000Z", "status": "COMPLETED", "instrumentId": 1.0,
             "localContactId": None, "localContact": None,
             "instrument": {"id": 1, "name": "LoKI", "shortCode": "LOKI"}},
        ],
    }
    data.update(overrides)
    return data


def test_a_proposal_becomes_one_experiment_spanning_its_scheduled_experiments():
    record = parse_proposal(proposal())
    (experiment,) = experiments_for(record, PRINCIPAL_INVESTIGATOR)
    assert experiment.code == "587412"
    assert experiment.proposal_pk == 101
    assert experiment.instrument == "LoKI"
    assert experiment.starts_at == dt.datetime(2026, 3, 1, 8, tzinfo=UTC)
    assert experiment.ends_at == dt.datetime(2026, 5, 6, 8, tzinfo=UTC)
    assert experiment.local_contact == "Carol White (carol.white@ess.eu)"
    assert experiment.role == PRINCIPAL_INVESTIGATOR
    assert record.role_of(1) == PRINCIPAL_INVESTIGATOR
    assert record.role_of(2) == CO_PROPOSER
    assert record.role_of(3) == LOCAL_CONTACT
    assert record.role_of(4) is None


def test_several_instruments_give_one_experiment_each_with_their_own_dates():
    data = proposal(instruments=[{"id": 1, "name": "LoKI", "shortCode": "LOKI"},
                                 {"id": 2, "name": "ODIN", "shortCode": "ODIN"}])
    data["experiments"][1]["instrumentId"] = 2.0
    data["experiments"][1]["instrument"] = {"id": 2, "name": "ODIN", "shortCode": "ODIN"}
    experiments = {e.code: e for e in experiments_for(parse_proposal(data), CO_PROPOSER)}
    assert set(experiments) == {"587412-LOKI", "587412-ODIN"}
    assert experiments["587412-ODIN"].instrument == "ODIN"
    assert experiments["587412-ODIN"].ends_at == dt.datetime(2026, 3, 3, 8, tzinfo=UTC)
    assert experiments["587412-LOKI"].starts_at == dt.datetime(2026, 5, 4, 8, tzinfo=UTC)


def test_a_proposal_without_scheduled_experiment_is_not_offered_and_the_log_says_why(caplog):
    caplog.set_level(logging.INFO, "JupyterHub.visa_hub.useroffice")
    assert experiments_for(parse_proposal(proposal(primaryKey=999, experiments=[])), CO_PROPOSER) == []
    assert "587412 on LoKI not offered: no scheduled experiment" in caplog.text


def test_malformed_fields_are_rejected_one_by_one_with_a_log_line(caplog):
    data = proposal(title=42, users=[{"id": "two"}, {"id": 5}], instruments=[None, {"id": 1, "name": "LoKI"}])
    data["experiments"][0]["endsAt"] = "next tuesday"
    data["experiments"][1]["localContactId"] = 3.5
    record = parse_proposal(data)
    assert record.title == "Proposal 587412"
    assert record.member_ids == {5}
    (experiment,) = experiments_for(record, CO_PROPOSER)
    assert experiment.starts_at == dt.datetime(2026, 3, 1, 8, tzinfo=UTC)  # the bad booking alone is dropped
    log = caplog.text
    assert "proposal 587412, field title: expected text, got 42" in log
    assert "proposal 587412 member, field id: expected a whole number, got 'two'" in log
    assert "proposal 587412 experiment, field endsAt: expected an ISO 8601 date-time, got 'next tuesday'" in log
    assert "field localContactId: expected a whole number, got 3.5" in log


def test_a_proposal_without_its_key_or_code_is_skipped():
    assert parse_proposal({"primaryKey": 1, "proposalId": None}) is None
    assert parse_proposal({"proposalId": "1"}) is None
    assert parse_user({"id": "x"}) is None


def test_user_roles_and_name():
    user = parse_user({"id": 3, "firstname": "Carol", "lastname": "White", "preferredname": None,
                       "email": "carol.white@ess.eu", "oidcSub": "sub-3",
                       "roles": [{"shortCode": "user"}, {"shortCode": "instrument_scientist"}]})
    assert user.name == "Carol White" and user.subject == "sub-3"
    assert user.roles == {"user", "instrument_scientist"}


# -- the cache and events -------------------------------------------------------------------------------
def cache_with_alice_and_bob() -> UserOfficeCache:
    cache = UserOfficeCache()
    alice = parse_user({"id": 1, "firstname": "Alice", "lastname": "Smith", "email": "alice@example.org",
                        "oidcSub": "sub-1", "roles": []})
    bob = parse_user({"id": 2, "firstname": "Bob", "lastname": "Jones", "email": "bob@example.org",
                      "oidcSub": "sub-2", "roles": []})
    cache.store_user(alice, [parse_proposal(proposal())], now=0)
    cache.store_user(bob, [parse_proposal(proposal())], now=0)
    return cache


def event(cache: UserOfficeCache, name: str, payload) -> str:
    return UserOfficeEvents(url="amqp://guest:secret@127.0.0.1/", cache=cache).handle(name, json.dumps(payload))


MEMBER = {"firstName": "Alice", "lastName": "Smith", "email": "alice@example.org", "oidcSub": "sub-1",
          "oauthIssuer": "x", "institution": "KU", "country": "Denmark"}


def test_a_member_removed_event_takes_the_proposal_away_and_marks_her_stale():
    cache = cache_with_alice_and_bob()
    outcome = event(cache, "PROPOSAL_UPDATED", {
        "proposalPk": 101, "shortCode": "587412", "title": "Peptides under shear", "callId": 1,
        "proposer": {"id": 1, **MEMBER}, "members": [],
    })
    assert outcome == "proposal 101 (587412) updated"
    assert cache.proposals_of(2) == []
    assert [role for _, role in cache.proposals_of(1)] == [PRINCIPAL_INVESTIGATOR]
    assert cache.find_user(subject="sub-2").stale
    assert not cache.is_fresh(cache.find_user(subject="sub-2"), now=1, ttl=300)


def test_instruments_selected_moves_the_experiment_to_the_new_instrument():
    cache = cache_with_alice_and_bob()
    cache.store_proposal(parse_proposal(proposal(primaryKey=102, proposalId="587533", experiments=[],
                                                 instruments=[{"id": 2, "name": "ODIN", "shortCode": "ODIN"}])))
    event(cache, "PROPOSAL_INSTRUMENTS_SELECTED",
          {"proposalPk": 101, "shortCode": "587412", "instruments": [{"id": 2, "shortCode": "ODIN",
                                                                        "allocatedTime": 3}]})
    proposal_101 = cache.proposals[101]
    assert [i.name for i in proposal_101.instruments] == ["ODIN"]  # its name known from another proposal
    (experiment,) = experiments_for(proposal_101, PRINCIPAL_INVESTIGATOR)
    assert experiment.instrument == "ODIN"


def test_bookings_from_the_scheduler_set_real_dates_and_local_contact():
    cache = cache_with_alice_and_bob()
    cache.store_user(parse_user({"id": 3, "firstname": "Carol", "lastname": "White",
                                 "email": "carol.white@ess.eu", "roles": []}), [], now=0)
    outcome = event(cache, "PROPOSAL_BOOKING_TIME_SLOT_ADDED", {
        "id": 77, "proposalPk": 101, "instrumentId": 1, "localContactId": 3,
        "startsAt": "2026-09-01T08:00:00.000Z", "endsAt": "2026-09-04T08:00:00.000Z",
    })
    assert outcome.startswith("booking 77 of proposal 101")
    (experiment,) = experiments_for(cache.proposals[101], CO_PROPOSER)
    assert experiment.ends_at == dt.datetime(2026, 9, 4, 8, tzinfo=UTC)
    event(cache, "PROPOSAL_BOOKING_TIME_SLOT_DELETED", {"id": 77, "proposalPk": 101,
                                                          "startsAt": "2026-09-01T08:00:00.000Z"})
    (experiment,) = experiments_for(cache.proposals[101], CO_PROPOSER)
    assert experiment.ends_at == dt.datetime(2026, 5, 6, 8, tzinfo=UTC)


def test_deleted_proposals_and_users():
    cache = cache_with_alice_and_bob()
    assert event(cache, "PROPOSAL_DELETED", {"proposalPk": 101}) == "proposal 101 deleted"
    assert cache.proposals_of(1) == []
    assert event(cache, "USER_DELETED", {"id": 2}) == "user 2 forgotten"
    assert cache.find_user(subject="sub-2") is None


@pytest.mark.parametrize(("body", "outcome"), [
    ("not json", "ignored (body is not JSON)"),
    ("[1, 2]", "ignored (payload is not an object)"),
    ('{"shortCode": "1"}', "ignored (no proposalPk)"),
    ('{"proposalPk": "x"}', "ignored (no proposalPk)"),
])
def test_malformed_events_are_ignored_not_fatal(body, outcome):
    cache = cache_with_alice_and_bob()
    handler = UserOfficeEvents(url="amqp://127.0.0.1/", cache=cache)
    assert handler.handle("PROPOSAL_UPDATED", body) == outcome
    assert handler.handle("SOMETHING_ELSE", "{}") == "ignored (not an event visa-hub uses)"
    assert [role for _, role in cache.proposals_of(2)] == [CO_PROPOSER]


def test_log_urls_hide_credentials():
    assert safe_url("amqp://visa:s3cret@rabbit.ess.eu:5672/uo") == "amqp://rabbit.ess.eu:5672/uo"


def test_every_knob_has_help():
    for cls in (GraphQLUserOffice, UserOfficeEvents):
        for name, trait in cls.class_own_traits(config=True).items():
            assert trait.help, f"{cls.__name__}.{name} has no help"


# -- isolation: subjects on every path, events win over answers in flight ----------------------------------
def test_isolation_the_cache_never_returns_a_user_with_another_subject_for_her_email():
    cache = cache_with_alice_and_bob()
    assert cache.find_user(subject="sub-1", email="alice@example.org").user.id == 1
    assert cache.find_user(subject="someone-else", email="alice@example.org") is None
    assert cache.find_user(email="alice@example.org").user.id == 1  # no subject to compare (file/demo logins)
    assert cache.email_owner("ALICE@example.org").subject == "sub-1"


def test_isolation_an_answer_older_than_an_event_is_not_stored():
    cache = cache_with_alice_and_bob()
    since = cache.generation
    event(cache, "PROPOSAL_UPDATED", {"proposalPk": 101, "shortCode": "587412", "proposer": {"id": 1},
                                      "members": []})
    bob = cache.find_user(subject="sub-2").user
    assert cache.store_user(bob, [parse_proposal(proposal())], now=1, since=since) is False
    assert cache.proposals_of(2) == [] and cache.find_user(subject="sub-2").stale
    assert cache.store_user(bob, [], now=2, since=cache.generation) is True
    assert not cache.find_user(subject="sub-2").stale


def test_isolation_file_user_office_refuses_another_subject_with_her_email(tmp_path):
    from visa_hub.useroffice import IdentityConflict
    from visa_hub.useroffice.file import FileUserOffice

    path = tmp_path / "uo.yaml"
    path.write_text("people:\n  - {username: alice, email: alice@example.org, subject: sub-1}\nexperiments: []\n")
    office = FileUserOffice(path=str(path))
    assert asyncio.run(office.find_person(subject="sub-1", email="alice@example.org")).username == "alice"
    with pytest.raises(IdentityConflict):
        asyncio.run(office.find_person(subject="sub-2", email="alice@example.org"))
    with pytest.raises(IdentityConflict):
        asyncio.run(office.find_person(username="alice", subject="sub-2"))
