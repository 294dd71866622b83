"""A lifetime extension reaches Dask on a real Slurm cluster: new worker jobs may run past the old expiry.

alice's LoKI instance is a Slurm job (the Slurm peer as a site runs it: accounting, ``PrivateData=jobs``, the hub
and its sessions service as the non-root service user) with a 10-minute lifetime. In one JupyterLab kernel she
makes a Dask cluster, whose worker job ends by the instance's expiry. She extends the lifetime through the sessions
service (not through Lab: the instance learns the new expiry on its own timer). Then, in the same kernel, the
running cluster scales up — its new worker joins the scheduler (same TLS credentials) and its job may run past the
old expiry — and a new cluster in that kernel, and a plain ``SLURMCluster`` in a new kernel, are cut at the new
expiry.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from pathlib import Path

import httpx
import pytest
from conftest import missing_peer, slurm_peer

from hubtest import UserSession, wait_until
from jupyter_server_process import execute_code
from lifetime_support import ServiceClient, login, time_limit_rule, write_catalog  # noqa: F401
from visa_hub.dask.instance import written_expiry

pytestmark = pytest.mark.integration

USER = "alice"
EXPERIMENT = "LOKI-2026-042"
SERVER = "loki-2026-042"

#: 10 minutes, extended by 10 minutes at once (up to 30 minutes in all without an admin)
LIFETIMES = {
    "users": {"default": "10m", "max": "10m", "inactivity": "never"},
    "staff": {"default": "10m", "max": "10m", "inactivity": "never"},
    "warnings": ["2m"],
    "membership_grace": "1m",
    "extension": {"step": "10m", "auto": "all", "auto_up_to": "30m", "max": "60m"},
}

HUB_CONFIG = """
c.VisaSite.catalog_file = {catalog!r}
c.VisaSessions.poll_interval = 1
c.SlurmLimits.update_command = ["sudo", "-n", {scontrol!r}]
c.Spawner.environment.update({{"VISA_EXPIRY_FOLLOW_SECONDS": "2"}})
"""


@pytest.fixture(scope="module")
def slurm():
    try:
        import websocket  # noqa: F401
    except ImportError:
        missing_peer("websocket-client not installed (pip install -e .[test])")
    yield from slurm_peer(USER, ("batchspawner", "jupyterhub", "dask_jobqueue", "ipykernel"), partition="ess")


class Lab:
    """alice's JupyterLab in her instance, through the hub's proxy, with an API token of hers."""

    def __init__(self, session: UserSession, server: str):
        hub = session.hub
        response = session.http.post(f"/hub/api/users/{USER}/tokens", headers=session._hub_xsrf(),
                                     json={"note": "lifetime test", "expires_in": 1800})
        assert response.status_code in (200, 201), response.text
        self.token = response.json()["token"]
        self.base = f"{hub.url}/user/{USER}/{server}/"
        self.http = httpx.Client(headers={"Authorization": f"token {self.token}"}, timeout=60)

    def new_kernel(self) -> str:
        response = self.http.post(self.base + "api/kernels", json={"name": "python3"})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    def run(self, kernel_id: str, code: str, timeout: float = 240) -> dict:
        """Run ``code`` in the kernel (as her notebook does); the JSON object it printed last."""
        url = re.sub(r"^http", "ws", self.base) + f"api/kernels/{kernel_id}/channels"
        answers = execute_code(url, self.token, code, username=USER, timeout=timeout)
        output = "".join(content["text"] for kind, content in answers
                         if kind == "stream" and content.get("name") == "stdout")
        return json.loads(output.strip().splitlines()[-1])


def job_fields(slurm, job_id: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S*)", slurm.run("scontrol", "show", "job", job_id, "-o").stdout))


def local_time(text: str) -> dt.datetime:
    """A time as scontrol prints it (local time, no zone), in UTC."""
    return dt.datetime.fromisoformat(text).astimezone(dt.UTC)


def runs_until(slurm, job_id: str) -> dt.datetime:
    """When a running worker job must end at the latest: its start plus its time limit (scontrol)."""
    fields = job_fields(slurm, job_id)
    assert fields["JobState"] == "RUNNING", fields
    days, _, clock = fields["TimeLimit"].rpartition("-")
    hours, minutes, seconds = (int(p) for p in clock.split(":"))
    limit = dt.timedelta(days=int(days or 0), hours=hours, minutes=minutes, seconds=seconds)
    return local_time(fields["StartTime"]) + limit


def script_walltime_minutes(script: str) -> int:
    hours, minutes, _ = re.search(r"#SBATCH -t (\d+):(\d+):(\d+)", script).groups()
    return int(hours) * 60 + int(minutes)


START_CLUSTER = """
import json
from distributed import Client
from visa_hub.dask import cluster

A = cluster()                # the session's default profile; its walltime cut at the session's end
A.scale(1)
client = Client(A)
client.wait_for_workers(1, timeout=180)
print(json.dumps({"jobs": [j["job_id"] for j in A.worker_jobs()], "expires_at": A.expires_at.isoformat()}))
"""

AFTER_EXTENSION = """
import json
from dask_jobqueue import SLURMCluster

before = {j["job_id"] for j in A.worker_jobs()}
A.scale(2)                   # the running cluster, made before the extension
client.wait_for_workers(2, timeout=180)
total = client.submit(sum, client.map(lambda x: x * x, range(10))).result()
B = cluster()                # a new cluster in this same kernel
print(json.dumps({"new": sorted({j["job_id"] for j in A.worker_jobs()} - before), "total": total,
                  "workers": len(client.scheduler_info()["workers"]), "scheduler": A.scheduler_address,
                  "expires_at": A.expires_at.isoformat(), "b_script": B.job_script()}))
B.close()
"""

CLOSE = """
import json
client.close()
A.close()
print(json.dumps({"closed": True}))
"""

NEW_KERNEL = """
import json
from dask_jobqueue import SLURMCluster

print(json.dumps({"script": SLURMCluster().job_script()}))
"""


def test_lifetime_extension_lets_new_dask_worker_jobs_run_past_the_old_expiry(slurm, time_limit_rule):  # noqa: F811
    hub = slurm.hub()
    catalog = write_catalog(hub.data_dir, LIFETIMES)
    with hub.config_file.open("a") as config:
        config.write(HUB_CONFIG.format(catalog=str(catalog), scontrol=time_limit_rule))
    hub.start()
    try:
        alice = login(hub, USER)
        started = alice.http.post(f"/hub/api/users/{USER}/servers/{SERVER}", headers=alice._hub_xsrf(),
                                  json={"experiment": EXPERIMENT, "flavour": "small"})
        assert started.status_code in (201, 202), started.text

        def ready():
            servers = alice.http.get(f"/hub/api/users/{USER}", headers=alice._hub_xsrf()).json()["servers"]
            if SERVER not in servers:
                raise AssertionError(f"the instance is gone:\n{hub.log_tail()}")
            return servers[SERVER]["ready"]

        wait_until(ready, 150, "alice's Slurm instance to be ready", interval=0.5)
        service = ServiceClient(alice)
        view = service.wait_instance(USER, SERVER)
        old_end = dt.datetime.fromisoformat(view["expires_at"])
        config_file = Path(f"~{USER}").expanduser() / ".config/dask/instances" / SERVER / "visa-hub.yaml"

        # before: the worker job of her cluster ends by the session's end
        lab = Lab(alice, SERVER)
        kernel = lab.new_kernel()
        first = lab.run(kernel, START_CLUSTER)
        assert dt.datetime.fromisoformat(first["expires_at"]) == old_end
        (first_job,) = first["jobs"]
        assert runs_until(slurm, first_job) <= old_end + dt.timedelta(seconds=59)

        # she extends through the sessions service (not through Lab): the instance learns it on its own
        result = service.post(f"api/instances/{USER}/{SERVER}/extend", {"hours": 10 / 60})
        assert result["status"] == "extended", result
        new_end = dt.datetime.fromisoformat(result["expires_at"])
        assert new_end - old_end == dt.timedelta(minutes=10)
        wait_until(lambda: written_expiry(config_file) == new_end, 30,
                   "the instance to write the new expiry into its Dask configuration")
        session = lab.http.get(lab.base + "visa/api/session").json()  # and Lab's session API says so
        assert dt.datetime.fromisoformat(session["expires_at"]) == new_end

        # the same kernel: the running cluster's new worker joins (same credentials) and may run past the old end
        after = lab.run(kernel, AFTER_EXTENSION)
        assert after["workers"] == 2 and after["total"] == sum(x * x for x in range(10))
        assert after["scheduler"].startswith("tls://")
        assert dt.datetime.fromisoformat(after["expires_at"]) == new_end
        (second_job,) = after["new"]
        until = runs_until(slurm, second_job)
        assert until > old_end + dt.timedelta(minutes=5), (until, old_end)
        assert until <= new_end + dt.timedelta(seconds=59)
        assert local_time(job_fields(slurm, second_job)["Deadline"]) == new_end.replace(microsecond=0)
        lab.run(kernel, CLOSE)
        # a new cluster in that kernel is cut at the new end too
        left = (new_end - dt.datetime.now(dt.UTC)).total_seconds() / 60
        assert script_walltime_minutes(after["b_script"]) > (old_end - dt.datetime.now(dt.UTC)).total_seconds() / 60
        assert script_walltime_minutes(after["b_script"]) <= left + 1

        # a plain SLURMCluster in a kernel started now reads the new expiry from the instance's configuration
        fresh = lab.run(lab.new_kernel(), NEW_KERNEL)
        assert script_walltime_minutes(fresh["script"]) > (old_end - dt.datetime.now(dt.UTC)).total_seconds() / 60
        assert f"--deadline={new_end.astimezone().replace(tzinfo=None).isoformat(timespec='seconds')}" in \
            fresh["script"]
    finally:
        hub.stop()
        slurm.cancel_all()
        shutil.rmtree(hub.data_dir, ignore_errors=True)
