"""visa-hub's own Prometheus metrics, served with JupyterHub's on ``{hub}/hub/metrics``.

Everything goes into prometheus_client's default registry, the one JupyterHub's metrics handler serves (a
scrape needs a token with the ``read:metrics`` scope unless ``JupyterHub.authenticate_prometheus`` is off).
Backends and clients call the small functions below — one line where the event happens — and never build
metric objects themselves; ``visa_hub`` imports nothing of the spawners, so every hook is duck-typed:

- spawns: :func:`timed_spawn` decorates a backend's ``start`` (duration by backend, instrument and flavour;
  failures by reason); :func:`spawn_failed` counts refusals that happen before ``start`` (the site's rules,
  the User Office before a spawn);
- cloud API: :func:`observe_cloud_call` wraps one openstacksdk call (calls, errors by kind, latency);
- Slurm: :func:`slurm_queue_wait` when a job leaves the queue;
- User Office: :func:`useroffice_lookup` (result of each lookup: fresh, cached, stale cache, unknown,
  unavailable) and :func:`useroffice_reachable` (after every request; counts outages);
- sharing: :func:`set_desktop_viewers` (what an instance reports of the people on its desktop, by role; the
  hub's handler in :mod:`visa_hub.ops.viewers` calls it);
- computed at every scrape from the hub's own memory and database (:class:`HubStateCollector`): instances by
  state, backend, experiment and instrument; active shares by kind; desktop viewers by role, summed over the
  instances the hub has running now (a report of an instance that stopped or crashed no longer counts).

The series and how to read them: ``docs/metrics.md``; a Grafana dashboard: ``docs/grafana-dashboard.json``.
"""

from __future__ import annotations

import contextlib
import functools
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .sharing.roles import OWNER, SHARE_ROLES

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)

#: Label value when something is not known (e.g. the flavour of a spawn refused before it was planned).
UNKNOWN = "unknown"

SPAWN_DURATION = Histogram(
    "visa_spawn_duration_seconds",
    "Seconds from the start of a backend's spawn until its instance answered (successful spawns only)",
    ["backend", "instrument", "flavour"],
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, float("inf")),
)
SPAWN_FAILURES = Counter(
    "visa_spawn_failures_total",
    "Spawns that did not give an instance, by backend and reason (policy, quota, useroffice, cloud_fault, "
    "cloud_unavailable, slurm, timeout, cancelled, other)",
    ["backend", "reason"],
)
CLOUD_CALLS = Counter(
    "visa_cloud_api_calls_total", "Cloud API calls made by the hub (each try of a retried call counts)",
    ["operation"],
)
CLOUD_ERRORS = Counter(
    "visa_cloud_api_errors_total",
    "Cloud API calls that failed, by operation and kind (server_error, timeout, connection, quota, client_error)",
    ["operation", "kind"],
)
CLOUD_LATENCY = Histogram(
    "visa_cloud_api_duration_seconds", "Seconds one cloud API call took (failed ones included)", ["operation"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, float("inf")),
)
SLURM_QUEUE_WAIT = Histogram(
    "visa_slurm_queue_wait_seconds", "Seconds an instance's Slurm job waited in the queue before it ran",
    ["partition"], buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, float("inf")),
)
USEROFFICE_LOOKUPS = Counter(
    "visa_useroffice_lookups_total",
    "User Office lookups of a person, by backend and result (fresh, cached, stale_cache, unknown, unavailable)",
    ["backend", "result"],
)
USEROFFICE_CACHE_HITS = Counter(
    "visa_useroffice_cache_hits_total",
    "Lookups answered from the User Office cache (fresh answers, and old ones during an outage)", ["backend"],
)
USEROFFICE_UP = Gauge(
    "visa_useroffice_up", "1 when the User Office answered the last request, 0 when it did not", ["backend"],
)
USEROFFICE_OUTAGES = Counter(
    "visa_useroffice_outages_total", "Times the User Office stopped answering (a change from up to down)",
    ["backend"],
)
USEROFFICE_LATENCY = Histogram(
    "visa_useroffice_request_duration_seconds", "Seconds one User Office request took", ["backend"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, float("inf")),
)


# ------------------------------------------------------------------------------------------- spawns


def backend_of(spawner: Any) -> str:
    """A spawner's backend label: its ``metrics_backend`` attribute, else its class name without 'Spawner'."""
    name = getattr(spawner, "metrics_backend", None) or type(spawner).__name__.removesuffix("Spawner")
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()) or UNKNOWN


def _plan_labels(spawner: Any) -> tuple[str, str]:
    summary = getattr(spawner, "session_summary", None) or {}
    flavour = (summary.get("flavour") or {}).get("name") if isinstance(summary.get("flavour"), dict) else None
    return str(summary.get("instrument") or UNKNOWN), str(flavour or UNKNOWN)


def failure_reason(exc: BaseException) -> str:
    """A bounded label for why a spawn failed: the exception's ``metrics_reason``, else its kind."""
    reason = getattr(exc, "metrics_reason", None)
    if reason:
        return str(reason)
    status = getattr(exc, "status_code", None)
    if status == 400:
        return "policy"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if type(exc).__name__ == "CancelledError":
        return "cancelled"
    return "other"


def spawn_failed(spawner: Any, reason: str, exc: BaseException | None = None) -> None:
    """Count a spawn that ended without an instance; an exception counted once is never counted again."""
    if exc is not None:
        if getattr(exc, "_visa_counted", False):
            return
        with contextlib.suppress(AttributeError):  # exceptions without a __dict__
            exc._visa_counted = True  # type: ignore[attr-defined]
    SPAWN_FAILURES.labels(backend_of(spawner), reason).inc()


def counted(exc: E, spawner: Any, reason: str) -> E:
    """``raise counted(error, spawner, reason)``: count a refused spawn where the refusal is raised."""
    spawn_failed(spawner, reason, exc)
    return exc


def timed_spawn(start: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Decorator for a backend's ``async def start(self)``: its duration on success, its reason on failure."""

    @functools.wraps(start)
    async def timed(self: Any, *args: Any, **kwargs: Any) -> T:
        began = time.monotonic()
        try:
            result = await start(self, *args, **kwargs)
        except BaseException as exc:
            spawn_failed(self, failure_reason(exc), exc)
            raise
        instrument, flavour = _plan_labels(self)
        SPAWN_DURATION.labels(backend_of(self), instrument, flavour).observe(time.monotonic() - began)
        return result

    return timed


# ------------------------------------------------------------------------------------------- cloud


def _cloud_error_kind(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    text = f"{type(exc).__name__} {getattr(exc, 'details', '') or ''}"
    if isinstance(status, int):
        if status >= 500:
            return "server_error"
        if status in (403, 409, 413) and re.search(r"[Qq]uota|LimitExceeded", text) or status == 413:
            return "quota"
        return "client_error"
    if "Timeout" in type(exc).__name__ or isinstance(exc, TimeoutError):
        return "timeout"
    return "connection"


async def observe_cloud_call(operation: str, call: Awaitable[T]) -> T:
    """Await one cloud API call (``operation``: a short fixed name such as ``create_server``) and count it."""
    operation = operation.strip("_") or UNKNOWN
    CLOUD_CALLS.labels(operation).inc()
    began = time.monotonic()
    try:
        return await call
    except Exception as exc:
        CLOUD_ERRORS.labels(operation, _cloud_error_kind(exc)).inc()
        raise
    finally:
        CLOUD_LATENCY.labels(operation).observe(time.monotonic() - began)


# ------------------------------------------------------------------------------------------- Slurm


def slurm_queue_wait(seconds: float, partition: str = "") -> None:
    """A job of an instance started running after ``seconds`` in the queue."""
    SLURM_QUEUE_WAIT.labels(partition or "default").observe(max(0.0, seconds))


_jobs_seen_running: dict[str, None] = {}  # job ids whose queue wait is recorded (bounded, oldest dropped)


def slurm_job_running(spawner: Any) -> None:
    """A Slurm spawner saw its job running: record its queue wait once per job (``job_id``,
    ``_submitted_at`` on the monotonic clock, ``req_partition``; duck-typed)."""
    job_id = getattr(spawner, "job_id", None)
    submitted = getattr(spawner, "_submitted_at", None)
    if not job_id or job_id in _jobs_seen_running or not isinstance(submitted, float) or submitted < 0:
        return
    _jobs_seen_running[job_id] = None
    while len(_jobs_seen_running) > 10_000:
        del _jobs_seen_running[next(iter(_jobs_seen_running))]
    slurm_queue_wait(time.monotonic() - submitted, getattr(spawner, "req_partition", "") or "")


# ------------------------------------------------------------------------------------------- User Office


def useroffice_lookup(backend: str, result: str) -> None:
    """One lookup of a person: ``fresh`` (asked), ``cached``, ``stale_cache`` (outage), ``unknown``, ``unavailable``."""
    USEROFFICE_LOOKUPS.labels(backend, result).inc()
    if result in ("cached", "stale_cache"):
        USEROFFICE_CACHE_HITS.labels(backend).inc()


def useroffice_reachable(backend: str, reachable: bool, seconds: float | None = None) -> None:
    """After each User Office request: whether it answered (a change to 'no' counts as an outage)."""
    gauge = USEROFFICE_UP.labels(backend)
    if not reachable and gauge._value.get() != 0:  # noqa: SLF001  (first failure after success, or at all)
        USEROFFICE_OUTAGES.labels(backend).inc()
    gauge.set(1 if reachable else 0)
    if seconds is not None:
        USEROFFICE_LATENCY.labels(backend).observe(seconds)


def useroffice_status(backend: str) -> bool | None:
    """Whether the User Office answered its last request (``None``: never asked in this process)."""
    for metric in USEROFFICE_UP.collect():
        for sample in metric.samples:
            if sample.labels.get("backend") == backend:
                return bool(sample.value)
    return None


# ------------------------------------------------------------------------------------------- sharing


#: Roles of ``visa_desktop_viewers``; each is exported at every scrape, 0 included.
VIEWER_ROLES = (OWNER, *SHARE_ROLES)
#: The most people one report may count in one role (anything above is a broken or hostile report).
MAX_VIEWERS = 10_000


@dataclass(frozen=True)
class DesktopViewersReport:
    """What one instance last said about its desktop: people by role, and which run of the instance said it."""

    viewers: Mapping[str, int]
    run: Any  # the spawner's start time when the report came (JupyterHub sets it anew at every spawn)


_desktop_viewers: dict[tuple[str, str], DesktopViewersReport] = {}  # (owner, server name) -> last report


def set_desktop_viewers(owner: str, server_name: str, viewers: Mapping[str, int], run: Any = None) -> None:
    """The people on the desktop of ``owner``'s server ``server_name`` now, by role (owner, collaborator, support,
    guest); replaces that instance's last report. ``run`` names this run of the instance (its spawner's start
    time): a scrape counts the report only while the hub has that same run active.

    Raises ``ValueError`` (with a message for the sender) for an unknown role or a count that is not a whole
    number from 0 to :data:`MAX_VIEWERS`; nothing is changed then.
    """
    counts: dict[str, int] = {}
    for role, count in viewers.items():
        if role not in VIEWER_ROLES:
            raise ValueError(f"unknown role {role!r}: the roles are {', '.join(VIEWER_ROLES)}")
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_VIEWERS:
            raise ValueError(f"the number of {role} viewers must be a whole number from 0 to {MAX_VIEWERS}, "
                             f"not {count!r}")
        if count:
            counts[role] = count
    if counts:
        _desktop_viewers[(owner, server_name)] = DesktopViewersReport(counts, run)
    else:
        _desktop_viewers.pop((owner, server_name), None)


def desktop_viewers(instances: Mapping[tuple[str, str], tuple[Any, bool]]) -> dict[str, int]:
    """People on desktops by role, summed over the reports of the running instances.

    ``instances``: every instance the hub has active, ``(owner, server name) -> (run, running)``. A report counts
    while its run is the instance's current one and the instance runs; a report of an instance that is no longer
    active (stopped, crashed, removed) or that started again since is forgotten.
    """
    totals = dict.fromkeys(VIEWER_ROLES, 0)
    for key, report in list(_desktop_viewers.items()):
        if key not in instances or instances[key][0] != report.run:
            _desktop_viewers.pop(key, None)
            continue
        if instances[key][1]:  # running (not starting or stopping)
            for role, count in report.viewers.items():
                totals[role] += count
    return totals


# ------------------------------------------------------------------------------------------- hub state


def instance_state(spawner: Any) -> str | None:
    """``running``, ``starting``, ``stopping`` or ``None`` (not active) for a JupyterHub spawner."""
    pending = getattr(spawner, "pending", None)
    if pending == "spawn":
        return "starting"
    if pending == "stop":
        return "stopping"
    if getattr(spawner, "ready", False):
        return "running"
    return None


def instance_labels(spawner: Any) -> tuple[str, str]:
    """(experiment, instrument) of an instance, from its session summary or the options it was asked with."""
    summary = getattr(spawner, "session_summary", None) or {}
    experiment = (summary.get("experiment") or {}).get("code") or (spawner.user_options or {}).get("experiment")
    return str(experiment or UNKNOWN), str(summary.get("instrument") or UNKNOWN)


class HubStateCollector(Collector):
    """Gauges computed from the running hub at each scrape: instances, shares and desktop viewers (nothing to
    keep in sync, nothing that outlives an instance)."""

    def __init__(self, app: Callable[[], Any] | None = None):
        self._app = app or _running_hub

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The families without values (what the registry asks at registration, before the hub runs)."""
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        instances = GaugeMetricFamily(
            "visa_instances", "Instances the hub knows, by state (running, starting, stopping), backend, experiment "
            "and instrument", labels=["state", "backend", "experiment", "instrument"])
        shares = GaugeMetricFamily("visa_active_shares", "Instances shared with people or groups (JupyterHub "
                                   "shares not expired), by kind (user, group)", labels=["kind"])
        viewers = GaugeMetricFamily("visa_desktop_viewers", "People connected to the desktops of running instances, "
                                    "by their role on the instance (as the instances report them)", labels=["role"])
        return instances, shares, viewers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        instances, shares, viewers = self._families()
        app = self._app()
        if app is not None:
            counts: dict[tuple[str, str, str, str], int] = {}
            active: dict[tuple[str, str], tuple[Any, bool]] = {}  # (owner, server) -> (run, running)
            for user in list(app.users.values()):
                for spawner in list(user.spawners.values()):
                    state = instance_state(spawner)
                    if state is not None:
                        key = (state, backend_of(spawner), *instance_labels(spawner))
                        counts[key] = counts.get(key, 0) + 1
                        run = getattr(getattr(spawner, "orm_spawner", None), "started", None)
                        active[(user.name, spawner.name)] = (run, state == "running")
            for key, count in sorted(counts.items()):
                instances.add_metric(list(key), count)
            for kind, count in _share_counts(app.db).items():
                shares.add_metric([kind], count)
            for role, count in desktop_viewers(active).items():
                viewers.add_metric([role], count)
        yield instances
        yield shares
        yield viewers


def _share_counts(db: Any) -> dict[str, int]:
    try:
        from jupyterhub import orm
    except ImportError:  # pragma: no cover
        return {}
    share = getattr(orm, "Share", None)
    if share is None:  # JupyterHub < 5: no sharing
        return {}
    counts = {"user": 0, "group": 0}
    for row in db.query(share).all():
        if not row.expired:
            counts["user" if row.user_id else "group"] += 1
    return counts


def _running_hub() -> Any:
    """The JupyterHub application of this process, once it is initialised (``None`` elsewhere)."""
    try:
        from jupyterhub.app import JupyterHub
    except ImportError:  # pragma: no cover
        return None
    if not JupyterHub.initialized():
        return None
    app = JupyterHub.instance()
    # only once the hub has made its users (the trait's default needs the running hub)
    ready = getattr(app, "_trait_values", {}).get("users") is not None and getattr(app, "db", None) is not None
    return app if ready else None


_collector: HubStateCollector | None = None


def configure_metrics(c: Any) -> None:
    """Register the hub-state gauges (once per process); the event metrics exist from import on."""
    global _collector
    if _collector is None:
        _collector = HubStateCollector()
        REGISTRY.register(_collector)
