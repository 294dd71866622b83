"""Several instances per person: the quota in the site catalog, the policy that applies it, instance names."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from visa_hub.catalog import SiteDataError, load_catalog
from visa_hub.demo import DEMO_CATALOG
from visa_hub.instances import START_STEPS, instance_name, start_step
from visa_hub.people import PRINCIPAL_INVESTIGATOR, STAFF, Experiment, Person
from visa_hub.policy import (
    PolicyError,
    QuotaUsage,
    RunningInstance,
    SpawnRequest,
    plan_session,
    upcoming_experiments,
)

CATALOG = load_catalog(DEMO_CATALOG)
NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def experiment(code, instrument, start_days=-2, length_days=5, role=PRINCIPAL_INVESTIGATOR):
    starts = NOW + dt.timedelta(days=start_days)
    return Experiment(code=code, title=f"Title of {code}", instrument=instrument, starts_at=starts,
                      ends_at=starts + dt.timedelta(days=length_days), role=role)


ALICE = Person("alice", "Alice", experiments=(experiment("LOKI-1", "LoKI"), experiment("ODIN-7", "ODIN", 20, 3)))
CARL = Person("carl", "Carl", roles=frozenset({STAFF}), experiments=(experiment("LOKI-1", "LoKI"),))
LOKI_MEDIUM = RunningInstance("loki-1", "LOKI-1", cpus=4, memory_gb=16)
ODIN_LARGE = RunningInstance("odin-7", "ODIN-7", cpus=16, memory_gb=64)


# -- the catalog -------------------------------------------------------------------------------------------
def test_demo_catalog_has_a_quota_for_users_and_one_for_staff():
    assert (CATALOG.user_quota.instances, CATALOG.user_quota.cpus, CATALOG.user_quota.gpus) == (2, 32, 1)
    assert CATALOG.quota_for(is_staff=True).instances == 4
    assert CATALOG.user_quota.label == "2 instances, 32 CPUs, 192 GB, 1 GPU"
    gpu = CATALOG.flavour("gpu-large")  # the biggest flavour fits the users' quota on its own
    assert gpu.cpus <= CATALOG.user_quota.cpus and gpu.memory_gb <= CATALOG.user_quota.memory_gb


def write(tmp_path: Path, quotas) -> Path:
    document = yaml.safe_load(DEMO_CATALOG.read_text())
    if quotas is None:
        document.pop("quotas")
    else:
        document["quotas"] = quotas
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("quotas", "path", "problem"),
    [
        ({"users": {"instances": 0}}, "quotas.users.instances", "must be an integer ≥ 1"),
        ({"users": {"instances": "two"}}, "quotas.users.instances", "must be an integer"),
        ({"users": {"cpu": 4}}, "quotas.users.cpu", "unknown key"),
        ({"guests": {"instances": 1}}, "quotas.guests", "unknown key"),
        ({"users": {"memory_gb": -1}}, "quotas.users.memory_gb", "> 0"),
        ({"staff": {"gpus": -1}}, "quotas.staff.gpus", "≥ 0"),
        ({"users": {"cpus": 2}}, "quotas.users.cpus",
         "2 CPUs is less than ODIN's smallest flavour (medium (4 CPU, 16 GB)): nobody under this quota could start"),
        ([{"instances": 2}], "quotas", "must be a mapping"),
    ],
)
def test_bad_quota_names_file_key_and_problem(tmp_path, quotas, path, problem):
    file = write(tmp_path, quotas)
    with pytest.raises(SiteDataError) as caught:
        load_catalog(file)
    assert str(caught.value).startswith(f"{file}: {path}: "), str(caught.value)
    assert problem in str(caught.value)


def test_no_quota_means_no_limit_and_staff_default_to_the_users_quota(tmp_path):
    unlimited = load_catalog(write(tmp_path, None))
    assert unlimited.user_quota.instances is None and unlimited.user_quota.label == "no limit"
    users_only = load_catalog(write(tmp_path, {"users": {"instances": 3}}))
    assert users_only.staff_quota.instances == 3 and users_only.staff_quota.name == "staff"


# -- the policy --------------------------------------------------------------------------------------------
def test_a_second_instance_fits_the_quota():
    plan = plan_session(ALICE, SpawnRequest("ODIN-7"), CATALOG, NOW, running=[LOKI_MEDIUM])
    assert plan.flavour.name == "large"


def test_a_third_instance_is_refused_naming_the_quota_and_her_instances():
    with pytest.raises(PolicyError) as refused:
        plan_session(ALICE, SpawnRequest("LOKI-1"), CATALOG, NOW, running=[LOKI_MEDIUM, ODIN_LARGE])
    assert refused.value.message == (
        'You already have 2 instances running (loki-1, odin-7), and your quota ("users" in the site catalog) '
        "allows 2 at a time. Stop one on your dashboard, then start this one."
    )
    assert refused.value.field == "quota"


@pytest.mark.parametrize(
    ("flavour", "running", "message"),
    [
        ("gpu-large", [RunningInstance("gpu", "ODIN-7", 4, 8, gpus=1)],
         "A gpu-large instance needs 1 GPU; with your running instances (gpu: 1) that makes 2, more than your "
         'quota ("users" in the site catalog) allows: 1 GPU.'),
        ("large", [RunningInstance("big", "ODIN-7", 20, 8)],
         "A large instance needs 16 CPUs; with your running instances (big: 20) that makes 36, more than your "
         'quota ("users" in the site catalog) allows: 32 CPUs.'),
        ("large", [RunningInstance("fat", "ODIN-7", 2, 150)],
         "A large instance needs 64 GB of memory; with your running instances (fat: 150) that makes 214"),
    ],
)
def test_resources_over_the_quota_are_refused_with_the_numbers(flavour, running, message):
    with pytest.raises(PolicyError) as refused:
        plan_session(ALICE, SpawnRequest("ODIN-7", flavour), CATALOG, NOW, running=running)
    assert message in refused.value.message
    assert refused.value.field == "flavour"


def test_staff_have_their_own_quota():
    four = [RunningInstance(f"i{n}", "LOKI-1", 2, 4) for n in range(3)]
    plan_session(CARL, SpawnRequest("LOKI-1", "small"), CATALOG, NOW, running=four)  # a 4th: fine for staff
    with pytest.raises(PolicyError, match=r'quota \("staff" in the site catalog\) allows 4 at a time'):
        plan_session(CARL, SpawnRequest("LOKI-1", "small"), CATALOG, NOW, running=four + [four[0]])


def test_quota_usage_for_the_dashboard():
    usage = QuotaUsage.of(CATALOG.user_quota, [LOKI_MEDIUM, ODIN_LARGE])
    assert usage.full
    assert usage.to_dict()["used"] == {"instances": 2, "cpus": 20, "memory_gb": 80, "gpus": 0}
    assert usage.to_dict()["limits"]["cpus"] == 32
    assert not QuotaUsage.of(CATALOG.user_quota, [LOKI_MEDIUM]).full


def test_upcoming_experiments_with_when_they_open():
    bob = Person("bob", "Bob", experiments=(experiment("LOKI-1", "LoKI"), experiment("BIF-13", "BIFROST", 90, 5)))
    [(later, opens)] = upcoming_experiments(bob, CATALOG, NOW)
    assert later.code == "BIF-13"
    assert opens == NOW + dt.timedelta(days=90 - CATALOG.access.days_before_start)
    assert upcoming_experiments(ALICE, CATALOG, NOW) == []  # ODIN-7 starts in 20 days: open already
    assert upcoming_experiments(CARL, CATALOG, NOW) == []  # staff may use any experiment now


def test_a_role_only_where_the_person_has_one():
    site_experiment = Experiment("BIF-13", "Magnons", "BIFROST", NOW, NOW + dt.timedelta(days=3))
    assert site_experiment.role is None
    assert Experiment.from_dict(site_experiment.to_dict()).role is None


# -- names and steps -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "taken", "name"),
    [
        ("LOKI-2026-042", set(), "loki-2026-042"),
        ("LOKI-2026-042", {"loki-2026-042"}, "loki-2026-042-2"),
        ("LOKI-2026-042", {"loki-2026-042", "loki-2026-042-2"}, "loki-2026-042-3"),
        ("587412", set(), "x-587412"),  # User Office numeric codes: a name starts with a letter
        ("A very long proposal code with spaces 2026", set(), "a-very-long-proposal-code-with"),
        ("A very long proposal code with spaces 2026", {"a-very-long-proposal-code-with"},
         "a-very-long-proposal-code-wi-2"),
        ("---", set(), "instance"),
    ],
)
def test_instance_names_are_valid_jupyterhub_server_names(code, taken, name):
    from jupyterhub.slugs import is_valid_safe_slug

    assert instance_name(code, taken) == name
    assert is_valid_safe_slug(name)


def test_start_steps_by_progress():
    assert [start_step(p).key for p in (0, 5, 15, 20, 30, 50, 70, 99, 100)] == \
        ["check", "check", "check", "prepare", "prepare", "start", "start", "start", "ready"]
    assert START_STEPS[0].starts_at == 0
