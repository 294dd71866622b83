"""Lifetimes of instances that are Slurm jobs (the Slurm peer as a site runs it: accounting, ``PrivateData=jobs``,
the hub and its sessions service as the non-root service user): an extension raises the job's TimeLimit, one the
partition does not allow is refused with a clear message, and at expiry the job is gone.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil

import pytest
from conftest import missing_peer

from hubtest import wait_until
from lifetime_support import (  # noqa: F401  (time_limit_rule: a fixture)
    EXPERIMENT,
    SHORT_LIFETIMES,
    ServiceClient,
    expires,
    login,
    time_limit_rule,
    write_catalog,
)

pytestmark = pytest.mark.integration

LIFETIME_CONFIG = """
c.VisaSite.catalog_file = {catalog!r}
c.VisaSessions.poll_interval = 1
c.SlurmLimits.update_command = ["sudo", "-n", {scontrol!r}]
"""


@pytest.fixture(scope="module")
def slurm():
    from peers_slurm import check_usable_by, slurm_cluster, slurm_missing

    reason = slurm_missing()
    if reason:
        missing_peer(reason)
    problem = check_usable_by("alice", modules=("batchspawner", "jupyterhub"))
    if problem:
        pytest.fail(problem, pytrace=False)
    with slurm_cluster(partition="ess", extra_partitions={"short": "MaxTime=00:10:00"}) as cluster:
        yield cluster


def time_limit_minutes(slurm, job_id: str) -> int:
    """The job's TimeLimit as ``scontrol show job`` reports it, in minutes."""
    out = slurm.run("scontrol", "show", "job", job_id, "-o").stdout
    days, _, clock = re.search(r"TimeLimit=(\S+)", out).group(1).rpartition("-")
    hours, minutes, seconds = (int(p) for p in clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + minutes + (1 if seconds else 0)


def test_lifetime_slurm_extension_raises_time_limit_and_expiry_ends_the_job(slurm, time_limit_rule):  # noqa: F811
    hub = slurm.hub(partition="short")
    catalog = write_catalog(hub.data_dir, SHORT_LIFETIMES)  # in the hub's own (service user's) directory
    with hub.config_file.open("a") as config:
        config.write(LIFETIME_CONFIG.format(catalog=str(catalog), scontrol=time_limit_rule))
    hub.start()
    try:
        alice, olga = login(hub, "alice"), login(hub, "olga")
        response = alice.submit_spawn_form(experiment=EXPERIMENT, flavour="small", lifetime_hours="0.05")
        assert response.status_code == 200, response.text[:1000]
        alice.wait_ready(timeout=120)
        (job,) = slurm.live_jobs("alice")
        job_id = job[0]
        assert time_limit_minutes(slurm, job_id) == 3
        service, admin = ServiceClient(alice), ServiceClient(olga)
        view = service.wait_instance("alice")
        assert view["backend"] == "slurm"

        # within the rules: +1 minute, and the job may run that much longer
        result = service.post("api/instances/alice//extend", {"hours": 1 / 60})
        assert result["status"] == "extended"
        new_end = dt.datetime.fromisoformat(result["expires_at"])
        start = dt.datetime.fromisoformat(
            re.search(r"StartTime=(\S+)", slurm.run("scontrol", "show", "job", job_id, "-o").stdout).group(1)
        ).astimezone(dt.UTC)
        limit = time_limit_minutes(slurm, job_id)
        assert limit >= 4 and start + dt.timedelta(minutes=limit) >= new_end

        # beyond what the partition allows (10 minutes): refused, with the reason; nothing changes
        far = dt.datetime.fromisoformat(view["started"]) + dt.timedelta(minutes=20)
        refused = admin.post("api/instances/alice//expiry", {"expires_at": far.isoformat()}, expect=409)
        assert "partition 'short'" in refused["message"] and "at most 10 minutes" in refused["message"]
        assert expires(service.instance("alice")) == new_end and time_limit_minutes(slurm, job_id) == limit

        # at expiry the job is gone
        end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=15)
        admin.post("api/instances/alice//expiry", {"expires_at": end.isoformat()})
        wait_until(lambda: not slurm.live_jobs("alice"), 60, "the Slurm job to end at the instance's expiry")
        assert (dt.datetime.now(dt.UTC) - end).total_seconds() < 20
        wait_until(lambda: not alice.server_model(), 30, "the hub to see the instance stopped")
    finally:
        hub.stop()
        slurm.cancel_all()
        shutil.rmtree(hub.data_dir, ignore_errors=True)
