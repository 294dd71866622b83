"""What Slurm's accounting should hold for the site's experiments, and the sacctmgr calls that get it there."""

from __future__ import annotations

import datetime as dt

import pytest

from visa_hub.catalog import load_catalog
from visa_hub.demo import DEMO_CATALOG
from visa_hub.people import Experiment, Person
from visa_hub.slurm import account_name
from visa_hub.slurm.accounts import (
    CurrentAccount,
    Limits,
    desired_accounts,
    format_minutes,
    instrument_limits,
    parse_tres,
    plan_changes,
    slurm_minutes,
)

NOW = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
CATALOG = load_catalog(DEMO_CATALOG)


def experiment(code: str, instrument: str = "LoKI", days_from_now: int = 0, role: str = "co-proposer") -> Experiment:
    starts = NOW + dt.timedelta(days=days_from_now)
    return Experiment(code, f"Title of {code}", instrument, starts, starts + dt.timedelta(days=3), role=role)


def person(name: str, *experiments: Experiment, roles: tuple[str, ...] = ()) -> Person:
    return Person(name, name.title(), roles=frozenset(roles), experiments=experiments)


def test_slurm_times_and_tres_parse_as_sacctmgr_prints_them():
    assert slurm_minutes("7-00:00:00") == 7 * 1440
    assert slurm_minutes("08:00:00") == 480 and slurm_minutes("00:30:01") == 31
    assert slurm_minutes("1-12") == 36 * 60 and slurm_minutes("") is None
    assert format_minutes(10080) == "7-00:00:00"
    assert parse_tres("cpu=32,mem=192G") == parse_tres("cpu=32,mem=196608M") == {"cpu": 32, "mem": 196608}
    with pytest.raises(ValueError):
        slurm_minutes("soon")


def test_limits_of_loki_members_come_from_its_flavours_and_dask_profiles():
    limits = instrument_limits(CATALOG.instrument("LoKI"), CATALOG, instances=1)
    # standard: 8 jobs × 2 cores × 4 GB; bigmem: 4 × 4 cores × 32 GB; large flavour 16 cores, 64 GB; 168 h
    assert limits.max_jobs == 1 + 8
    assert limits.grp_tres == {"cpu": 16 + 16, "mem": 64 * 1024 + 4 * 32 * 1024}
    assert limits.max_tres == {"cpu": 16, "mem": 64 * 1024}
    assert limits.max_wall_minutes == 168 * 60
    assert "MaxSubmitJobs=9" in limits.settings() and "MaxWall=7-00:00:00" in limits.settings()
    assert instrument_limits(CATALOG.instrument("LoKI"), CATALOG, instances=3).max_jobs == 3 + 8


def test_isolation_max_jobs_follow_the_catalogs_instance_quota_for_users_and_staff():
    """Her second instance must not take one of her Dask jobs: MaxJobs counts every instance her quota allows."""
    running = experiment("LOKI-1")
    people = [person("alice", running), person("carl", roles=("staff",))]
    assert (CATALOG.user_quota.instances, CATALOG.staff_quota.instances) == (2, 4)  # the demo catalog's quotas
    accounts, _ = desired_accounts([running], people, CATALOG, NOW)
    alice, carl = accounts["loki-1"].limits["alice"], accounts["loki-1"].limits["carl"]
    assert alice.max_jobs == 2 + 8 and carl.max_jobs == 4 + 8
    # the instances' share of GrpTRES is capped by the quota: users 32 CPUs / 192 GB, staff 64 CPUs / 256 GB
    assert alice.grp_tres == {"cpu": 2 * 16 + 16, "mem": 2 * 64 * 1024 + 4 * 32 * 1024}
    assert carl.grp_tres == {"cpu": 64 + 16, "mem": 256 * 1024 + 4 * 32 * 1024}
    # an operator's number overrides the catalog for everyone
    fixed, _ = desired_accounts([running], people, CATALOG, NOW, instances=1)
    assert {u: lim.max_jobs for u, lim in fixed["loki-1"].limits.items()} == {"alice": 1 + 8, "carl": 1 + 8}


def test_a_catalog_without_an_instance_quota_counts_one_instance():
    from visa_hub.catalog import Quota
    from visa_hub.slurm.accounts import quota_instances

    assert quota_instances(Quota("users")) == 1
    assert quota_instances(Quota("users", instances=3)) == 3
    assert quota_instances(Quota("users", instances=3), override=5) == 5


def test_open_experiments_get_accounts_with_members_and_staff():
    running, later, closed = experiment("LOKI-1"), experiment("ODIN-9", "ODIN", 200), experiment("DREAM-1", "DREAM",
                                                                                                   -800)
    unknown = experiment("XYZ-1", "Unknown instrument")
    people = [person("alice", running, later, closed), person("bob", running), person("carl", roles=("staff",))]
    accounts, skipped = desired_accounts([running, later, closed, unknown], people, CATALOG, NOW)
    assert set(accounts) == {"loki-1"}  # ODIN-9 opens in 170 days, DREAM-1 closed a year after it ended
    assert accounts["loki-1"].members == {"alice": "co-proposer", "bob": "co-proposer", "carl": "staff"}
    assert skipped == ["XYZ-1: instrument Unknown instrument is not in the site catalog"]
    without_staff, _ = desired_accounts([running], people, CATALOG, NOW, staff_everywhere=False)
    assert set(without_staff["loki-1"].members) == {"alice", "bob"}


def test_a_first_sync_creates_accounts_members_and_coordinator_in_few_calls():
    running = experiment("LOKI-1")
    desired, _ = desired_accounts([running], [person("alice", running), person("bob", running)], CATALOG, NOW)
    changes = plan_changes(desired, {}, parent="visa", coordinator="visahub")
    assert [c.arguments[:3] for c in changes] == [
        ("add", "account", "loki-1"), ("add", "user", "alice,bob"), ("add", "coordinator", "account=loki-1")]
    assert "parent=visa" in changes[0].arguments
    assert changes[1].summaries == tuple(
        f"Slurm account loki-1: added {u} (co-proposer) with {desired['loki-1'].limits[u].describe()}"
        for u in ("alice", "bob"))


def test_members_with_other_limits_are_added_in_a_call_of_their_own():
    running = experiment("LOKI-1")
    people = [person("alice", running), person("bob", running), person("carl", roles=("staff",))]
    desired, _ = desired_accounts([running], people, CATALOG, NOW)
    changes = plan_changes(desired, {}, parent="visa", coordinator=None)
    added = [c for c in changes if c.arguments[:2] == ("add", "user")]
    assert [c.arguments[2] for c in added] == ["alice,bob", "carl"]  # users' quota, then staff's
    assert "MaxJobs=10" in added[0].arguments and "MaxJobs=12" in added[1].arguments


def test_a_sync_in_step_changes_nothing_and_otherwise_only_the_difference():
    running = experiment("LOKI-1")
    desired, _ = desired_accounts([running], [person("alice", running), person("bob", running)], CATALOG, NOW)
    limits = desired["loki-1"].limits["alice"]
    assert desired["loki-1"].limits["bob"] == limits
    in_step = {"loki-1": CurrentAccount("loki-1", {"alice": limits, "bob": limits}, frozenset({"visahub"}))}
    assert plan_changes(desired, in_step, parent="visa", coordinator="visahub") == []

    old = Limits(2, {"cpu": 4, "mem": 1024}, {"cpu": 2, "mem": 1024}, 60)
    current = {"loki-1": CurrentAccount("loki-1", {"alice": old, "dora": limits}, frozenset()),
               "gone-1": CurrentAccount("gone-1", {"alice": limits}, frozenset({"visahub"}))}
    changes = plan_changes(desired, current, parent="visa", coordinator="visahub", cluster="ess")
    summaries = [s for c in changes for s in c.summaries]
    assert summaries == [
        f"Slurm account loki-1: added bob (co-proposer) with {limits.describe()}",
        f"Slurm account loki-1: limits of alice set to {limits.describe()}",
        "Slurm account loki-1: visahub made coordinator (the hub sees and manages its jobs)",
        "Slurm account loki-1: removed dora (no longer a member of LOKI-1)",
        "Slurm account gone-1: removed (its experiment is closed or gone from the User Office)",
    ]
    assert all("cluster=ess" in c.arguments for c in changes)
    assert changes[-2].arguments == ("delete", "user", "where", "name=dora", "account=loki-1", "cluster=ess")


def test_account_names_are_the_experiment_codes_in_lower_case():
    assert account_name(" LOKI-2026-042 ") == "loki-2026-042"
    odd = experiment("LOKI 2026,42")
    accounts, skipped = desired_accounts([odd], [person("alice", odd)], CATALOG, NOW)
    assert accounts == {} and skipped == ["LOKI 2026,42: not usable as a Slurm account name"]
