"""Dask clusters on Slurm with the session's profiles: a thin layer over dask-jobqueue's ``SLURMCluster``.

In a notebook::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster()                      # the session's default profile (from the dask config)

    from visa_hub.dask import cluster
    cluster = cluster("bigmem")                  # another profile this experiment may use
    cluster.scale(4)

:class:`SessionCluster` is also dask-labextension's factory. It only chooses keyword arguments from the
instance's dask configuration (``visa-hub.dask``, written at instance start by :mod:`visa_hub.dask.instance`)
and refuses more worker jobs than the profile allows; job scripts, submission and scaling are dask-jobqueue's.
Its clusters are locked to the session's owner: TLS with the session's own credentials (distributed's
``Security`` from the configuration; the job scripts carry the files' paths, not the keys), the dashboard only
through her Jupyter server (:mod:`visa_hub.dask.dashboard`), and worker walltimes cut at the session's expiry
(:mod:`visa_hub.dask.walltime`). The expiry is read from the instance's file whenever a cluster is made or scales
up, not from the configuration dask loaded when the kernel started: an extension of the session's lifetime
(:func:`visa_hub.dask.instance.move_expiry`) reaches clusters in kernels that were already running.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import subprocess
from typing import Any

import dask.config
from dask.utils import parse_bytes
from dask_jobqueue import SLURMCluster
from distributed.security import Security

from .config import CONFIG_SECTION
from .instance import FILE_NAME, written_expiry
from .per_instance import config_dir
from .reasons import explain_reason
from .walltime import SessionEndsSoon, capped_walltime, deadline_directives, parse_expiry

__all__ = ["ProfileError", "SessionCluster", "cluster", "profiles"]

log = logging.getLogger("visa_hub.dask")

# Keys a profile decides; passing them as arguments would bypass the site's rules.
PROFILE_KEYS = ("cores", "memory", "processes", "queue", "account", "walltime", "job_extra_directives")
# What locks the cluster to the session's owner: TLS and where the dashboard listens.
LOCKED_KEYS = ("security", "protocol")
LOCKED_SCHEDULER_OPTIONS = ("security", "protocol", "dashboard_address", "preload")


class ProfileError(ValueError):
    """A Dask profile this session may not use, or a request beyond the profile's limits."""


def _settings() -> dict[str, Any]:
    settings = dask.config.get(CONFIG_SECTION, default=None)
    if not settings or not settings.get("profiles"):
        raise ProfileError(
            "This instance has no Dask profiles: it was not started by visa-hub, or its experiment's instrument "
            "has no Dask profiles in the site catalog. Ask support to add Dask profiles for your instrument."
        )
    return settings


def profiles() -> dict[str, dict[str, Any]]:
    """The Dask profiles this session may use, by name (resources as ``SLURMCluster`` arguments)."""
    return {name: dict(p) for name, p in _settings()["profiles"].items()}


def _profile(name: str | None) -> tuple[str, dict[str, Any]]:
    settings = _settings()
    name = name or settings.get("default")
    allowed = settings["profiles"]
    if name is None:
        raise ProfileError(f"Choose a Dask profile: {', '.join(allowed)}.")
    if name not in allowed:
        raise ProfileError(
            f"Dask profile {name!r} is not available for experiment {settings.get('experiment')}. "
            f"Choose one of: {', '.join(allowed)}."
        )
    return name, dict(allowed[name])


def _session_security() -> Security:
    """distributed's ``Security`` from the session's configuration (``distributed.comm``), checked."""
    security = Security()
    files = [security.tls_ca_file, security.tls_scheduler_cert, security.tls_scheduler_key,
             security.tls_worker_cert, security.tls_worker_key, security.tls_client_cert, security.tls_client_key]
    if not security.require_encryption or not all(files):
        raise ProfileError(
            "This instance's Dask configuration has no TLS credentials, so its clusters would be open to anyone: "
            "restart the instance (they are made at every start), and contact support if this persists."
        )
    unreadable = [f for f in files if not os.access(f, os.R_OK)]
    if unreadable:
        raise ProfileError(
            f"This session's Dask credentials are missing or unreadable ({unreadable[0]}): restart the instance "
            "to make new ones."
        )
    return security


def _expiry(settings: dict[str, Any]) -> dt.datetime | None:
    """The session's expiry now: as the instance's ``visa-hub.yaml`` says (the server extension rewrites it when
    the lifetime changes), else as the dask configuration this process loaded at its start says."""
    live = written_expiry(config_dir(os.environ) / FILE_NAME)
    if live is not None:
        return live
    value = settings.get("expires-at") or settings.get("expires_at")
    return parse_expiry(value) if value else None


class SessionCluster(SLURMCluster):
    """A ``SLURMCluster`` with one of the session's Dask profiles (default: the session's default profile).

    Only the session's owner can use it: TLS with the session's credentials, the dashboard only through her
    Jupyter server, worker jobs that end by the session's expiry.
    """

    def __init__(self, *args: Any, profile: str | None = None, **kwargs: Any):
        name, settings = _profile(profile)
        overridden = sorted(set(kwargs) & set(PROFILE_KEYS))
        if overridden:
            raise ProfileError(
                f"{', '.join(overridden)} {'is' if len(overridden) == 1 else 'are'} set by Dask profile {name!r}; "
                f"choose another profile instead (available: {', '.join(profiles())})."
            )
        scheduler_options = dict(kwargs.pop("scheduler_options", None) or {})
        locked = sorted(set(kwargs) & set(LOCKED_KEYS) | set(scheduler_options) & set(LOCKED_SCHEDULER_OPTIONS))
        if locked:
            raise ProfileError(
                f"{', '.join(locked)} {'is' if len(locked) == 1 else 'are'} set by this session: its Dask clusters "
                "use TLS with the session's own credentials, and their dashboards are reached only through your "
                "Jupyter server."
            )
        self.profile_name = name
        self.max_jobs = int(settings.pop("max_jobs"))
        self.expires_at = _expiry(_settings())
        self.profile_walltime = settings["walltime"]
        self.profile_directives = list(settings["job_extra_directives"])
        settings["walltime"] = self._walltime_now()
        settings["job_extra_directives"] = self._directives_now(settings["walltime"])
        scheduler_options.update(_settings().get("scheduler-options") or {})
        super().__init__(*args, security=_session_security(), scheduler_options=scheduler_options,
                         **{**settings, **kwargs})

    def _walltime_now(self) -> str:
        """The profile's walltime, cut to the time the session has left (a log line says so)."""
        if self.expires_at is None:
            return self.profile_walltime
        try:
            walltime, cut = capped_walltime(self.profile_walltime, self.expires_at, dt.datetime.now(dt.UTC))
        except SessionEndsSoon as exc:
            raise ProfileError(str(exc)) from None
        if cut and walltime != getattr(self, "_job_kwargs", {}).get("walltime"):
            log.warning("Dask profile %r: worker walltime cut from %s to %s, the time left in this session "
                        "(it ends at %s).", self.profile_name, self.profile_walltime, walltime,
                        self.expires_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"))
        return walltime

    def _directives_now(self, walltime: str) -> list[str]:
        """The profile's ``#SBATCH`` options, plus the deadline at the session's expiry."""
        if self.expires_at is None:
            return list(self.profile_directives)
        return [*self.profile_directives, *deadline_directives(self.expires_at, walltime)]

    def _jobs_wanted(self, n: int | None, jobs: int, memory: str | None, cores: int | None) -> int:
        """How many jobs ``scale`` would ask for (the same arithmetic as dask-jobqueue's)."""
        per_job = self._dummy_job.worker_processes
        if n is not None:
            jobs = math.ceil(n / per_job)
        if memory is not None:
            jobs = max(jobs, math.ceil(parse_bytes(memory) / self._memory_per_worker()))
        if cores is not None:
            jobs = max(jobs, math.ceil(cores / self._threads_per_worker()))
        return jobs

    def _refuse(self, jobs: int) -> ProfileError:
        per_job = self._dummy_job.worker_processes
        return ProfileError(
            f"Dask profile {self.profile_name!r} allows at most {self.max_jobs} worker jobs "
            f"({self.max_jobs * per_job} workers); you asked for {jobs} jobs. Use fewer workers, or a profile "
            f"with more resources per job (available: {', '.join(profiles())})."
        )

    def scale(self, n: int | None = None, jobs: int = 0, memory: str | None = None, cores: int | None = None):
        wanted = self._jobs_wanted(n, jobs, memory, cores)
        if wanted > self.max_jobs:
            raise self._refuse(wanted)
        if wanted > len(self.worker_spec):  # new jobs: no longer than the session has left now
            self.expires_at = _expiry(_settings())  # the lifetime may have been extended since
            walltime = self._job_kwargs["walltime"] = self._walltime_now()
            self._job_kwargs["job_extra_directives"] = self._directives_now(walltime)
        return super().scale(n=n, jobs=jobs, memory=memory, cores=cores)

    def adapt(self, *args: Any, minimum_jobs: int | None = None, maximum_jobs: int | None = None, **kwargs: Any):
        per_job = self._dummy_job.worker_processes
        if maximum_jobs is not None:
            kwargs["maximum"] = maximum_jobs * per_job
        maximum = kwargs.setdefault("maximum", self.max_jobs * per_job)
        if math.ceil(maximum / per_job) > self.max_jobs:
            raise self._refuse(math.ceil(maximum / per_job))
        return super().adapt(*args, minimum_jobs=minimum_jobs, **kwargs)

    def worker_jobs(self) -> list[dict[str, str]]:
        """The cluster's Slurm jobs as squeue sees them now: id, state and (while pending) the reason in words."""
        ids = [str(job.job_id) for job in self.workers.values() if getattr(job, "job_id", None)]
        if not ids:
            return []
        out = subprocess.run(
            ["squeue", "--noheader", "--states=all", f"--jobs={','.join(ids)}", "--format=%i|%T|%r"],
            capture_output=True, text=True, timeout=30,
        )
        if out.returncode:
            raise ProfileError(f"Slurm does not answer: {out.stderr.strip()}")
        jobs = []
        for line in out.stdout.splitlines():
            job_id, state, reason = (line.split("|", 2) + ["", ""])[:3]
            jobs.append({"job_id": job_id, "state": state, "reason": reason,
                         "why": explain_reason(reason) if state == "PENDING" else ""})
        return jobs

    def why_pending(self) -> str:
        """One sentence per pending worker job: why Slurm has not started it (empty when none waits)."""
        return "\n".join(
            f"Dask worker job {job['job_id']} (profile {self.profile_name}) is waiting: {job['why']}"
            for job in self.worker_jobs() if job["state"] == "PENDING"
        )


def cluster(profile: str | None = None, **kwargs: Any) -> SessionCluster:
    """A Slurm cluster with the named Dask profile (default: the session's); refuses profiles not allowed."""
    return SessionCluster(profile=profile, **kwargs)
