"""A session's Dask profiles → dask configuration in dask's own format. Pure: no I/O, no environment.

The hub puts the session's Dask settings into the instance's environment as ``VISA_DASK`` (see
:func:`visa_hub.policy.session_environment`): the Slurm account (the experiment's code), the allowed
profiles and the default one. :func:`dask_config` turns that into the nested mapping dask reads from its YAML
files, so that plain ``dask_jobqueue.SLURMCluster()`` and dask-labextension's "New cluster" button both give a
cluster with the session's default profile, locked to the session's owner:

- ``jobqueue.slurm``: the default profile as dask-jobqueue keys (cores, memory, processes, queue, account, ...),
  the walltime cut at the session's expiry (:mod:`visa_hub.dask.walltime`), the scheduler's dashboard on the
  loopback interface and the workers' on none;
- ``distributed.comm``: TLS required, with the session's own CA and certificate (:mod:`visa_hub.dask.credentials`)
  for scheduler, workers and clients;
- ``distributed.{scheduler,worker}.preload``: :mod:`visa_hub.dask.dashboard`, which moves every scheduler's
  dashboard from TCP to a Unix socket only the owner can open, and closes the workers' HTTP endpoints;
- ``distributed.dashboard.link``: the dashboard through the owner's Jupyter server
  (``/user/<name>/visa-dask/<port>/status``, which only she and those she shares her server with may open);
- ``labextension.factory``: :class:`visa_hub.dask.clusters.SessionCluster` (a ``SLURMCluster`` that keeps to the
  session's profiles and job limit);
- ``visa-hub.dask``: every allowed profile as dask-jobqueue keyword arguments, for
  :func:`visa_hub.dask.clusters.cluster`, the session's expiry and the locked scheduler options.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import shlex
from dataclasses import dataclass
from typing import Any

from visa_hub.catalog import DaskProfile

from .dashboard import MODULE as DASHBOARD_PRELOAD
from .walltime import SessionEndsSoon, capped_walltime, deadline_directives

ENV_VARIABLE = "VISA_DASK"
CONFIG_SECTION = "visa-hub.dask"
FACTORY = {"module": "visa_hub.dask.clusters", "class": "SessionCluster", "args": [], "kwargs": {}}
# The scheduler's dashboard starts on the loopback interface only, and the preload moves it to a Unix socket.
DASHBOARD_ADDRESS = "127.0.0.1:0"
# Workers serve no dashboard, and their HTTP endpoint (health, metrics) only on the node's loopback interface
# until the preload closes it.
WORKER_EXTRA_ARGS = ["--no-dashboard", "--dashboard-address", DASHBOARD_ADDRESS]
# dask formats the link with the server's environment: JUPYTERHUB_SERVICE_PREFIX is /user/<name>/ (or
# /user/<name>/<server>/ for a named server); visa-dask/<port>/ is served by visa_hub.singleuser.dask_dashboard.
DASHBOARD_LINK = "{JUPYTERHUB_SERVICE_PREFIX}visa-dask/{port}/status"


@dataclass(frozen=True)
class SessionLock:
    """What keeps a session's Dask clusters to its owner: its TLS files and its expiry."""

    ca_file: str
    cert_file: str
    key_file: str
    expires_at: dt.datetime | None  # worker jobs end by then; None: the session has no end

    def tls_config(self) -> dict[str, Any]:
        """``distributed.comm``: TLS required, this session's CA and certificate for every role."""
        pair = {"cert": self.cert_file, "key": self.key_file}
        return {"require-encryption": True,
                "tls": {"ca-file": self.ca_file, "scheduler": dict(pair), "worker": dict(pair), "client": dict(pair)}}

    @staticmethod
    def scheduler_options() -> dict[str, Any]:
        """Scheduler keyword arguments: the dashboard on loopback (until the preload moves it)."""
        return {"dashboard_address": DASHBOARD_ADDRESS}


class DaskSessionError(ValueError):
    """The instance's environment holds no usable Dask settings (a spawner problem, not the user's)."""


@dataclass(frozen=True)
class DaskSession:
    """What one instance may do on the Slurm cluster: its account and allowed profiles."""

    experiment: str
    account: str
    image: str
    profiles: dict[str, DaskProfile]
    default: str | None

    @classmethod
    def from_json(cls, text: str) -> DaskSession:
        """Parse ``VISA_DASK`` as the hub writes it."""
        try:
            data = json.loads(text)
            profiles = {p["name"]: DaskProfile.from_dict(p) for p in data["profiles"]}
            session = cls(data["experiment"], data["account"], data.get("image", ""), profiles, data.get("default"))
        except (ValueError, KeyError, TypeError) as exc:
            raise DaskSessionError(f"{ENV_VARIABLE} is not a visa-hub Dask session ({exc})") from exc
        if session.default is not None and session.default not in profiles:
            raise DaskSessionError(f"{ENV_VARIABLE}: default profile {session.default!r} is not among the profiles")
        return session


def memory_spec(profile: DaskProfile) -> str:
    """The profile's memory as dask writes it; GiB, so that Slurm's ``--mem`` is a whole number of MiB."""
    return f"{profile.memory_gb:g}GiB"


def cluster_kwargs(
    profile: DaskProfile, session: DaskSession, *, python: str, log_directory: str | None = None
) -> dict[str, Any]:
    """One profile as ``SLURMCluster`` keyword arguments (the same names as the ``jobqueue.slurm`` keys)."""
    missing = shlex.quote(
        f"visa-hub: this node has no {python} (the Python of image {session.image}): ask support to make the "
        f"image available on partition {profile.partition}"
    )
    # the workers must run the notebook's environment (same image, same app versions)
    prologue = [f"test -x {shlex.quote(python)} || {{ echo {missing} >&2; exit 1; }}", *profile.worker_prologue]
    kwargs: dict[str, Any] = {
        "cores": profile.cores,
        "memory": memory_spec(profile),
        "processes": profile.processes,
        "queue": profile.partition,
        "account": session.account,
        "walltime": profile.walltime,
        "python": python,
        "job_extra_directives": list(profile.job_directives),
        "job_script_prologue": prologue,
        "worker_extra_args": list(WORKER_EXTRA_ARGS),
    }
    if log_directory:
        kwargs["log_directory"] = log_directory
    return kwargs


def _as_config_keys(kwargs: dict[str, Any]) -> dict[str, Any]:
    """SLURMCluster keyword arguments → dask config keys (dask-jobqueue spells them with dashes)."""
    return {key.replace("_", "-"): value for key, value in kwargs.items()}


def dask_config(
    session: DaskSession, lock: SessionLock, now: dt.datetime, *, python: str, log_directory: str | None = None
) -> dict[str, Any]:
    """The instance's dask configuration, as the nested mapping dask loads from YAML.

    ``now`` is when it is written: the default profile's walltime (``jobqueue.slurm``) is cut to the time left
    then; :class:`~visa_hub.dask.clusters.SessionCluster` cuts again whenever it submits.
    """
    profiles = {
        name: {**cluster_kwargs(p, session, python=python, log_directory=log_directory), "max_jobs": p.max_jobs}
        for name, p in session.profiles.items()
    }
    slurm: dict[str, Any] = {
        "scheduler-options": lock.scheduler_options(),
        "worker-extra-args": list(WORKER_EXTRA_ARGS),
    }
    if session.default is not None:
        default = copy.deepcopy(profiles[session.default])  # no YAML anchors shared with visa-hub.dask
        default.pop("max_jobs")
        slurm = {"name": f"dask-{session.experiment}", **_as_config_keys(default), **slurm}
        if lock.expires_at is not None:
            walltime = slurm["walltime"] = _capped_or_kept(slurm["walltime"], lock.expires_at, now)
            slurm["job-extra-directives"] = [*slurm["job-extra-directives"],
                                             *deadline_directives(lock.expires_at, walltime)]
    config: dict[str, Any] = {
        "distributed": {
            "comm": lock.tls_config(),
            "dashboard": {"link": DASHBOARD_LINK},
            "scheduler": {"preload": [DASHBOARD_PRELOAD]},
            "worker": {"preload": [DASHBOARD_PRELOAD]},
        },
        "jobqueue": {"slurm": slurm},
        "visa-hub": {"dask": {
            "experiment": session.experiment,
            "default": session.default,
            "profiles": profiles,
            "expires-at": lock.expires_at.isoformat() if lock.expires_at else None,
            "scheduler-options": lock.scheduler_options(),
        }},
    }
    if session.default is not None:
        config["labextension"] = {"factory": FACTORY}
    return config


def _capped_or_kept(walltime: str, expires_at: dt.datetime, now: dt.datetime) -> str:
    try:
        return capped_walltime(walltime, expires_at, now)[0]
    except SessionEndsSoon:  # SessionCluster says so in words; Slurm cancels plain SLURMCluster jobs at the deadline
        return walltime
