"""Every instance of the hub as one row of the operator console (pure: reads the hub's objects, no I/O).

A row is built from JupyterHub's user and spawner objects, duck-typed: a visa-hub spawner has
``session_summary`` (experiment, instrument, flavour, image, expiry) and keeps its backend resource in spawner
state (``server_id`` on OpenStack, ``job_id`` on Slurm, ``pid`` for local processes).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from .. import metrics

#: Row fields the console and its API filter on (``?experiment=LOKI-2026-042&state=running``).
FILTERS = ("experiment", "instrument", "backend", "state", "owner")
#: Spawner state keys naming an instance's resource in its backend, in order of preference.
RESOURCE_KEYS = ("server_id", "job_id", "pid")


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    """JupyterHub's database times are naive UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _iso(value: dt.datetime | None) -> str | None:
    value = _utc(value)
    return value.isoformat() if value else None


def resource_of(spawner: Any) -> dict[str, str]:
    """The backend's own name of the instance: ``{"kind": "server_id", "id": "..."}`` (or ``{}``)."""
    try:
        state = spawner.get_state() or {}
    except Exception:  # noqa: BLE001  (a foreign spawner's state is not ours to judge)
        return {}
    for key in RESOURCE_KEYS:
        if state.get(key):
            return {"kind": key, "id": str(state[key])}
    return {}


def instance_row(user: Any, spawner: Any, now: dt.datetime, hub_prefix: str, links: Mapping[str, str],
                 backend_links: Mapping[str, str]) -> dict[str, Any] | None:
    """The console's row for one active spawner (``None`` when it is not running, starting or stopping).

    ``links``: URL templates for ``user`` and ``experiment``; ``backend_links``: one per backend label (e.g.
    ``openstack``) for the instance's resource. Placeholders: ``{hub}`` (the hub's prefix, e.g. ``/hub``),
    ``{owner}``, ``{server_name}``, ``{experiment}``, ``{proposal_pk}``, ``{backend}``, ``{resource_id}``.
    """
    state = metrics.instance_state(spawner)
    if state is None:
        return None
    summary = getattr(spawner, "session_summary", None) or {}
    options = spawner.user_options or {}
    experiment = summary.get("experiment") or {}
    flavour = summary.get("flavour") or {}
    orm_spawner = getattr(spawner, "orm_spawner", None)
    started = _utc(getattr(orm_spawner, "started", None))
    backend = metrics.backend_of(spawner)
    resource = resource_of(spawner)
    values = {
        "hub": hub_prefix.rstrip("/"), "owner": user.name, "server_name": spawner.name, "backend": backend,
        "experiment": experiment.get("code") or options.get("experiment") or "",
        "proposal_pk": experiment.get("proposal_pk") or "", "resource_id": resource.get("id", ""),
    }
    templates = {kind: links.get(kind, "") for kind in ("user", "experiment")}
    templates["backend"] = backend_links.get(backend, "") if resource else ""
    return {
        "owner": user.name,
        "server_name": spawner.name,
        "state": state,
        "backend": backend,
        "experiment": values["experiment"],
        "experiment_title": experiment.get("title") or "",
        "instrument": summary.get("instrument") or "",
        "flavour": flavour.get("name") or options.get("flavour") or "",
        "image": summary.get("image_title") or summary.get("image") or options.get("image") or "",
        "started": _iso(started),
        "age_seconds": round((now - started).total_seconds()) if started else None,
        "last_activity": _iso(getattr(orm_spawner, "last_activity", None)),
        "expires_at": summary.get("expires_at"),
        "resource": resource,
        "links": {kind: template.format(**values) for kind, template in templates.items() if template},
    }


def instance_rows(users: Iterable[Any], now: dt.datetime, hub_prefix: str, links: Mapping[str, str],
                  backend_links: Mapping[str, str]) -> list[dict[str, Any]]:
    """Rows for every active instance of ``users``, oldest first (see :func:`instance_row`)."""
    rows = [row for user in users for spawner in list(user.spawners.values())
            if (row := instance_row(user, spawner, now, hub_prefix, links, backend_links)) is not None]
    rows.sort(key=lambda r: (r["started"] or "", r["owner"], r["server_name"]))
    return rows


def choices(rows: list[dict[str, Any]]) -> dict[str, list[str]]:
    """The values each filter can take among ``rows`` (for the console's menus)."""
    return {name: sorted({str(r[name]) for r in rows if r[name]}) for name in FILTERS}


def matching(rows: list[dict[str, Any]], wanted: Mapping[str, str]) -> list[dict[str, Any]]:
    """The rows whose fields equal every non-empty filter in ``wanted``."""
    wanted = {k: v for k, v in wanted.items() if k in FILTERS and v}
    return [r for r in rows if all(str(r[k]) == v for k, v in wanted.items())]
