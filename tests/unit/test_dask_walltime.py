"""Dask worker walltimes against the session's expiry (pure arithmetic; Slurm's side is in the integration tests)."""

from __future__ import annotations

import datetime as dt

import pytest

from visa_hub.dask.walltime import (
    SessionEndsSoon,
    capped_walltime,
    deadline_directives,
    format_walltime,
    parse_expiry,
    walltime_minutes,
)

NOW = dt.datetime(2026, 5, 4, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(("walltime", "minutes"), [
    ("02:00:00", 120), ("00:30:30", 31), ("1-00:00:00", 1440), ("2-03:04:00", 2 * 1440 + 184), ("1-12", 2160),
    ("1-12:30", 2190),
])
def test_slurm_times_in_minutes(walltime, minutes):
    assert walltime_minutes(walltime) == minutes


def test_minutes_as_slurm_times_round_trip():
    for minutes in (5, 59, 60, 1439, 1440, 3000):
        assert walltime_minutes(format_walltime(minutes)) == minutes
    assert format_walltime(29) == "00:29:00" and format_walltime(1500) == "1-01:00:00"


def test_a_walltime_that_fits_is_kept():
    assert capped_walltime("02:00:00", NOW + dt.timedelta(hours=3), NOW) == ("02:00:00", False)
    assert capped_walltime("02:00:00", NOW + dt.timedelta(hours=2), NOW) == ("02:00:00", False)


def test_a_longer_walltime_is_cut_to_the_whole_minutes_left():
    assert capped_walltime("08:00:00", NOW + dt.timedelta(minutes=90, seconds=59), NOW) == ("01:30:00", True)


@pytest.mark.parametrize("left", [dt.timedelta(minutes=4, seconds=59), dt.timedelta(seconds=20),
                                  -dt.timedelta(hours=1)])
def test_near_the_end_a_sentence_instead_of_a_zero_walltime(left):
    with pytest.raises(SessionEndsSoon) as refused:
        capped_walltime("02:00:00", NOW + left, NOW)
    message = str(refused.value)
    assert message.startswith(f"This session ends at {(NOW + left):%H:%M} UTC (in ")
    assert "too soon to start Dask workers" in message and "Extend the session's lifetime" in message


def test_deadline_in_local_time_and_a_short_time_min():
    expires = dt.datetime(2026, 5, 4, 18, 30, tzinfo=dt.UTC)
    deadline, time_min = deadline_directives(expires, "02:00:00")
    assert deadline == f"--deadline={expires.astimezone().replace(tzinfo=None).isoformat()}"
    assert time_min == "--time-min=00:05:00"
    assert deadline_directives(expires, "00:03:00")[1] == "--time-min=00:03:00"  # never above the walltime


def test_expiry_without_zone_is_utc_and_garbage_is_refused():
    assert parse_expiry("2026-05-04T12:00:00") == NOW
    with pytest.raises(ValueError, match="not an ISO 8601 time"):
        parse_expiry("soon")
