"""The policy: who may start which instance, and the messages people get when they may not."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from visa_hub.catalog import load_catalog
from visa_hub.demo import DEMO_CATALOG
from visa_hub.people import CO_PROPOSER, PRINCIPAL_INVESTIGATOR, STAFF, Experiment, Person
from visa_hub.policy import (
    PolicyError,
    SpawnRequest,
    access_window,
    may_use_service,
    plan_session,
    refusal_reason,
    selectable_experiments,
)

CATALOG = load_catalog(DEMO_CATALOG)
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def experiment(code="LOKI-1", instrument="LoKI", start_days=-2, length_days=5, role=PRINCIPAL_INVESTIGATOR):
    starts = NOW + dt.timedelta(days=start_days)
    return Experiment(code=code, title=f"Title of {code}", instrument=instrument, starts_at=starts,
                      ends_at=starts + dt.timedelta(days=length_days), role=role)


ALICE = Person("alice", "Alice", experiments=(experiment(),))
CARL = Person("carl", "Carl", roles=frozenset({STAFF}))


def test_member_of_running_experiment_gets_instrument_defaults():
    plan = plan_session(ALICE, SpawnRequest(experiment="LOKI-1"), CATALOG, NOW)
    assert plan.experiment.code == "LOKI-1"
    assert plan.instrument.name == "LoKI"
    assert plan.flavour.name == "medium"  # LoKI's default
    assert plan.image.name == CATALOG.default_image
    assert plan.lifetime_hours == 24
    assert plan.expires_at == NOW + dt.timedelta(hours=24)
    assert plan.environment["VISA_EXPERIMENT"] == "LOKI-1"
    assert plan.environment["VISA_INSTRUMENT"] == "LoKI"


def test_explicit_choices_within_the_rules_are_kept():
    plan = plan_session(
        ALICE, SpawnRequest("LOKI-1", "large", "ess-analysis-2026.04", 100), CATALOG, NOW
    )
    assert (plan.flavour.name, plan.image.name, plan.lifetime_hours) == ("large", "ess-analysis-2026.04", 100)


@pytest.mark.parametrize(
    ("request_", "field", "message"),
    [
        (SpawnRequest(), "experiment", "Choose the experiment"),
        (SpawnRequest("DREAM-9"), "experiment", "You are not a member of experiment DREAM-9"),
        (SpawnRequest("LOKI-1", flavour="gpu-large"), "flavour",
         "Flavour 'gpu-large' is not available for LoKI experiments. Choose one of: small, medium, large."),
        (SpawnRequest("LOKI-1", flavour="no-such"), "flavour", "not available for LoKI"),
        (SpawnRequest("LOKI-1", image="windows"), "image", "Image 'windows' is not available"),
        (SpawnRequest("LOKI-1", lifetime_hours=169), "lifetime_hours", "at most 168 hours; you asked for 169"),
        (SpawnRequest("LOKI-1", lifetime_hours=0), "lifetime_hours", "more than 0 hours"),
    ],
)
def test_refusals_name_the_field_and_explain(request_, field, message):
    with pytest.raises(PolicyError) as caught:
        plan_session(ALICE, request_, CATALOG, NOW)
    assert caught.value.field == field
    assert message in caught.value.message


def test_access_window_before_and_after():
    early = Person("eve", "Eve", experiments=(experiment("ODIN-1", "ODIN", start_days=31),))
    with pytest.raises(PolicyError, match=r"opens for analysis on 25 October 2026|opens for analysis on"):
        plan_session(early, SpawnRequest("ODIN-1"), CATALOG, NOW)
    # 30 days before start it opens
    assert plan_session(early, SpawnRequest("ODIN-1"), CATALOG, NOW + dt.timedelta(days=1, hours=1))

    late = Person("dora", "Dora", experiments=(experiment("DREAM-1", "DREAM", start_days=-400, length_days=4),))
    with pytest.raises(PolicyError, match="Access to experiment DREAM-1 .* ended on"):
        plan_session(late, SpawnRequest("DREAM-1"), CATALOG, NOW)


def test_staff_may_use_any_experiment_any_time():
    old = experiment("DREAM-1", "DREAM", start_days=-900)
    plan = plan_session(CARL, SpawnRequest("DREAM-1"), CATALOG, NOW, site_experiments=[old])
    assert plan.experiment.code == "DREAM-1"
    # ... but staff still get the instrument's rules
    with pytest.raises(PolicyError, match="not available for DREAM"):
        plan_session(CARL, SpawnRequest("DREAM-1", flavour="gpu-large"), CATALOG, NOW, site_experiments=[old])


def test_unconfigured_instrument_is_explained():
    person = Person("x", "X", experiments=(experiment("ESTIA-1", "ESTIA"),))
    with pytest.raises(PolicyError, match="Instrument ESTIA .* is not set up"):
        plan_session(person, SpawnRequest("ESTIA-1"), CATALOG, NOW)


def test_form_offers_only_open_experiments_on_known_instruments():
    person = Person("bob", "Bob", experiments=(
        experiment("LOKI-1"), experiment("ODIN-1", "ODIN", start_days=90), experiment("ESTIA-1", "ESTIA"),
        experiment("DREAM-1", "DREAM", start_days=-800),
    ))
    assert [e.code for e in selectable_experiments(person, CATALOG, NOW)] == ["LOKI-1"]
    staff = Person("carl", "Carl", roles=frozenset({STAFF}), experiments=(experiment("LOKI-1", role="local-contact"),))
    codes = {e.code for e in selectable_experiments(staff, CATALOG, NOW, person.experiments)}
    assert codes == {"LOKI-1", "ODIN-1", "DREAM-1"}  # ESTIA is not configured at this site


def test_who_may_log_in_and_why_not():
    assert may_use_service(ALICE, CATALOG, NOW)
    assert may_use_service(CARL, CATALOG, NOW)
    nobody = Person("erik", "Erik")
    assert not may_use_service(nobody, CATALOG, NOW)
    assert "not a member of any experiment" in refusal_reason(nobody, CATALOG, NOW)
    ended = Person("dora", "Dora", experiments=(experiment("DREAM-1", "DREAM", start_days=-900),))
    assert not may_use_service(ended, CATALOG, NOW)
    assert "access to your experiments has ended" in refusal_reason(ended, CATALOG, NOW)


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"experiment": 42}, "experiment"),
        ({"experiment": "LOKI-1", "lifetime_hours": "soon"}, "lifetime_hours"),
        ({"experiment": "LOKI-1", "lifetime_hours": "nan"}, "lifetime_hours"),
        ({"experiment": "LOKI-1", "gpu": "yes"}, "gpu"),
    ],
)
def test_malformed_options_are_policy_errors(options, field):
    with pytest.raises(PolicyError) as caught:
        SpawnRequest.from_options(options)
    assert caught.value.field == field


# -- property: no request the policy accepts violates a rule ------------------------------------------
instruments = st.sampled_from(["LoKI", "DREAM", "ODIN", "BIFROST", "NMX", "ESTIA"])
experiments = st.builds(
    experiment,
    code=st.sampled_from(["E1", "E2", "E3", "E4"]),
    instrument=instruments,
    start_days=st.integers(-800, 200),
    length_days=st.integers(0, 30),
    role=st.sampled_from([PRINCIPAL_INVESTIGATOR, CO_PROPOSER]),
)
people = st.builds(
    Person,
    username=st.just("someone"),
    name=st.just("Someone"),
    roles=st.frozensets(st.sampled_from([STAFF, "support"]), max_size=1),
    experiments=st.lists(experiments, max_size=3, unique_by=lambda e: e.code).map(tuple),
)
requests = st.builds(
    SpawnRequest,
    experiment=st.one_of(st.none(), st.sampled_from(["E1", "E2", "E3", "E4", "X"])),
    flavour=st.one_of(st.none(), st.sampled_from([f.name for f in CATALOG.flavours] + ["huge"])),
    image=st.one_of(st.none(), st.sampled_from([i.name for i in CATALOG.images] + ["other"])),
    lifetime_hours=st.one_of(st.none(), st.floats(-10, 400, allow_nan=False)),
)


@settings(max_examples=400, deadline=None)
@given(person=people, request=requests, site=st.lists(experiments, max_size=4, unique_by=lambda e: e.code),
       offset_days=st.integers(-30, 30))
def test_no_accepted_request_violates_a_rule(person, request, site, offset_days):
    now = NOW + dt.timedelta(days=offset_days)
    try:
        plan = plan_session(person, request, CATALOG, now, site)
    except PolicyError as refused:
        assert refused.message  # every refusal explains itself
        return
    rule = CATALOG.instrument(plan.experiment.instrument)
    mine = person.experiment(plan.experiment.code)
    assert plan.experiment.code == request.experiment
    assert mine is not None or (person.is_staff and any(e.code == request.experiment for e in site))
    if not person.is_staff:
        opens, closes = access_window(plan.experiment, CATALOG)
        assert opens <= now <= closes
    assert rule is not None and plan.instrument == rule
    assert plan.flavour.name in rule.flavours
    assert plan.image.name in rule.images
    limits = CATALOG.lifetime_limits(rule, plan.flavour.name, plan.image.name, person.is_staff)
    assert 0 < plan.lifetime_hours <= limits.max_hours
    if not person.is_staff:  # the instrument's max_lifetime_hours is its users' limit; staff have their own
        assert plan.lifetime_hours <= rule.max_lifetime_hours
    assert plan.experiment in selectable_experiments(person, CATALOG, now, site)
