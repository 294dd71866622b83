"""A session's Dask profiles → dask configuration in dask's own format. Pure: no I/O, no environment.

The hub puts the session's Dask settings into the instance's environment as ``VISA_DASK`` (see
:func:`visa_hub.policy.session_environment`): the Slurm account (the experiment's code), the allowed
profiles and the default one. :func:`dask_config` turns that into the nested mapping dask reads from its YAML
files, so that plain ``dask_jobqueue.SLURMCluster()`` and dask-labextension's "New cluster" button both give a
cluster with the session's default profile:

- ``jobqueue.slurm``: the default profile as dask-jobqueue keys (cores, memory, processes, queue, account, ...);
- ``labextension.factory``: :class:`visa_hub.dask.clusters.SessionCluster` (a ``SLURMCluster`` that keeps to the
  session's profiles and job limit);
- ``distributed.dashboard.link``: the dashboard through the hub's proxy (``/user/<name>/proxy/<port>/status``);
- ``visa-hub.dask``: every allowed profile as dask-jobqueue keyword arguments, for
  :func:`visa_hub.dask.clusters.cluster`.
"""

from __future__ import annotations

import copy
import json
import shlex
from dataclasses import dataclass
from typing import Any

from visa_hub.catalog import DaskProfile

ENV_VARIABLE = "VISA_DASK"
CONFIG_SECTION = "visa-hub.dask"
# dask formats the link with the server's environment: JUPYTERHUB_SERVICE_PREFIX is /user/<name>/ (or
# /user/<name>/<server>/ for a named server), so this is /user/{JUPYTERHUB_USER}/proxy/{port}/status.
DASHBOARD_LINK = "{JUPYTERHUB_SERVICE_PREFIX}proxy/{port}/status"
FACTORY = {"module": "visa_hub.dask.clusters", "class": "SessionCluster", "args": [], "kwargs": {}}


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
    }
    if log_directory:
        kwargs["log_directory"] = log_directory
    return kwargs


def _as_config_keys(kwargs: dict[str, Any]) -> dict[str, Any]:
    """SLURMCluster keyword arguments → dask config keys (dask-jobqueue spells them with dashes)."""
    return {key.replace("_", "-"): value for key, value in kwargs.items()}


def dask_config(session: DaskSession, *, python: str, log_directory: str | None = None) -> dict[str, Any]:
    """The instance's dask configuration, as the nested mapping dask loads from YAML."""
    profiles = {
        name: {**cluster_kwargs(p, session, python=python, log_directory=log_directory), "max_jobs": p.max_jobs}
        for name, p in session.profiles.items()
    }
    config: dict[str, Any] = {
        "distributed": {"dashboard": {"link": DASHBOARD_LINK}},
        "visa-hub": {"dask": {
            "experiment": session.experiment,
            "default": session.default,
            "profiles": profiles,
        }},
    }
    if session.default is not None:
        default = copy.deepcopy(profiles[session.default])  # no YAML anchors shared with visa-hub.dask
        default.pop("max_jobs")
        config["jobqueue"] = {"slurm": {"name": f"dask-{session.experiment}", **_as_config_keys(default)}}
        config["labextension"] = {"factory": FACTORY}
    return config
