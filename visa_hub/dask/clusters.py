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
"""

from __future__ import annotations

import math
import subprocess
from typing import Any

import dask.config
from dask.utils import parse_bytes
from dask_jobqueue import SLURMCluster

from .config import CONFIG_SECTION
from .reasons import explain_reason

__all__ = ["ProfileError", "SessionCluster", "cluster", "profiles"]

# Keys a profile decides; passing them as arguments would bypass the site's rules.
PROFILE_KEYS = ("cores", "memory", "processes", "queue", "account", "walltime", "job_extra_directives")


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


class SessionCluster(SLURMCluster):
    """A ``SLURMCluster`` with one of the session's Dask profiles (default: the session's default profile)."""

    def __init__(self, *args: Any, profile: str | None = None, **kwargs: Any):
        name, settings = _profile(profile)
        overridden = sorted(set(kwargs) & set(PROFILE_KEYS))
        if overridden:
            raise ProfileError(
                f"{', '.join(overridden)} {'is' if len(overridden) == 1 else 'are'} set by Dask profile {name!r}; "
                f"choose another profile instead (available: {', '.join(profiles())})."
            )
        self.profile_name = name
        self.max_jobs = int(settings.pop("max_jobs"))
        super().__init__(*args, **{**settings, **kwargs})

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
