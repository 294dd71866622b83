"""A lifetime extension reaches the instance's Dask configuration: the new expiry, the same TLS credentials."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import yaml

from visa_hub.catalog import load_catalog
from visa_hub.dask.instance import move_expiry, use_instance_config, written_expiry
from visa_hub.dask.walltime import walltime_minutes
from visa_hub.demo import DEMO_CATALOG
from visa_hub.people import Experiment, Person
from visa_hub.policy import SpawnRequest, plan_session
from visa_hub.singleuser.expiry import ExpiryFollower, expiry_in_answer
from visa_hub.singleuser.session import session_payload

CATALOG = load_catalog(DEMO_CATALOG)


def instance_environ(home: Path, minutes_left: int) -> dict[str, str]:
    """alice's LoKI instance with ``minutes_left`` of its lifetime, as the spawner starts it."""
    now = dt.datetime.now(dt.UTC)
    member = Experiment("LOKI-1", "Nanodiscs", "LoKI", now - dt.timedelta(days=1), now + dt.timedelta(days=3))
    plan = plan_session(Person("alice", "Alice", experiments=(member,)), SpawnRequest("LOKI-1"), CATALOG, now)
    expires = (now + dt.timedelta(minutes=minutes_left)).isoformat()
    session = {**json.loads(plan.environment["VISA_SESSION"]), "expires_at": expires}
    return {**plan.environment, "VISA_EXPIRES_AT": expires, "VISA_SESSION": json.dumps(session),
            "HOME": str(home), "JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": "loki-1"}


def session_dirs(home: Path) -> list[Path]:
    return sorted((home / ".visa/dask/instances/loki-1").glob("session-*"))


def test_lifetime_extension_rewrites_the_dask_expiry_and_keeps_the_credentials(tmp_path):
    env = instance_environ(tmp_path, minutes_left=30)
    path = use_instance_config(env)
    before = yaml.safe_load(path.read_text())
    slurm = before["jobqueue"]["slurm"]
    assert walltime_minutes(slurm["walltime"]) <= 30  # the standard profile's 2 h, cut at the old end
    credentials = session_dirs(tmp_path)

    new_end = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=90)
    assert move_expiry(new_end, env) == path
    after = yaml.safe_load(path.read_text())
    # the same TLS files: a running cluster's scheduler still admits the workers it starts from now on
    assert after["distributed"]["comm"] == before["distributed"]["comm"]
    assert session_dirs(tmp_path) == credentials
    # the new end everywhere the configuration has one
    assert written_expiry(path) == new_end
    assert 85 <= walltime_minutes(after["jobqueue"]["slurm"]["walltime"]) <= 90
    local_end = new_end.astimezone().replace(tzinfo=None).isoformat(timespec="seconds")
    assert f"--deadline={local_end}" in after["jobqueue"]["slurm"]["job-extra-directives"]
    assert not any(d.startswith("--deadline=") and d != f"--deadline={local_end}"
                   for d in after["jobqueue"]["slurm"]["job-extra-directives"])
    assert env["VISA_EXPIRES_AT"] == new_end.isoformat()  # kernels started from now on
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_lifetime_expiry_follower_updates_session_api_and_dask_once(tmp_path, caplog):
    env = instance_environ(tmp_path, minutes_left=30)
    path = use_instance_config(env)
    follower = ExpiryFollower(logging.getLogger("test"), env)
    answer = json.dumps({"status": "extended", "instance": {
        "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)).isoformat()}})
    new_end = expiry_in_answer(answer)
    assert new_end

    with caplog.at_level(logging.INFO):
        assert follower.apply(new_end) is True
    assert "the session now ends at" in caplog.text
    payload = session_payload(env, dt.datetime.now(dt.UTC))
    assert 7100 <= payload["seconds_left"] <= 7200  # the session API (Lab's countdown) follows
    assert written_expiry(path) == dt.datetime.fromisoformat(new_end)
    written = path.stat().st_mtime_ns
    assert follower.apply(new_end) is False  # the same answer again: nothing rewritten
    assert path.stat().st_mtime_ns == written
    assert follower.apply("not a time") is False and written_expiry(path) == dt.datetime.fromisoformat(new_end)


def test_lifetime_expiry_of_an_instance_whose_credentials_are_gone_gets_a_fresh_configuration(tmp_path):
    env = instance_environ(tmp_path, minutes_left=30)
    path = use_instance_config(env)
    for directory in session_dirs(tmp_path):
        for file in directory.iterdir():
            file.unlink()
    new_end = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    move_expiry(new_end, env)
    ca = Path(yaml.safe_load(path.read_text())["distributed"]["comm"]["tls"]["ca-file"])
    assert ca.exists() and written_expiry(path) == new_end


def test_lifetime_expiry_without_dask_session_changes_only_the_environment(tmp_path):
    env = instance_environ(tmp_path, minutes_left=30)
    del env["VISA_DASK"]
    new_end = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    assert move_expiry(new_end, env) is None
    assert env["VISA_EXPIRES_AT"] == new_end.isoformat()
    assert not (tmp_path / ".config").exists()
