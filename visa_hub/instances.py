"""A person's instances: JupyterHub named servers, their names and what each one counts and shows.

One person may run several instances (one per experiment, or a small and a GPU one), each a JupyterHub
named server. This module names new ones after their experiment, and reads what an instance is from its
spawner — duck-typed, so that the hub-side dashboard and every backend share it without ``visa_hub``
importing the spawners: a visa-hub spawner has ``session_summary`` (the :meth:`SessionPlan.summary
<visa_hub.policy.SessionPlan.summary>` of its session, kept in spawner state as ``visa_session``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog
from .policy import RunningInstance

#: Spawner state key of the running session's summary (what re-attach, the dashboard and the Session panel read).
STATE_KEY = "visa_session"
#: Spawner state key of the last session that started; kept when the instance stops, so a stopped instance is
#: still on the dashboard with what it was (a spawn form only opened, or a refused request, leaves none).
LAST_STATE_KEY = "visa_last_session"

#: JupyterHub 6 server names: 1-30 characters, lowercase letters, digits and single hyphens, starting with a letter.
NAME_MAX = 30


@dataclass(frozen=True)
class StartStep:
    """A named step of an instance's start; it begins when the progress reaches ``starts_at`` percent."""

    key: str
    title: str
    starts_at: int


#: The steps every backend's start goes through, shown by the progress page and the dashboard. Backends report
#: progress in percent (see spawners/progress.py): 5-19 checking the request, 20-49 preparing resources (home,
#: network, queue), 50-99 starting JupyterLab and waiting for it, 100 ready (JupyterHub's own last event).
START_STEPS = (
    StartStep("check", "Check the request against the site's rules", 0),
    StartStep("prepare", "Prepare the instance and your home", 20),
    StartStep("start", "Start JupyterLab", 50),
    StartStep("ready", "Ready: open JupyterLab", 100),
)


def start_step(progress: float) -> StartStep:
    """The step a progress percentage belongs to."""
    return [step for step in START_STEPS if progress >= step.starts_at][-1]


def instance_name(experiment_code: str, taken: Iterable[str]) -> str:
    """A server name for a new instance of an experiment, unique among ``taken``: ``loki-2026-042``, ``-2``, ..."""
    base = re.sub(r"[^a-z0-9]+", "-", experiment_code.lower()).strip("-") or "instance"
    if not base[0].isalpha():
        base = f"x-{base}"
    taken = set(taken)
    number = 1
    while True:
        suffix = "" if number == 1 else f"-{number}"
        name = base[: NAME_MAX - len(suffix)].rstrip("-") + suffix
        if name not in taken:
            return name
        number += 1


def session_summary(spawner: Any) -> dict[str, Any] | None:
    """The session an active spawner runs or starts (``None`` before its plan is made, or for foreign spawners)."""
    summary = getattr(spawner, "session_summary", None)
    if summary:
        return summary
    try:
        return (spawner.get_state() or {}).get(STATE_KEY)
    except Exception:  # noqa: BLE001  (a foreign spawner's state is not ours to judge)
        return None


def last_session(orm_spawner: Any) -> dict[str, Any] | None:
    """The summary of the last session a server entry started, if it ever started one."""
    return (orm_spawner.state or {}).get(LAST_STATE_KEY)


def taken_names(user: Any) -> set[str]:
    """Server names of a person's instances, running or stopped; entries that never started may be reused."""
    active = {name for name, spawner in user.spawners.items() if spawner.active}
    return active | {name for name, orm_spawner in user.orm_spawners.items() if last_session(orm_spawner)}


def usage_of(spawner: Any, catalog: Catalog) -> RunningInstance:
    """What an active instance counts against its owner's quota."""
    summary = session_summary(spawner)
    if summary:
        flavour = summary.get("flavour") or {}
        return RunningInstance(
            spawner.name, (summary.get("experiment") or {}).get("code", ""),
            int(flavour.get("cpus", 0)), float(flavour.get("memory_gb", 0)), int(flavour.get("gpus", 0)),
        )
    # starting, its plan not made yet: count it with the flavour it asked for, if any
    options = spawner.user_options or {}
    flavour = catalog.flavour(options["flavour"]) if isinstance(options.get("flavour"), str) else None
    return RunningInstance.of_flavour(spawner.name, str(options.get("experiment") or ""), flavour)


def running_instances(user: Any, catalog: Catalog, *, besides: str | None = None) -> list[RunningInstance]:
    """A person's running and starting instances (all but the one named ``besides``), in name order."""
    return [
        usage_of(spawner, catalog)
        for name, spawner in sorted(user.spawners.items())
        if spawner.active and name != besides
    ]


def describe(summary: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """What a dashboard card shows of a session summary: names with their titles from the catalog."""
    flavour = summary.get("flavour") or {}
    catalog_flavour = catalog.flavour(flavour.get("name", ""))
    image = catalog.image(summary.get("image", ""))
    experiment = summary.get("experiment") or {}
    rule = catalog.instrument(summary.get("instrument") or experiment.get("instrument", ""))
    return {
        "experiment": {"code": experiment.get("code"), "title": experiment.get("title"),
                       "starts_at": experiment.get("starts_at"), "ends_at": experiment.get("ends_at")},
        "instrument": {"name": summary.get("instrument"), "technique": rule.technique if rule else ""},
        "flavour": {**flavour, "label": catalog_flavour.label if catalog_flavour else flavour.get("name")},
        "image": {"name": summary.get("image"),
                  "title": image.title if image else summary.get("image_title") or summary.get("image")},
        "lifetime_hours": summary.get("lifetime_hours"),
        "starts_at": summary.get("starts_at"),
        "expires_at": summary.get("expires_at"),
    }
