"""What a new expiry means for the backend an instance runs on.

Stopping always goes through the hub (its spawner frees the backend's resources). Moving the expiry only
matters where the backend enforces a limit of its own: a Slurm job ends at its time limit, so an extension
raises it (``scontrol update JobId=… TimeLimit=…``) — refused when the job's partition does not allow that
long. Local processes and cloud servers have no limit but the service's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import os
import re
import shlex

from traitlets import Float, List, Unicode
from traitlets.config import LoggingConfigurable


class ExpiryRefused(Exception):
    """The backend cannot run the instance until the new expiry; the message says why, for a person."""


def slurm_minutes(text: str) -> float | None:
    """A Slurm time (``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``) in minutes;
    ``None`` for ``UNLIMITED``/``INFINITE``."""
    text = text.strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days = 0
    if "-" in text:
        day_text, text = text.split("-", 1)
        days = int(day_text)
        parts = [int(p) for p in text.split(":")]
        hours, minutes, seconds = (parts + [0, 0])[:3]
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            hours, minutes, seconds = 0, parts[0], 0
        elif len(parts) == 2:
            hours, minutes, seconds = 0, parts[0], parts[1]
        else:
            hours, minutes, seconds = parts[:3]
    return days * 1440 + hours * 60 + minutes + seconds / 60


def scontrol_fields(text: str) -> dict[str, str]:
    """``scontrol show ... -o`` output (``Key=Value`` pairs on one line) as a dict."""
    return dict(re.findall(r"(\w+)=(\S*)", text))


def describe_minutes(minutes: float) -> str:
    if minutes >= 2880 and minutes % 1440 == 0:
        return f"{minutes / 1440:g} days"
    if minutes >= 120:
        return f"{minutes / 60:g} hours"
    return f"{minutes:g} minutes"


class SlurmLimits(LoggingConfigurable):
    """How the sessions service changes the time limit of instances that run as Slurm jobs."""

    scontrol = List(
        Unicode(), ["scontrol"], config=True,
        help="The scontrol command that reads jobs and partitions (the hub's user, a coordinator of the "
             "experiment accounts, may read them).",
    )
    update_command = List(
        Unicode(), ["scontrol"], config=True,
        help="The command that raises a job's time limit, called with 'update JobId=<id> TimeLimit=<minutes>'. "
             "Only a Slurm operator may raise one, so a site gives the hub's user exactly this through sudo, e.g. "
             "['sudo', '-n', '/usr/bin/scontrol'] with the sudoers rule "
             "'visahub ALL=(root) NOPASSWD: /usr/bin/scontrol ^update JobId=[0-9]+ TimeLimit=[0-9]+$'.",
    )
    timeout = Float(30.0, config=True, help="Seconds before one scontrol call counts as failed.")

    async def _scontrol(self, *args: str, command: list[str] | None = None) -> str:
        command = list(command or self.scontrol)
        proc = await asyncio.create_subprocess_exec(
            *command, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=os.environ.copy())
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.timeout)
        except TimeoutError:
            proc.kill()
            raise ExpiryRefused("The Slurm cluster did not answer in time; try again in a few minutes.") from None
        if proc.returncode:
            message = (err or out).decode(errors="replace").strip()
            self.log.warning("%s failed: %s", shlex.join([*command, *args]), message)
            raise ExpiryRefused(f"Slurm refused the change: {message}")
        return out.decode(errors="replace")

    async def set_expiry(self, job_id: str, expires_at: dt.datetime) -> float:
        """Make job ``job_id`` run until ``expires_at``; the new time limit in minutes."""
        job = scontrol_fields(await self._scontrol("show", "job", job_id, "-o"))
        start_text = job.get("StartTime", "")
        try:  # Slurm prints local time without a zone
            started = dt.datetime.fromisoformat(start_text).astimezone(dt.UTC)
        except ValueError:
            raise ExpiryRefused(f"Slurm job {job_id} has no start time yet ({start_text!r}).") from None
        minutes = max(1, math.ceil((expires_at - started).total_seconds() / 60))
        partition = job.get("Partition", "")
        if partition:
            part = scontrol_fields(await self._scontrol("show", "partition", partition, "-o"))
            allowed = slurm_minutes(part.get("MaxTime", "UNLIMITED"))
            if allowed is not None and minutes > allowed:
                raise ExpiryRefused(
                    f"The Slurm partition '{partition}' runs a job for at most {describe_minutes(allowed)}, so this "
                    f"instance cannot run until {expires_at:%Y-%m-%d %H:%M} UTC. Relaunch it after it ends (your "
                    "files and Lab layout are kept), or ask support for a partition with longer jobs.")
        await self._scontrol("update", f"JobId={job_id}", f"TimeLimit={minutes}", command=self.update_command)
        self.log.info("Slurm job %s: time limit now %d minutes (until %s)", job_id, minutes, expires_at.isoformat())
        return minutes
