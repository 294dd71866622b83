"""Lifetime rules: the catalog's lifetimes section, the pure decisions, extension outcomes, small parsers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from visa_hub.catalog import load_catalog
from visa_hub.demo import DEMO_CATALOG
from visa_hub.lifetimes import LifetimeLimits, LifetimeRules
from visa_hub.sessions.backends import scontrol_fields, slurm_minutes
from visa_hub.sessions.lifetime import (
    EXPIRY,
    INACTIVITY,
    MEMBERSHIP,
    InstanceFacts,
    decide,
    extension_outcome,
    format_hours,
)
from visa_hub.sessions.mailer import TEMPLATES, VisaMailer
from visa_hub.singleuser.activity import display_number
from visa_hub.singleuser.desktop.xauth import new_cookie, xauthority_entry
from visa_hub.sitedata import SiteDataError

T0 = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC)


def catalog_with(tmp_path: Path, lifetimes, strip_instrument_keys: bool = True):
    data = yaml.safe_load(Path(DEMO_CATALOG).read_text())
    if strip_instrument_keys:
        for instrument in data["instruments"]:
            instrument.pop("max_lifetime_hours", None)
            instrument.pop("default_lifetime_hours", None)
    data["lifetimes"] = lifetimes
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_catalog(path)


# ---------------------------------------------------------------- catalog
def test_visa_defaults_without_a_lifetimes_section(tmp_path):
    catalog = catalog_with(tmp_path, {})
    loki = catalog.instrument("LoKI")
    users = catalog.lifetime_limits(loki, "small", "ess-analysis-2026.10", staff=False)
    staff = catalog.lifetime_limits(loki, "small", "ess-analysis-2026.10", staff=True)
    assert (users.max_hours, users.inactivity_hours) == (14 * 24, 4 * 24)
    assert (staff.max_hours, staff.inactivity_hours) == (60 * 24, 8 * 24)
    assert users.warnings_hours == (48, 1) and users.inactivity_warning_hours == 24
    assert loki.max_lifetime_hours == 14 * 24  # the form's maximum comes from the rules


def test_rules_per_instrument_flavour_role_and_durations(tmp_path):
    catalog = catalog_with(tmp_path, {
        "users": {"default": "12h", "max": "3d", "inactivity": "2d"},
        "staff": {"max": "30d", "inactivity": "never"},
        "warnings": ["24h", "30m"],
        "extension": {"step": "12h", "auto": "staff", "auto_up_to": "5d", "max": "10d"},
        "rules": [{"instruments": ["odin"], "flavours": ["gpu-large"], "users": {"max": "1d", "default": "6h"},
                   "extension": {"auto": "none"}, "warnings": ["2h"]}],
    })
    odin = catalog.instrument("ODIN")
    gpu = catalog.lifetime_limits(odin, "gpu-large", "ess-analysis-2026.10", staff=False)
    large = catalog.lifetime_limits(odin, "large", "ess-analysis-2026.10", staff=False)
    staff = catalog.lifetime_limits(odin, "large", "ess-analysis-2026.10", staff=True)
    assert (gpu.default_hours, gpu.max_hours, gpu.warnings_hours, gpu.auto_extend) == (6, 24, (2,), False)
    assert (large.default_hours, large.max_hours, large.warnings_hours) == (12, 72, (24, 0.5))
    assert large.auto_extend is False and staff.auto_extend is True  # auto: staff
    assert staff.inactivity_hours is None and staff.max_hours == 30 * 24
    assert (large.extension_step_hours, large.auto_up_to_hours, large.extension_max_hours) == (12, 120, 240)


def test_instrument_keys_are_its_users_limits(tmp_path):
    catalog = catalog_with(tmp_path, {"users": {"max": "14d"}}, strip_instrument_keys=False)
    odin = catalog.instrument("ODIN")  # max_lifetime_hours: 72 in the demo catalog
    assert catalog.lifetime_limits(odin, "large", "ess-analysis-2026.10", staff=False).max_hours == 72
    assert catalog.lifetime_limits(odin, "large", "ess-analysis-2026.10", staff=True).max_hours == 60 * 24


@pytest.mark.parametrize(("lifetimes", "where", "problem"), [
    ({"users": {"max": "two weeks"}}, "lifetimes.users.max", "must be a duration like"),
    ({"users": {"default": "3d", "max": "1d"}}, "lifetimes.users.default", "must not exceed max"),
    ({"warnings": ["1h", -2]}, "lifetimes.warnings[1]", "must be a duration > 0"),
    ({"extension": {"auto": "sometimes"}}, "lifetimes.extension.auto", "must be one of all, none, staff"),
    ({"rules": [{"flavours": ["huge"]}]}, "lifetimes.rules[0].flavours[0]", "unknown flavour 'huge'"),
    ({"rules": [{"instruments": ["LoKI"], "user": {}}]}, "lifetimes.rules[0].user", "unknown key"),
    ({"inactivity": "4d"}, "lifetimes.inactivity", "unknown key"),
])
def test_bad_lifetimes_name_file_and_key(tmp_path, lifetimes, where, problem):
    with pytest.raises(SiteDataError) as error:
        catalog_with(tmp_path, lifetimes)
    assert error.value.path == where and problem in error.value.problem
    assert str(tmp_path / "catalog.yaml") in str(error.value)


# ---------------------------------------------------------------- decisions
LIMITS = LifetimeRules().resolve("LoKI", "small", "img", staff=False)
SHORT = LifetimeLimits(default_hours=0.05, max_hours=0.05, inactivity_hours=None, warnings_hours=(2 / 60, 1 / 60),
                       inactivity_warning_hours=None, membership_grace_hours=20 / 3600, extension_step_hours=1 / 60,
                       auto_extend=True, auto_up_to_hours=5 / 60, extension_max_hours=0.5)


def test_warnings_at_each_threshold_once_then_stop_at_expiry():
    facts = InstanceFacts(started_at=T0, expires_at=T0 + dt.timedelta(minutes=3))
    sent: dict[str, dt.datetime] = {}
    seen = []
    for second in range(0, 200, 5):
        now = T0 + dt.timedelta(seconds=second)
        decision = decide(facts, SHORT, sent, now)
        for warning in decision.send:
            sent[warning.key] = now
            seen.append((second, warning.kind, warning.level))
        if decision.stop:
            assert second >= 180 and decision.stop == "expired"
            break
    assert seen == [(60, EXPIRY, 1), (120, EXPIRY, 2)]


def test_warnings_longer_than_the_whole_lifetime_do_not_fire_at_the_start():
    facts = InstanceFacts(started_at=T0, expires_at=T0 + dt.timedelta(hours=24))
    assert decide(facts, LIMITS, {}, T0 + dt.timedelta(minutes=1)).send == ()  # not the 48 h one
    (warning,) = decide(facts, LIMITS, {}, T0 + dt.timedelta(hours=23, minutes=1)).send
    assert warning.threshold_hours == 1 and warning.level == 1


def test_late_service_sends_only_the_most_urgent_warning():
    facts = InstanceFacts(started_at=T0, expires_at=T0 + dt.timedelta(minutes=3))
    decision = decide(facts, SHORT, {}, T0 + dt.timedelta(seconds=150))
    assert [(w.kind, w.level) for w in decision.send] == [(EXPIRY, 2)]


def test_an_extension_makes_new_warnings_and_drops_the_old_ones():
    old = InstanceFacts(started_at=T0, expires_at=T0 + dt.timedelta(minutes=3))
    now = T0 + dt.timedelta(seconds=70)
    (warning,) = decide(old, SHORT, {}, now).send
    extended = InstanceFacts(started_at=T0, expires_at=T0 + dt.timedelta(minutes=4))
    decision = decide(extended, SHORT, {warning.key: now}, now)
    assert decision.active == () and not decision.is_current(warning.key)


def test_inactivity_warned_first_with_the_whole_warning_period():
    limits = LifetimeLimits(**{**SHORT.__dict__, "inactivity_hours": 1 / 60, "inactivity_warning_hours": 0.5 / 60,
                               "max_hours": 1.0})
    facts = InstanceFacts(started_at=T0, expires_at=T0 + dt.timedelta(hours=1), last_activity=T0)
    late = T0 + dt.timedelta(seconds=90)  # the service was down through the warning window
    decision = decide(facts, limits, {}, late)
    assert decision.stop is None and [w.kind for w in decision.send] == [INACTIVITY]
    sent = {decision.send[0].key: late}
    assert decide(facts, limits, sent, late + dt.timedelta(seconds=29)).stop is None
    assert decide(facts, limits, sent, late + dt.timedelta(seconds=30)).stop == "inactive"
    back = InstanceFacts(started_at=T0, expires_at=facts.expires_at, last_activity=late + dt.timedelta(seconds=5))
    assert decide(back, limits, sent, late + dt.timedelta(seconds=6)).active == ()  # the warning is gone


def test_membership_lost_warned_then_stopped_after_grace():
    lost = T0 + dt.timedelta(seconds=10)
    facts = InstanceFacts(started_at=T0, expires_at=T0 + dt.timedelta(hours=1), member=False, membership_lost_at=lost)
    decision = decide(facts, SHORT, {}, lost + dt.timedelta(seconds=30))
    assert decision.stop is None and [w.kind for w in decision.send] == [MEMBERSHIP]  # no stop without a warning
    sent = {decision.send[0].key: lost}
    assert decide(facts, SHORT, sent, lost + dt.timedelta(seconds=19)).stop is None
    assert decide(facts, SHORT, sent, lost + dt.timedelta(seconds=20)).stop == "membership"


@settings(max_examples=300, deadline=None)
@given(lifetime_s=st.integers(60, 7 * 86400), steps=st.lists(st.integers(1, 7200), min_size=1, max_size=60),
       activity=st.lists(st.integers(0, 7200), max_size=10), thresholds=st.lists(st.integers(1, 86400), max_size=4))
def test_no_warning_twice_never_stopped_early(lifetime_s, steps, activity, thresholds):
    limits = LifetimeLimits(**{**LIMITS.__dict__, "warnings_hours": tuple(sorted({t / 3600 for t in thresholds},
                                                                                 reverse=True)),
                               "inactivity_hours": 2.0, "inactivity_warning_hours": 0.5})
    sent: dict[str, dt.datetime] = {}
    now, last = T0, T0
    expires_at = T0 + dt.timedelta(seconds=lifetime_s)
    marks = sorted(T0 + dt.timedelta(seconds=a) for a in activity)
    for step in steps:
        now += dt.timedelta(seconds=step)
        last = max([last, *(m for m in marks if m <= now)])
        facts = InstanceFacts(started_at=T0, expires_at=expires_at, last_activity=last)
        decision = decide(facts, limits, sent, now)
        assert all(w.key not in sent for w in decision.send)
        if decision.stop == "expired":
            assert now >= expires_at
            break
        if decision.stop == "inactive":
            warned = [k for k in sent if k.startswith(INACTIVITY)]
            assert warned and now >= last + dt.timedelta(hours=2)
            break
        assert now < expires_at
        for warning in decision.send:
            sent[warning.key] = now


@pytest.mark.parametrize(("minutes", "kind"), [(4, "auto"), (5, "auto"), (6, "request"), (30, "request"),
                                               (31, "refused"), (2, "refused")])
def test_extension_outcome(minutes, kind):
    outcome = extension_outcome(SHORT, T0, T0 + dt.timedelta(minutes=3), T0 + dt.timedelta(minutes=minutes))
    assert outcome.kind == kind and outcome.message


def test_no_automatic_extension_where_the_rules_say_none():
    limits = LifetimeLimits(**{**SHORT.__dict__, "auto_extend": False})
    outcome = extension_outcome(limits, T0, T0 + dt.timedelta(minutes=3), T0 + dt.timedelta(minutes=4))
    assert outcome.kind == "request" and "administrator" in outcome.message


# ---------------------------------------------------------------- small parsers and templates
@pytest.mark.parametrize(("text", "minutes"), [("10", 10), ("10:30", 10.5), ("01:00:00", 60), ("1-00:00:00", 1440),
                                               ("2-12", 3600), ("UNLIMITED", None), ("INFINITE", None)])
def test_slurm_times(text, minutes):
    assert slurm_minutes(text) == minutes


def test_scontrol_fields():
    fields = scontrol_fields("JobId=12 JobName=jupyterlab-alice Partition=short TimeLimit=00:03:00 "
                             "StartTime=2026-11-27T21:00:01")
    assert (fields["Partition"], fields["TimeLimit"], fields["StartTime"]) == ("short", "00:03:00",
                                                                               "2026-11-27T21:00:01")


def test_display_number_from_the_desktops_xauthority():
    cookie = new_cookie()
    assert display_number(xauthority_entry(None, cookie)) is None
    assert display_number(xauthority_entry(None, cookie) + xauthority_entry(7, cookie)) == 7


@pytest.mark.parametrize("template", sorted(p.stem for p in TEMPLATES.glob("*.txt")))
def test_every_mail_template_renders_with_a_subject(template):
    context = dict(name="Alice", experiment="LOKI-2026-042", flavour="small", deadline="2026-11-27 21:00",
                   time_left="2 minutes", relaunch_url="http://hub/hub/spawn/alice?opt-experiment=X",
                   lab_url="http://hub/user/alice/lab", hub_url="http://hub/hub/home", can_extend=True,
                   stopped_at="2026-11-27 21:00", reason="it reached the end of its lifetime.", user="alice",
                   owner_name="Alice", backend="local", expires="x", requested="y", comment="z",
                   admin_url="http://hub/services/visa-sessions/admin", status="accepted", decided_by="olga",
                   answer="ok")
    subject, body = VisaMailer().render(template, **context)
    assert subject and "{{" not in body and body.strip()


def test_format_hours():
    assert [format_hours(h) for h in (336, 36, 1, 0.05, 1 / 60)] == ["14 days", "36 hours", "1 hour", "3 minutes",
                                                                    "1 minute"]
