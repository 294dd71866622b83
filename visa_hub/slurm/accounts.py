"""What Slurm's accounting should say about visa-hub's experiments, and the changes that take it there. Pure.

One Slurm account per open experiment (:func:`visa_hub.slurm.account_name` of its code), below one parent account
that the site's Slurm administrator creates once. Each member of the experiment (from the User Office; staff
everywhere, since they may start instances for any experiment) gets an association in it, with limits that the
site catalog derives from the experiment's instrument:

- ``MaxJobs`` = ``MaxSubmitJobs`` = her instances + the largest ``max_jobs`` of the instrument's Dask profiles: what
  one person may have queued or running in the account, whether through visa-hub, dask-jobqueue or a bare
  ``sbatch`` from her terminal. Her instances are the number her quota in the site catalog allows (``users`` or
  ``staff``; all of them may run for one experiment), so a second instance never takes one of her Dask jobs;
- ``GrpTRES`` (cpu, mem) = those instances of the largest flavour, at most her quota's CPUs and memory, + the
  largest ``max_jobs`` × (cores, memory) of a profile: all her running jobs in the account together;
- ``MaxTRES`` (cpu, mem) per job = the largest flavour or profile job;
- ``MaxWall`` = the instrument's longest session lifetime or the longest profile walltime.

The split between profiles (4 ``bigmem`` jobs, 8 ``standard`` ones) stays the instance's Dask client's job
(:mod:`visa_hub.dask.clusters`); Slurm holds the envelope that no client can get around.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..catalog import Catalog, InstrumentRule, Quota
from ..people import Experiment, Person
from ..policy import is_open
from . import ACCOUNT_NAME, account_name

_TIME = re.compile(r"^(?:(\d+)-)?(\d{1,2})(?::(\d{2}))?(?::(\d{2}))?$")
_TRES = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$")
_UNIT_MB = {"K": 1 / 1024, "": 1, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}


def slurm_minutes(text: str) -> int | None:
    """A Slurm time (``D-HH:MM:SS``, ``HH:MM:SS``, ``D-HH``...) in whole minutes (rounded up); None if empty."""
    text = text.strip()
    if not text or text.lower() in ("unlimited", "infinite"):
        return None
    match = _TIME.match(text)
    if not match:
        raise ValueError(f"not a Slurm time: {text!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    if match.group(1) is None and match.group(3) is not None and match.group(4) is None:
        hours, minutes, seconds = 0, hours, minutes  # MM:SS
    return days * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def format_minutes(minutes: int) -> str:
    days, rest = divmod(minutes, 1440)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def parse_tres(text: str) -> dict[str, int]:
    """``cpu=32,mem=196608M`` → ``{"cpu": 32, "mem": 196608}`` (memory in MiB); unknown entries kept as numbers."""
    tres: dict[str, int] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        match = _TRES.match(value.strip().upper())
        if not match:
            continue
        number, unit = float(match.group(1)), match.group(2)
        tres[name.strip().lower()] = math.ceil(number * _UNIT_MB[unit]) if name.strip() == "mem" else int(number)
    return tres


def format_tres(tres: dict[str, int]) -> str:
    return ",".join(f"{name}={value}M" if name == "mem" else f"{name}={value}" for name, value in sorted(tres.items()))


@dataclass(frozen=True)
class Limits:
    """The association limits of one person in one experiment account."""

    max_jobs: int
    grp_tres: dict[str, int] = field(default_factory=dict)
    max_tres: dict[str, int] = field(default_factory=dict)
    max_wall_minutes: int | None = None

    def settings(self) -> list[str]:
        """As ``sacctmgr ... set`` arguments."""
        return [f"MaxJobs={self.max_jobs}", f"MaxSubmitJobs={self.max_jobs}",
                f"GrpTRES={format_tres(self.grp_tres)}", f"MaxTRES={format_tres(self.max_tres)}",
                f"MaxWall={format_minutes(self.max_wall_minutes) if self.max_wall_minutes else -1}"]

    def describe(self) -> str:
        wall = format_minutes(self.max_wall_minutes) if self.max_wall_minutes else "unlimited"
        return (f"MaxJobs=MaxSubmitJobs={self.max_jobs}, GrpTRES={format_tres(self.grp_tres)}, "
                f"MaxTRES={format_tres(self.max_tres)}, MaxWall={wall}")


def _mb(gigabytes: float) -> int:
    return math.ceil(gigabytes * 1024)


#: Instances counted for a person whose quota in the site catalog sets no number (and no override is given).
UNLIMITED_QUOTA_INSTANCES = 1


def quota_instances(quota: Quota, override: int | None = None) -> int:
    """How many instances a person under ``quota`` may run at once: ``override``, else the quota's number."""
    if override is not None:
        return override
    return quota.instances if quota.instances is not None else UNLIMITED_QUOTA_INSTANCES


def instrument_limits(rule: InstrumentRule, catalog: Catalog, instances: int, quota: Quota | None = None) -> Limits:
    """The limits of a member of an experiment on ``rule``'s instrument (see the module's docstring) who may run
    ``instances`` instances; ``quota`` (hers) caps what they use together."""
    flavours = [f for f in (catalog.flavour(name) for name in rule.flavours) if f]
    profiles = [p for p in (catalog.dask_profile(name) for name in rule.dask_profiles) if p]
    workers = max((p.max_jobs for p in profiles), default=0)
    instance_cpus = max((f.cpus for f in flavours), default=0)
    instance_mem = max((_mb(f.memory_gb) for f in flavours), default=0)
    all_cpus, all_mem = instances * instance_cpus, instances * instance_mem
    if quota is not None and quota.cpus is not None:
        all_cpus = min(all_cpus, quota.cpus)
    if quota is not None and quota.memory_gb is not None:
        all_mem = min(all_mem, _mb(quota.memory_gb))
    grp = {"cpu": all_cpus + max((p.max_jobs * p.cores for p in profiles), default=0),
           "mem": all_mem + max((p.max_jobs * _mb(p.memory_gb) for p in profiles), default=0)}
    per_job = {"cpu": max([instance_cpus, *(p.cores for p in profiles)]),
               "mem": max([instance_mem, *(_mb(p.memory_gb) for p in profiles)])}
    walls = [math.ceil(rule.max_lifetime_hours * 60), *(slurm_minutes(p.walltime) or 0 for p in profiles)]
    return Limits(max_jobs=instances + workers, grp_tres=grp, max_tres=per_job, max_wall_minutes=max(walls))


@dataclass(frozen=True)
class DesiredAccount:
    """An experiment's account as it should be: who is in it (with why) and their limits."""

    name: str
    experiment: Experiment
    members: dict[str, str]  # username → why (her role in the experiment, or "staff")
    limits: dict[str, Limits]  # username → her limits (her quota's instances: staff may run more)


def desired_accounts(
    experiments: Iterable[Experiment],
    people: Iterable[Person],
    catalog: Catalog,
    now: dt.datetime,
    *,
    instances: int | None = None,
    staff_everywhere: bool = True,
) -> tuple[dict[str, DesiredAccount], list[str]]:
    """The accounts of every open experiment on one of the catalog's instruments; and what was left out, why.

    A member's instances are her quota's (``users`` or ``staff`` in the catalog), or ``instances`` for everyone.
    """
    skipped: list[str] = []
    chosen: dict[str, tuple[Experiment, InstrumentRule]] = {}
    for experiment in experiments:
        rule = catalog.instrument(experiment.instrument)
        name = account_name(experiment.code)
        if rule is None:
            skipped.append(f"{experiment.code}: instrument {experiment.instrument} is not in the site catalog")
        elif not ACCOUNT_NAME.match(name):
            skipped.append(f"{experiment.code}: not usable as a Slurm account name")
        elif is_open(experiment, catalog, now):
            chosen.setdefault(name, (experiment, rule))
    people = {p.username: p for p in people}
    accounts = {}
    for name, (experiment, rule) in sorted(chosen.items()):
        members = {p.username: p.experiment(experiment.code).role
                   for p in people.values() if p.experiment(experiment.code) is not None}
        if staff_everywhere:
            for person in people.values():
                if person.is_staff:
                    members.setdefault(person.username, "staff")
        limits = {}
        for username in members:
            quota = catalog.quota_for(people[username].is_staff)
            limits[username] = instrument_limits(rule, catalog, quota_instances(quota, instances), quota)
        accounts[name] = DesiredAccount(name, experiment, members, limits)
    return accounts, skipped


@dataclass(frozen=True)
class CurrentAccount:
    """An account below the parent as Slurm's database has it."""

    name: str
    members: dict[str, Limits | None]  # username → her association's limits
    coordinators: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Change:
    """One ``sacctmgr`` call and the changes it makes, one log line each (calls are batched: each takes ~0.5 s)."""

    summaries: tuple[str, ...]
    arguments: tuple[str, ...]

    @property
    def removed_member(self) -> tuple[str, str] | None:
        """(user, account) when this change removes one member from one account."""
        if self.arguments[:3] != ("delete", "user", "where"):
            return None
        fields = dict(a.split("=", 1) for a in self.arguments[3:] if "=" in a)
        return fields["name"], fields["account"]


def _by_limits(users: list[str], limits: dict[str, Limits]) -> list[tuple[Limits, list[str]]]:
    """``users`` grouped by their limits, in the order of each group's first user."""
    groups: list[tuple[Limits, list[str]]] = []  # Limits hold dicts: compared, not hashed
    for user in users:
        group = next((g for g in groups if g[0] == limits[user]), None)
        if group is None:
            groups.append((limits[user], [user]))
        else:
            group[1].append(user)
    return groups


def plan_changes(desired: dict[str, DesiredAccount], current: dict[str, CurrentAccount], *, parent: str,
                 coordinator: str | None, cluster: str | None = None) -> list[Change]:
    """The sacctmgr calls that make ``current`` what ``desired`` says, in an order Slurm accepts."""
    where_cluster = (f"cluster={cluster}",) if cluster else ()
    changes: list[Change] = []
    new = [name for name in desired if name not in current]
    if new:
        changes.append(Change(
            tuple(f"Slurm account {name}: created for experiment {desired[name].experiment.code} "
                  f"({desired[name].experiment.instrument})" for name in new),
            ("add", "account", ",".join(new), f"parent={parent}", "Description=visa-hub experiment",
             "Organization=visa-hub", *where_cluster)))
    for name, want in desired.items():
        have_members = current[name].members if name in current else {}
        added = sorted(set(want.members) - set(have_members))
        for limits, users in _by_limits(added, want.limits):  # one call per set of limits (users, staff)
            changes.append(Change(
                tuple(f"Slurm account {name}: added {user} ({want.members[user]}) with {limits.describe()}"
                      for user in users),
                ("add", "user", ",".join(users), f"account={name}", *where_cluster, *limits.settings())))
        outdated = sorted(u for u in set(want.members) & set(have_members) if have_members[u] != want.limits[u])
        for limits, users in _by_limits(outdated, want.limits):
            changes.append(Change(
                tuple(f"Slurm account {name}: limits of {user} set to {limits.describe()}" for user in users),
                ("modify", "user", "where", f"name={','.join(users)}", f"account={name}", *where_cluster,
                 "set", *limits.settings())))
    uncoordinated = [name for name in desired
                     if coordinator and coordinator not in (current[name].coordinators if name in current else ())]
    if uncoordinated:
        changes.append(Change(
            tuple(f"Slurm account {name}: {coordinator} made coordinator (the hub sees and manages its jobs)"
                  for name in uncoordinated),
            ("add", "coordinator", f"account={','.join(uncoordinated)}", f"names={coordinator}", *where_cluster)))
    for name, want in desired.items():  # one call per removal: a member with running jobs fails alone
        for user in sorted(set(current[name].members if name in current else ()) - set(want.members)):
            changes.append(Change(
                (f"Slurm account {name}: removed {user} (no longer a member of {want.experiment.code})",),
                ("delete", "user", "where", f"name={user}", f"account={name}", *where_cluster)))
    for name in sorted(set(current) - set(desired)):
        changes.append(Change(
            (f"Slurm account {name}: removed (its experiment is closed or gone from the User Office)",),
            ("delete", "account", "where", f"name={name}", *where_cluster)))
    return changes
