"""Who may start which instance: (person, experiments, catalog, request) → SessionPlan | PolicyError.

Pure: no I/O, the clock is a parameter. Every refusal is a :class:`PolicyError` whose message a scientist
understands and that names the form field at fault, so the spawn form can show it next to that field.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .catalog import Catalog, DaskProfile, Flavour, Image, InstrumentRule, Quota
from .people import Experiment, Person


class PolicyError(Exception):
    """A spawn request the site's rules refuse; ``field`` names the form field at fault."""

    def __init__(self, message: str, field: str = "experiment"):
        super().__init__(message)
        self.message, self.field = message, field


@dataclass(frozen=True)
class SpawnRequest:
    """What the user asked for (from the spawn form or the REST API); ``None`` means 'the default'."""

    experiment: str | None = None
    flavour: str | None = None
    image: str | None = None
    lifetime_hours: float | None = None

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SpawnRequest:
        """Build from JupyterHub ``user_options``; wrong types become PolicyErrors, not crashes."""
        unknown = set(options) - {"experiment", "flavour", "image", "lifetime_hours"}
        if unknown:
            raise PolicyError(f"Unknown option(s): {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])

        def text(name: str) -> str | None:
            value = options.get(name)
            if value in (None, ""):
                return None
            if not isinstance(value, str):
                raise PolicyError(f"The {name} must be a name, got {value!r}.", field=name)
            return value.strip()

        lifetime = options.get("lifetime_hours")
        if lifetime in (None, ""):
            lifetime = None
        else:
            try:
                lifetime = float(lifetime)
            except (TypeError, ValueError):
                raise PolicyError(
                    f"The lifetime must be a number of hours, got {lifetime!r}.", field="lifetime_hours"
                ) from None
            if not math.isfinite(lifetime):
                raise PolicyError("The lifetime must be a finite number of hours.", field="lifetime_hours")
        return cls(text("experiment"), text("flavour"), text("image"), lifetime)


@dataclass(frozen=True)
class SessionPlan:
    """Everything a backend needs to create one instance, after the policy said yes."""

    username: str
    experiment: Experiment
    instrument: InstrumentRule
    flavour: Flavour
    image: Image
    lifetime_hours: float
    starts_at: dt.datetime
    environment: dict[str, str] = field(default_factory=dict)
    dask_profiles: tuple[DaskProfile, ...] = ()  # the Dask profiles this session may use
    default_dask_profile: DaskProfile | None = None  # what SLURMCluster() and "New cluster" give

    @property
    def expires_at(self) -> dt.datetime:
        return self.starts_at + dt.timedelta(hours=self.lifetime_hours)

    def summary(self) -> dict[str, Any]:
        """A JSON-able description: what the instance shows the user and what spawner state keeps."""
        return {
            "username": self.username,
            "experiment": self.experiment.to_dict(),
            "instrument": self.instrument.name,
            "flavour": {"name": self.flavour.name, "cpus": self.flavour.cpus,
                        "memory_gb": self.flavour.memory_gb, "gpus": self.flavour.gpus},
            "image": self.image.name,
            "image_title": self.image.title,
            "lifetime_hours": self.lifetime_hours,
            "starts_at": self.starts_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "dask_profiles": [p.name for p in self.dask_profiles],
            "default_dask_profile": self.default_dask_profile.name if self.default_dask_profile else None,
        }


@dataclass(frozen=True)
class RunningInstance:
    """One of a person's instances that is running or starting: what it counts against her quota."""

    name: str  # the instance's name (its JupyterHub server name; "" for the default one)
    experiment: str = ""
    cpus: int = 0
    memory_gb: float = 0.0
    gpus: int = 0

    @classmethod
    def of_flavour(cls, name: str, experiment: str, flavour: Flavour | None) -> RunningInstance:
        if flavour is None:
            return cls(name, experiment)
        return cls(name, experiment, flavour.cpus, flavour.memory_gb, flavour.gpus)


@dataclass(frozen=True)
class QuotaUsage:
    """What a person's running instances use of her quota."""

    quota: Quota
    instances: int
    cpus: int
    memory_gb: float
    gpus: int

    @classmethod
    def of(cls, quota: Quota, running: Sequence[RunningInstance]) -> QuotaUsage:
        return cls(quota, len(running), sum(r.cpus for r in running), sum(r.memory_gb for r in running),
                   sum(r.gpus for r in running))

    @property
    def full(self) -> bool:
        """No further instance fits (the instance count is reached)."""
        return self.quota.instances is not None and self.instances >= self.quota.instances

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the dashboard: used and limit (``None``: no limit) per resource."""
        return {
            "name": self.quota.name,
            "label": self.quota.label,
            "full": self.full,
            "used": {"instances": self.instances, "cpus": self.cpus, "memory_gb": self.memory_gb, "gpus": self.gpus},
            "limits": {"instances": self.quota.instances, "cpus": self.quota.cpus,
                       "memory_gb": self.quota.memory_gb, "gpus": self.quota.gpus},
        }


def check_quota(quota: Quota, flavour: Flavour, running: Sequence[RunningInstance]) -> None:
    """Refuse a new instance of ``flavour`` that would take the person over her quota, naming the quota."""
    names = ", ".join(r.name or "default" for r in running)
    which = f'your quota ("{quota.name}" in the site catalog)'
    if quota.instances is not None and len(running) >= quota.instances:
        raise PolicyError(
            f"You already have {len(running)} instance{'s' if len(running) != 1 else ''} running ({names}), and "
            f"{which} allows {quota.instances} at a time. Stop one on your dashboard, then start this one.",
            field="quota",
        )
    usage = QuotaUsage.of(quota, running)
    for key, unit, used, needed in (
        ("cpus", "CPU", usage.cpus, flavour.cpus),
        ("memory_gb", "GB of memory", usage.memory_gb, flavour.memory_gb),
        ("gpus", "GPU", usage.gpus, flavour.gpus),
    ):
        limit = getattr(quota, key)
        if limit is not None and needed and used + needed > limit:
            raise PolicyError(
                f"A {flavour.name} instance needs {_amount(needed, unit)}; with your running instances ({names}: "
                f"{used:g}) that makes {used + needed:g}, more than {which} allows: {_amount(limit, unit)}. "
                "Choose a smaller flavour or stop an instance on your dashboard.",
                field="flavour",
            )


def _amount(number: float, unit: str) -> str:
    plural = "s" if number != 1 and unit in ("CPU", "GPU") else ""
    return f"{number:g} {unit}{plural}"


def access_window(experiment: Experiment, catalog: Catalog) -> tuple[dt.datetime, dt.datetime]:
    """When members may use an experiment: [start - days_before_start, end + days_after_end]."""
    return (
        experiment.starts_at - dt.timedelta(days=catalog.access.days_before_start),
        experiment.ends_at + dt.timedelta(days=catalog.access.days_after_end),
    )


def is_open(experiment: Experiment, catalog: Catalog, now: dt.datetime) -> bool:
    opens, closes = access_window(experiment, catalog)
    return opens <= now <= closes


def selectable_experiments(
    person: Person, catalog: Catalog, now: dt.datetime, site_experiments: Iterable[Experiment] = ()
) -> list[Experiment]:
    """The experiments the spawn form offers: her open experiments on configured instruments.

    Staff may use any experiment: for them ``site_experiments`` (all the User Office knows) is added.
    """
    candidates: dict[str, Experiment] = {e.code: e for e in person.experiments}
    if person.is_staff:
        for experiment in site_experiments:
            candidates.setdefault(experiment.code, experiment)
    chosen = [
        e for e in candidates.values()
        if catalog.instrument(e.instrument) and (person.is_staff or is_open(e, catalog, now))
    ]
    return sorted(chosen, key=lambda e: _relevance(e, now))


def upcoming_experiments(person: Person, catalog: Catalog, now: dt.datetime) -> list[tuple[Experiment, dt.datetime]]:
    """Her experiments (on configured instruments) that open for analysis later, with when, soonest first."""
    if person.is_staff:
        return []  # staff may use any experiment at any time
    later = [(e, access_window(e, catalog)[0]) for e in person.experiments if catalog.instrument(e.instrument)]
    return sorted(((e, opens) for e, opens in later if opens > now), key=lambda item: (item[1], item[0].code))


def _relevance(experiment: Experiment, now: dt.datetime) -> tuple[int, float, str]:
    """Running experiments first, then upcoming (soonest first), then past (latest first)."""
    if experiment.starts_at <= now < experiment.ends_at:
        return (0, 0.0, experiment.code)
    if experiment.starts_at > now:
        return (1, (experiment.starts_at - now).total_seconds(), experiment.code)
    return (2, (now - experiment.ends_at).total_seconds(), experiment.code)


def may_use_service(person: Person, catalog: Catalog, now: dt.datetime) -> bool:
    """Staff always; others only while one of their experiments is open."""
    return person.is_staff or any(is_open(e, catalog, now) for e in person.experiments)


def refusal_reason(person: Person, catalog: Catalog, now: dt.datetime) -> str:
    """Why :func:`may_use_service` said no, for the login page."""
    if not person.experiments:
        return (
            f"{person.name}, you are not a member of any experiment in the User Office, so you cannot start "
            "an analysis instance. Ask the principal investigator of your proposal to add you, then log in again."
        )
    latest = max(person.experiments, key=lambda e: e.ends_at)
    opens, closes = access_window(latest, catalog)
    if now > closes:
        return (
            f"{person.name}, access to your experiments has ended: the latest, {latest.code} on "
            f"{latest.instrument}, closed for analysis on {closes:%d %B %Y}. If you need more time, ask your "
            "local contact or the User Office."
        )
    return (
        f"{person.name}, your experiment {latest.code} on {latest.instrument} opens for analysis on "
        f"{opens:%d %B %Y}. Please come back then."
    )


def _choose_experiment(
    person: Person, code: str | None, catalog: Catalog, now: dt.datetime, site_experiments: Sequence[Experiment]
) -> Experiment:
    if not code:
        raise PolicyError("Choose the experiment this instance is for.")
    experiment = person.experiment(code)
    if experiment is None and person.is_staff:
        experiment = next((e for e in site_experiments if e.code == code), None)
    if experiment is None:
        mine = ", ".join(e.code for e in selectable_experiments(person, catalog, now)) or "none open now"
        raise PolicyError(
            f"You are not a member of experiment {code}. Ask its principal investigator to add you in the "
            f"User Office. Your experiments: {mine}."
        )
    if not person.is_staff:
        opens, closes = access_window(experiment, catalog)
        if now < opens:
            raise PolicyError(
                f"Experiment {experiment.code} ({experiment.title}) opens for analysis on {opens:%d %B %Y}, "
                f"{catalog.access.days_before_start} days before it starts. You cannot start an instance "
                "for it yet."
            )
        if now > closes:
            raise PolicyError(
                f"Access to experiment {experiment.code} ({experiment.title}) ended on {closes:%d %B %Y}, "
                f"{catalog.access.days_after_end} days after the experiment. Ask your local contact if you "
                "need more time."
            )
    return experiment


def plan_session(
    person: Person,
    request: SpawnRequest,
    catalog: Catalog,
    now: dt.datetime,
    site_experiments: Sequence[Experiment] = (),
    running: Sequence[RunningInstance] = (),
) -> SessionPlan:
    """Apply the site's rules to a spawn request; the plan or a :class:`PolicyError`.

    ``running`` are the person's other instances (running or starting): with this one they must fit her quota.
    """
    experiment = _choose_experiment(person, request.experiment, catalog, now, site_experiments)
    rule = catalog.instrument(experiment.instrument)
    if rule is None:
        raise PolicyError(
            f"Instrument {experiment.instrument} of experiment {experiment.code} is not set up at "
            f"{catalog.site_name} yet. Please contact support."
        )

    flavour_name = request.flavour or rule.default_flavour
    if flavour_name not in rule.flavours:
        raise PolicyError(
            f"Flavour {flavour_name!r} is not available for {rule.name} experiments. "
            f"Choose one of: {', '.join(rule.flavours)}.",
            field="flavour",
        )
    flavour = catalog.flavour(flavour_name)
    assert flavour is not None  # the catalog cross-checks instrument flavours on load
    check_quota(catalog.quota_for(person.is_staff), flavour, running)

    image_name = request.image or (catalog.default_image if catalog.default_image in rule.images else rule.images[0])
    if image_name not in rule.images:
        raise PolicyError(
            f"Image {image_name!r} is not available for {rule.name} experiments. "
            f"Choose one of: {', '.join(rule.images)}.",
            field="image",
        )
    image = catalog.image(image_name)
    assert image is not None

    limits = catalog.lifetime_limits(rule, flavour.name, image.name, person.is_staff)
    lifetime = limits.default_hours if request.lifetime_hours is None else request.lifetime_hours
    if lifetime <= 0:
        raise PolicyError("The lifetime must be more than 0 hours.", field="lifetime_hours")
    if lifetime > limits.max_hours:
        raise PolicyError(
            f"{rule.name} instances can run for at most {limits.max_hours:g} hours; you asked for "
            f"{lifetime:g}. You can extend a running instance later.",
            field="lifetime_hours",
        )

    profiles = tuple(p for p in (catalog.dask_profile(n) for n in rule.dask_profiles) if p is not None)
    plan = SessionPlan(
        username=person.username,
        experiment=experiment,
        instrument=rule,
        flavour=flavour,
        image=image,
        lifetime_hours=lifetime,
        starts_at=now,
        dask_profiles=profiles,
        default_dask_profile=catalog.dask_profile(rule.default_dask_profile) if rule.default_dask_profile else None,
    )
    return SessionPlan(**{**plan.__dict__, "environment": session_environment(plan)})


def session_environment(plan: SessionPlan) -> dict[str, str]:
    """Environment variables an instance gets, so tools inside it know their session.

    ``VISA_DASK`` carries what :mod:`visa_hub.dask` writes as the instance's dask configuration: the Slurm
    account (the experiment's code), the allowed profiles and the default one.
    """
    dask = {
        "account": plan.experiment.code,
        "experiment": plan.experiment.code,
        "image": plan.image.name,
        "default": plan.default_dask_profile.name if plan.default_dask_profile else None,
        "profiles": [p.to_dict() for p in plan.dask_profiles],  # a list: the catalog's order
    }
    return {
        "VISA_DASK": json.dumps(dask, sort_keys=True),
        "VISA_EXPERIMENT": plan.experiment.code,
        "VISA_EXPERIMENT_TITLE": plan.experiment.title,
        "VISA_INSTRUMENT": plan.instrument.name,
        "VISA_FLAVOUR": plan.flavour.name,
        "VISA_IMAGE": plan.image.name,
        "VISA_EXPIRES_AT": plan.expires_at.isoformat(),
        "VISA_SESSION": json.dumps(plan.summary(), sort_keys=True),
    }
