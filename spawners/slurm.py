"""Slurm backend (entry point ``visa-slurm``): JupyterLab as a batch job on the DMSC Slurm cluster.

Built on batchspawner's :class:`~batchspawner.SlurmSpawner`, which submits the job (``sudo -u <user> sbatch``),
learns the server's port from ``batchspawner-singleuser`` and cancels the job on stop. This subclass

- turns the :class:`~visa_hub.policy.SessionPlan` into sbatch parameters: ``--account`` = the experiment's code,
  ``--time`` = the session's lifetime, ``--cpus-per-task`` / ``--mem`` / ``--gres`` = the flavour; the partition
  is the operator's ``req_partition`` (empty: the cluster's default partition);
- gives the job step a working ``PATH`` (JupyterHub 6 no longer passes it, sudo's ``secure_path`` resets it and
  ``#SBATCH --export=<list>`` passes only the listed variables) and absolute commands, and visa-hub's instance
  Jupyter configuration (app kernels, no news feed: :mod:`visa_hub.jupyter_defaults`) from the instance
  environment on the node; the instance's Dask configuration is written by its server extension, as on every
  backend (:mod:`visa_hub.dask.instance`, one directory per instance);
- names each job after its instance (``jupyterlab-<user>-<server name>``): a person's instances are separate jobs,
  each with its experiment's account, polled, stopped and re-attached on its own;
- asks Slurm about all of the hub's jobs with one ``squeue`` per poll cycle (:class:`SlurmQueue`), shows the
  job's queue state and pending reason as progress, and fails a spawn with a clear message when the controller
  does not answer or the job can never start;
- works with a hub that runs as a non-root service user on a cluster with ``PrivateData=jobs``: jobs are submitted
  and cancelled as their owner (``sudo -u``, batchspawner's ``exec_prefix``); the one ``squeue`` per poll runs as
  the hub's user, who sees the experiments' jobs as coordinator of their accounts (``visa-hub slurm-sync`` makes it
  one); a job it cannot see is asked about as its owner, one ``sudo squeue`` for that job, with a warning;
- keeps the server's API token out of Slurm: not in the submitted environment, script or command line; the job
  step fetches it from the hub with a munge credential (:mod:`spawners.slurm_token`), so it is never in a stored
  job environment (``sacct --env-vars``), in ``ps`` or in a file.

The job id and the session plan are spawner state, so a restarted hub re-attaches to running jobs; a job that
Slurm ended (time limit, ``scancel``) is seen as a stopped server at the next poll.
"""

from __future__ import annotations

import asyncio
import math
import os
import pwd
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from batchspawner import JobStatus, format_template
from batchspawner import SlurmSpawner as BatchSlurmSpawner
from tornado import web
from traitlets import Float, Unicode, default

try:
    from jupyterhub.spawner import SpawnException
except ImportError:  # JupyterHub 5
    SpawnException = None  # type: ignore[assignment,misc]

from visa_hub import metrics
from visa_hub.dask.reasons import NEVER_STARTS, explain_reason
from visa_hub.slurm import account_name

from .base import VisaSpawnerMixin
from .slurm_token import SlurmTokenHandover

# squeue's fields for one job: id, state, batch host, reason ("None" once running)
SQUEUE_FORMAT = "%i|%T|%B|%r"
CONTROLLER_DOWN = ("Unable to contact slurm controller", "Socket timed out", "Connection refused",
                   "Zero Bytes were transmitted or received")
# never submitted to Slurm: the job step fetches the token from the hub (spawners/slurm_token.py)
TOKEN_VARIABLES = ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")
# set in the job, not by the hub: visa-hub's Jupyter defaults (job script) and the instance's Dask configuration
# directory (server extension), passed on to the job step and to the Dask worker jobs the instance submits
SET_IN_JOB = ("JUPYTER_CONFIG_PATH", "DASK_CONFIG")

def slurm_time(hours: float) -> str:
    """Hours as a Slurm time limit (``D-HH:MM:SS``), rounded up to the minute."""
    minutes = max(1, math.ceil(hours * 60))
    days, minutes = divmod(minutes, 24 * 60)
    return f"{days}-{minutes // 60:02d}:{minutes % 60:02d}:00"


class SlurmUnavailable(RuntimeError):
    """The Slurm controller did not answer."""


@dataclass(frozen=True)
class JobInfo:
    job_id: str
    state: str
    host: str
    reason: str

    @property
    def status_line(self) -> str:
        """batchspawner's ``job_status``: state first (its regexes), then the host, then the reason."""
        return f"{self.state} {self.host} {self.reason}"


class SlurmQueue:
    """All jobs Slurm knows, from one ``squeue`` shared by every spawner of the hub (at most one per ``max_age``)."""

    def __init__(self) -> None:
        self._jobs: dict[str, JobInfo] = {}
        self._error: str | None = None
        self._taken = -math.inf
        self._lock: asyncio.Lock | None = None

    async def jobs(self, run, max_age: float, taken_after: float = -math.inf) -> dict[str, JobInfo]:
        """The current jobs; ``run`` runs a shell command (the spawner's ``run_command``)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if time.monotonic() - self._taken > max_age or self._taken < taken_after:
                try:
                    out = await run(f"squeue --noheader --states=all --format='{SQUEUE_FORMAT}'")
                    self._jobs, self._error = self._parse(out), None
                except RuntimeError as exc:
                    self._error = str(exc).strip() or "squeue failed"
                self._taken = time.monotonic()
            if self._error:
                raise SlurmUnavailable(self._error)
            return self._jobs

    @staticmethod
    def _parse(out: str) -> dict[str, JobInfo]:
        jobs = {}
        for line in out.splitlines():
            parts = line.strip().split("|", 3)
            if len(parts) == 4:
                jobs[parts[0]] = JobInfo(*parts)
        return jobs


QUEUE = SlurmQueue()

BATCH_SCRIPT = """#!/bin/bash
#SBATCH --job-name=jupyterlab-{{username}}{% if servername %}-{{servername}}{% endif %}
#SBATCH --output={{homedir}}/visa-instance-%j.log
#SBATCH --chdir={{homedir}}
#SBATCH --export={{keepvars}}
{% if partition %}#SBATCH --partition={{partition}}
{% endif %}{% if account %}#SBATCH --account={{account}}
{% endif %}{% if runtime %}#SBATCH --time={{runtime}}
{% endif %}{% if memory %}#SBATCH --mem={{memory}}
{% endif %}{% if nprocs %}#SBATCH --cpus-per-task={{nprocs}}
{% endif %}{% if gres %}#SBATCH --gres={{gres}}
{% endif %}{% if qos %}#SBATCH --qos={{qos}}
{% endif %}{% if options %}#SBATCH {{options}}
{% endif %}
set -euo pipefail
# the log of her session (her server's output) is in her home, which others may be able to read: hers only
chmod 0600 "{{homedir}}/visa-instance-$SLURM_JOB_ID.log" 2>/dev/null || true
trap 'echo SIGTERM received' TERM
{{prologue}}
{% if srun %}{{srun}} {% endif %}{{cmd}}
echo "jupyterhub-singleuser ended gracefully"
{{epilogue}}
"""


class SlurmSpawner(VisaSpawnerMixin, BatchSlurmSpawner):
    """Experiment-aware JupyterLab as a Slurm batch job (account = experiment, time = lifetime)."""

    python = Unicode(
        sys.executable,
        config=True,
        help="Python of the instance environment on the compute nodes (jupyterhub-singleuser, batchspawner and "
        "visa-hub installed, readable by every user). Default: the hub's own Python.",
    )

    job_path = Unicode(
        config=True,
        help="PATH of the job step. Default: the bin directory of `python`, then /usr/local/bin:/usr/bin:/bin.",
    )

    @default("job_path")
    def _job_path_default(self) -> str:
        return f"{Path(self.python).parent}:/usr/local/bin:/usr/bin:/bin"

    queue_cache_seconds = Float(
        5.0,
        config=True,
        help="At most one squeue per this many seconds for all of the hub's instances (polls share the answer).",
    )

    controller_grace_seconds = Float(
        20.0,
        config=True,
        help="How long a spawn waits for an unreachable Slurm controller before it fails with a message.",
    )

    @default("batch_script")
    def _batch_script_default(self) -> str:
        return BATCH_SCRIPT

    @default("batch_query_cmd")
    def _batch_query_cmd_default(self) -> str:
        return f"squeue --noheader --jobs={{job_id}} --states=all --format='{SQUEUE_FORMAT}'"

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        return [str(Path(self.python).with_name("jupyterhub-singleuser"))]

    @default("batchspawner_singleuser_cmd")
    def _singleuser_cmd_default(self) -> str:
        return str(Path(self.python).with_name("batchspawner-singleuser"))

    @default("req_prologue")
    def _req_prologue_default(self) -> str:
        return (
            f"export PATH={shlex.quote(self.job_path)}\n"
            "# visa-hub's Jupyter defaults of the instance environment (app kernels, no news), before the user's own\n"
            f'export JUPYTER_CONFIG_PATH="$({shlex.quote(self.python)} -m visa_hub.jupyter_defaults)"'
        )

    @default("poll_interval")
    def _poll_interval_default(self) -> int:
        return 15

    _max_age: float | None = None
    _submitted_at: float = -math.inf
    _last_progress: str = ""
    _token_job: str = ""  # the submitted job that may fetch the API token (once)
    _told_invisible: bool = False

    # -- environment -------------------------------------------------------------------------------
    def get_env(self) -> dict[str, str]:
        """The job's environment: everything but the API token (the job fetches it, see spawners/slurm_token.py)."""
        env = super().get_env()
        for name in TOKEN_VARIABLES:
            env.pop(name, None)
        env["PATH"] = self.job_path
        if os.environ.get("SLURM_CONF"):  # a cluster configured by file, not by DNS (tests, small sites)
            env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        env["VISA_TOKEN_UID"] = str(os.getuid())  # only the hub's user may decode the job's munge credential
        socket = SlurmTokenHandover(config=self.config).munge_socket
        if socket:
            env["VISA_MUNGE_SOCKET"] = socket
        return env

    def get_req_subvars(self) -> dict:
        subvars = super().get_req_subvars()
        subvars["servername"] = self.name  # named servers: one job name per instance
        # set inside the job (the prologue, the server extension): the job step gets, and the person's own sbatch
        # from the instance (Dask workers) passes on, only the variables listed in --export (SLURM_EXPORT_ENV)
        listed = subvars["keepvars"].split(",") if subvars.get("keepvars") else []
        subvars["keepvars"] = ",".join([*listed, *(name for name in SET_IN_JOB if name not in listed)])
        return subvars

    def cmd_formatted_for_batch(self) -> str:
        """The server's command, started by the step that fetches the API token from the hub."""
        return f"{shlex.quote(self.python)} -m visa_hub.slurm.jobtoken -- {super().cmd_formatted_for_batch()}"

    def hands_over_token(self, job_id: str) -> bool:
        """Whether Slurm job ``job_id`` may have this server's API token now (True once per spawn)."""
        if not job_id or job_id != self._token_job:
            return False
        self._token_job = ""
        return True

    def apply_plan(self) -> None:
        """The session plan as sbatch parameters."""
        plan = self.session_plan
        assert plan is not None
        self.req_account = account_name(plan.experiment.code)
        self.req_runtime = slurm_time(plan.lifetime_hours)
        self.req_nprocs = str(plan.flavour.cpus)
        self.req_memory = f"{math.ceil(plan.flavour.memory_gb * 1024)}M"
        self.req_gres = f"gpu:{plan.flavour.gpus}" if plan.flavour.gpus else ""

    # -- submission --------------------------------------------------------------------------------
    async def submit_batch_script(self) -> str:
        """batchspawner's submission without its debug log of the environment (it holds the API token)."""
        subvars = self.get_req_subvars()
        cmd = " ".join((format_template(self.exec_prefix, **subvars),
                        format_template(self.batch_submit_cmd, **subvars)))
        subvars["cmd"] = self.cmd_formatted_for_batch()  # user_options are not template variables here
        script = await self._get_batch_script(**subvars)
        self.log.info("Submitting the instance of %s to Slurm: %s", self._log_name, cmd)
        self.log.debug("Slurm job script of %s:\n%s", self._log_name, script)
        try:
            out = await self.run_command(cmd, input=script, env=self.get_env())
        except RuntimeError as exc:
            raise self._submit_failure(str(exc)) from None
        self.job_id = self.parse_job_id(out)
        self._token_job = self.job_id
        self._submitted_at = time.monotonic()
        self.log.info("Slurm job %s submitted for %s", self.job_id, self._log_name)
        return self.job_id

    def _experiment(self) -> str:
        summary = self.session_summary or {}
        return (summary.get("experiment") or {}).get("code", "your experiment")

    def _submit_failure(self, message: str) -> web.HTTPError:
        message = message.replace("sbatch: error: ", "").strip()
        if any(sign in message for sign in CONTROLLER_DOWN):
            text = (f"The Slurm cluster is not answering (its controller is down or unreachable), so the instance "
                    f"for experiment {self._experiment()} could not be queued. Nothing was started: try again in a "
                    "few minutes, and contact support if this persists.")
        else:
            text = (f"Slurm refused the instance for experiment {self._experiment()}: {message}. "
                    "Contact support with this message.")
        self.log.error("Slurm submission for %s failed: %s", self._log_name, message)
        return _spawn_error(text)

    # -- job state ---------------------------------------------------------------------------------
    async def query_job_status(self) -> JobStatus:
        """The job's state from the hub-wide squeue snapshot (see :class:`SlurmQueue`)."""
        if not self.job_id:
            self.job_status = ""
            return JobStatus.NOTFOUND
        max_age = self._max_age if self._max_age is not None else self.queue_cache_seconds
        try:
            jobs = await QUEUE.jobs(self.run_command, max_age, taken_after=self._submitted_at)
        except SlurmUnavailable as exc:
            self.job_status = f"UNKNOWN {exc}"
            return JobStatus.UNKNOWN
        job = jobs.get(self.job_id)
        if job is None:
            try:
                job = await self._job_as_owner()
            except SlurmUnavailable as exc:
                self.job_status = f"UNKNOWN {exc}"
                return JobStatus.UNKNOWN
        self.job_status = job.status_line if job else ""
        if job is None:
            return JobStatus.NOTFOUND
        if self.state_isrunning():
            return JobStatus.RUNNING
        if self.state_ispending():
            return JobStatus.PENDING
        return JobStatus.NOTFOUND  # COMPLETED, CANCELLED, TIMEOUT, FAILED, ...

    async def _job_as_owner(self) -> JobInfo | None:
        """The job asked about as its owner (``sudo -u``), for a job the hub's own squeue does not show."""
        subvars = {**self.get_req_subvars(), "job_id": self.job_id}
        command = " ".join((format_template(self.exec_prefix, **subvars),
                            format_template(self.batch_query_cmd, **subvars)))
        try:
            out = await self.run_command(command)
        except RuntimeError as exc:
            if "Invalid job id" in str(exc):  # ended long enough ago that Slurm forgot it
                return None
            raise SlurmUnavailable(str(exc).strip() or "squeue failed") from None
        job = SlurmQueue._parse(out).get(self.job_id)
        if job is not None and not self._told_invisible:
            self._told_invisible = True
            self.log.warning(
                "Slurm job %s of %s is not visible to the hub's squeue (PrivateData=jobs, and user %s is not a "
                "coordinator of account %s): asked as %s instead, one squeue per poll for this instance. Run "
                "visa-hub slurm-sync, which makes the hub coordinator of every experiment account.",
                self.job_id, self._log_name, _hub_user(), account_name(self._experiment()), self.user.name)
        return job

    def state_gethost(self) -> str:
        return self.job_status.split()[1]

    def job_reason(self) -> str:
        parts = self.job_status.split(maxsplit=2)
        return parts[2] if len(parts) == 3 else ""

    async def _watch_start(self, job_id: str) -> None:
        """While the spawn runs: progress with the job's state and pending reason; raise when it cannot succeed.

        Runs next to batchspawner's own start loop and only ends by raising.
        """
        unreachable_since: float | None = None
        while True:
            await asyncio.sleep(self.startup_poll_interval)
            status = await self.query_job_status()
            if status == JobStatus.UNKNOWN:
                unreachable_since = unreachable_since or time.monotonic()
                self._progress(40, "The Slurm controller is not answering; waiting")
                if time.monotonic() - unreachable_since > self.controller_grace_seconds:
                    await self._cancel_quietly()
                    raise _spawn_error(
                        f"The Slurm cluster stopped answering while the instance for experiment "
                        f"{self._experiment()} was queued (job {job_id}). Try again in a few minutes, and "
                        "contact support if this persists.")
                continue
            unreachable_since = None
            if status == JobStatus.PENDING:
                reason = self.job_reason()
                self._progress(40, f"Slurm job {job_id} is waiting in the queue: {explain_reason(reason)}")
                if reason.split(",")[0] in NEVER_STARTS:
                    await self._cancel_quietly()
                    raise _spawn_error(
                        f"The instance for experiment {self._experiment()} cannot start on the Slurm cluster: "
                        f"{explain_reason(reason)}. Choose a shorter lifetime or a smaller flavour, or contact "
                        "support.")
            elif status == JobStatus.RUNNING:
                metrics.slurm_job_running(self)
                self._progress(60, f"Slurm job {job_id} is running on {self.state_gethost()}; starting JupyterLab")
            else:
                raise _spawn_error(
                    f"The Slurm job of the instance for experiment {self._experiment()} ended before JupyterLab "
                    f"was ready. Its log is visa-instance-{job_id}.log in your home directory; contact support "
                    "with it.")

    def _progress(self, percent: int, message: str) -> None:
        if message != self._last_progress:
            self._last_progress = message
            self.progress_log.emit(percent, message)
            self.log.info("%s: %s", self._log_name, message)

    async def _cancel_quietly(self) -> None:
        try:
            await self.cancel_batch_job()
        except RuntimeError as exc:
            self.log.warning("Could not cancel Slurm job %s of %s: %s", self.job_id, self._log_name, exc)

    # -- lifecycle ---------------------------------------------------------------------------------
    @metrics.timed_spawn
    async def start(self):
        plan = await self.prepare_session()
        self.apply_plan()
        self._progress(
            25,
            f"Submitting to Slurm: partition {self.req_partition or '(default)'}, account {self.req_account}, "
            f"{self.req_nprocs} CPUs, {plan.flavour.memory_gb:g} GB, time limit {self.req_runtime}",
        )
        self._max_age = self.startup_poll_interval
        started = asyncio.ensure_future(super().start())
        watcher: asyncio.Future | None = None
        try:
            # batchspawner's start submits, then loops until the job runs and the server reports its port
            while not self.job_id and not started.done():
                await asyncio.sleep(0.05)
            if self.job_id and not started.done():
                watcher = asyncio.ensure_future(self._watch_start(self.job_id))
                await asyncio.wait({started, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if started.done():
                ip, port = started.result()
            else:  # the watcher found that the spawn cannot succeed
                assert watcher is not None
                watcher.result()
        except RuntimeError as exc:
            if "batch job has disappeared" in str(exc):
                raise _spawn_error(
                    f"The Slurm job of the instance for experiment {self._experiment()} ended right after it "
                    "started. Its log (visa-instance-<job>.log) is in your home directory; contact support "
                    "with it.") from None
            raise
        finally:
            self._max_age = None
            for task in (started, watcher):
                if task is not None and not task.done():
                    task.cancel()
        metrics.slurm_job_running(self)
        self._progress(80, f"JupyterLab is up in Slurm job {self.job_id} on {ip}; connecting")
        return ip, port

    async def stop(self, now: bool = False):
        self._max_age = 0.0
        try:
            await super().stop(now=now)
        except RuntimeError as exc:
            # the controller may be down: the job then ends at its time limit (the session's lifetime)
            self.log.warning("Could not cancel Slurm job %s of %s: %s", self.job_id, self._log_name, exc)
        finally:
            self._max_age = None

    def clear_state(self) -> None:
        super().clear_state()
        self._last_progress = ""
        self._submitted_at = -math.inf
        self._token_job = ""


def _hub_user() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


def _spawn_error(message: str, reason: str = "slurm") -> web.HTTPError:
    """A failed spawn whose message JupyterHub shows the person as is (spawn page and progress events)."""
    if SpawnException is not None:  # JupyterHub 6: no traceback logged, a reason label in the metrics
        error = SpawnException(message, reason=reason, status_code=503)
    else:
        error = web.HTTPError(503, "%s", message)
    error.jupyterhub_message = message  # type: ignore[attr-defined]
    error.metrics_reason = reason  # type: ignore[attr-defined]
    return error
