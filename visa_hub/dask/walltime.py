"""Dask worker jobs never outlive the session: walltimes cut at its expiry. Pure: the clock is an argument.

Two guards, because a worker job may wait in the queue for a long time after it was submitted:

- when a cluster is made (and at each ``scale``), a profile walltime longer than the time left in the session is
  cut to the time left (:func:`capped_walltime`); with less than :data:`MIN_WORKER_MINUTES` left it is refused with
  a sentence instead of submitting a job that could not do anything;
- every worker job carries ``--deadline=<expiry>`` and ``--time-min`` (:func:`deadline_directives`): when Slurm
  starts the job it lowers its time limit to end at the expiry, and it cancels a job that would start with less
  than ``--time-min`` left (Slurm's deadline scheduling, main and backfill schedulers alike).
"""

from __future__ import annotations

import datetime as dt
import math
import re

# The shortest worker job worth starting; a session closer than this to its end gets a clear refusal instead.
MIN_WORKER_MINUTES = 5

# Slurm time limits as the site catalog accepts them: [D-]HH:MM:SS, D-HH, D-HH:MM
_CLOCK = re.compile(r"^(?:(\d+)-)?(\d{1,2}):(\d{2}):(\d{2})$")
_DAYS = re.compile(r"^(\d+)-(\d{1,2})(?::(\d{2}))?$")


class SessionEndsSoon(ValueError):
    """The session ends too soon for a Dask worker job."""


def walltime_minutes(walltime: str) -> int:
    """A Slurm time limit (``01:30:00``, ``2-00:00:00``, ``1-12``) in whole minutes, seconds rounded up."""
    clock = _CLOCK.match(walltime)
    if clock:
        days, hours, minutes, seconds = (int(part or 0) for part in clock.groups())
        return days * 1440 + hours * 60 + minutes + math.ceil(seconds / 60)
    days_form = _DAYS.match(walltime)
    if days_form:
        days, hours, minutes = (int(part or 0) for part in days_form.groups())
        return days * 1440 + hours * 60 + minutes
    raise ValueError(f"not a Slurm time limit: {walltime!r}")


def format_walltime(minutes: int) -> str:
    """Minutes as a Slurm time limit: ``HH:MM:00`` (``D-HH:MM:00`` from one day on)."""
    days, minutes = divmod(minutes, 1440)
    clock = f"{minutes // 60:02d}:{minutes % 60:02d}:00"
    return f"{days}-{clock}" if days else clock


def parse_expiry(value: str) -> dt.datetime:
    """The session's expiry as the hub writes it (ISO 8601; no zone means UTC)."""
    try:
        when = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"the session's expiry is not an ISO 8601 time: {value!r}") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def minutes_left(expires_at: dt.datetime, now: dt.datetime) -> int:
    """Whole minutes until the session ends (rounded down: a job ending a few seconds early is fine)."""
    return max(0, math.floor((expires_at - now).total_seconds() / 60))


def capped_walltime(walltime: str, expires_at: dt.datetime, now: dt.datetime) -> tuple[str, bool]:
    """The walltime a worker job submitted now may have, and whether the profile's was cut to fit the session.

    Raises :class:`SessionEndsSoon` when fewer than :data:`MIN_WORKER_MINUTES` are left.
    """
    left = minutes_left(expires_at, now)
    if left < MIN_WORKER_MINUTES:
        ends = expires_at.astimezone(dt.UTC).strftime("%H:%M UTC")
        raise SessionEndsSoon(
            f"This session ends at {ends} ({_in_minutes(left)}), too soon to start Dask workers (they would have "
            f"to stop when the session does; at least {MIN_WORKER_MINUTES} minutes are needed). Extend the "
            "session's lifetime, or start a new session, then create the cluster again."
        )
    wanted = walltime_minutes(walltime)
    if wanted <= left:
        return walltime, False
    return format_walltime(left), True


def _in_minutes(minutes: int) -> str:
    if minutes == 0:
        return "in less than a minute"
    return f"in {minutes} minute{'s' if minutes != 1 else ''}"


def deadline_directives(expires_at: dt.datetime, walltime: str) -> list[str]:
    """``#SBATCH`` options that make Slurm end (or never start) the job by the session's expiry.

    sbatch reads ``--deadline`` in local time, so it is written in this process's time zone (the one of the
    ``sbatch`` it runs).
    """
    local = expires_at.astimezone().replace(tzinfo=None)
    time_min = min(MIN_WORKER_MINUTES, walltime_minutes(walltime))
    return [f"--deadline={local.isoformat(timespec='seconds')}", f"--time-min={format_walltime(time_min)}"]
