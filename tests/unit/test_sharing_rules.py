"""Sharing rules: collaborators are experiment members, support comes on request from staff, guests are anyone."""

from __future__ import annotations

import datetime as dt

import pytest

from visa_hub.people import Experiment, Person
from visa_hub.sharing.roles import COLLABORATOR, GUEST, SUPPORT
from visa_hub.sharing.rules import (
    keeps_share,
    may_support,
    share_refusal,
    support_expiry,
    support_request_refusal,
)

T0 = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
LOKI = Experiment("LOKI-2026-042", "Nanodiscs", "LoKI", T0, T0 + dt.timedelta(days=4), local_contact="carl")
BOB = Person("bob", "Bob Berg", experiments=(LOKI,))
ERIK = Person("erik", "Erik Eriksson")
CARL = Person("carl", "Carl Christensen", roles=frozenset({"staff"}))
SUPPORT_DESK = Person("sam", "Sam Support", roles=frozenset({"support"}))


def test_sharing_rule_members_may_be_collaborators_others_only_guests():
    assert share_refusal(COLLABORATOR, owner="alice", username="bob", person=BOB, experiment=LOKI.code) is None
    refusal = share_refusal(COLLABORATOR, owner="alice", username="erik", person=ERIK, experiment=LOKI.code)
    assert "Erik Eriksson (erik) is not a member of experiment LOKI-2026-042" in refusal
    assert "Share as guest" in refusal
    assert share_refusal(GUEST, owner="alice", username="erik", person=ERIK, experiment=LOKI.code) is None
    unknown = share_refusal(COLLABORATOR, owner="alice", username="zoe", person=None, experiment=LOKI.code)
    assert "zoe is not a member" in unknown


def test_sharing_rule_support_only_on_request_and_only_staff():
    direct = share_refusal(SUPPORT, owner="alice", username="carl", person=CARL, experiment=LOKI.code)
    assert "on request" in direct
    assert share_refusal(SUPPORT, owner="alice", username="carl", person=CARL, experiment=LOKI.code,
                         via_request=True) is None
    assert "not facility support staff" in share_refusal(SUPPORT, owner="alice", username="bob", person=BOB,
                                                         experiment=LOKI.code, via_request=True)


def test_sharing_rule_nobody_shares_with_herself_or_as_owner():
    assert "your own instance" in share_refusal(GUEST, owner="alice", username="alice", person=None, experiment="")
    assert "not a role" in share_refusal("owner", owner="alice", username="bob", person=BOB, experiment="")


def test_sharing_rule_a_removed_member_loses_a_collaborator_share_but_not_a_guest_one():
    removed = Person("bob", "Bob Berg")
    assert keeps_share(COLLABORATOR, BOB, LOKI.code)
    assert not keeps_share(COLLABORATOR, removed, LOKI.code)
    assert not keeps_share(COLLABORATOR, None, LOKI.code)
    assert keeps_share(GUEST, removed, LOKI.code)
    assert keeps_share(SUPPORT, CARL, LOKI.code) and not keeps_share(SUPPORT, removed, LOKI.code)


def test_sharing_rule_who_may_ask_for_support():
    assert may_support(SUPPORT_DESK, LOKI.code, LOKI.local_contact)
    assert may_support(CARL, LOKI.code, LOKI.local_contact)  # local contact
    assert not may_support(Person("stina", "Stina", roles=frozenset({"staff"})), LOKI.code, "carl")
    assert not may_support(BOB, LOKI.code, "carl")
    assert support_request_refusal(CARL, "carl", owner="alice", experiment=LOKI.code, may_support=True) is None
    assert "Only facility support staff" in support_request_refusal(BOB, "bob", owner="alice",
                                                                    experiment=LOKI.code, may_support=False)
    assert "do not support" in support_request_refusal(CARL, "carl", owner="alice", experiment=LOKI.code,
                                                       may_support=False)


def test_sharing_rule_support_window():
    assert support_expiry(T0, 2) == T0 + dt.timedelta(hours=2)
    with pytest.raises(ValueError):
        support_expiry(T0, 0)
