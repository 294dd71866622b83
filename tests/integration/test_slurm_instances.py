"""Several Slurm instances of one person, side by side: each its own job, account, Dask configuration and Lab.

The cluster runs as a site runs it (tests/peers_slurm.py): slurmdbd with accounting enforced, ``PrivateData=jobs``,
one account per experiment made by ``visa-hub slurm-sync`` from the demo User Office and catalog; the hub runs as
the non-root service user ``visahub``. alice (a distinct unix user) starts two named instances through the hub's
REST API, as the dashboard does: ``loki-2026-042`` for LOKI-2026-042 (LoKI) and ``odin-2026-007`` for
ODIN-2026-007 (ODIN). The app catalog is the example one shipped in ``containers/``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml
from conftest import missing_peer, slurm_peer

from hubtest import REPO, HubProcess, UserSession, process_environ, wait_until
from visa_hub.demo import DEMO_CATALOG, DEMO_USER_OFFICE

pytestmark = pytest.mark.integration

USER = "alice"
LOKI, ODIN = "LOKI-2026-042", "ODIN-2026-007"
INSTANCES = {"loki-2026-042": LOKI, "odin-2026-007": ODIN}
APP_CATALOG = REPO / "containers" / "catalog.example.yaml"


@pytest.fixture(scope="module")
def slurm():
    yield from slurm_peer(USER, ("batchspawner", "jupyterhub", "dask_jobqueue", "ipykernel"), partition="ess")


@pytest.fixture
def hub(slurm):
    """A real hub as ``visahub`` on this cluster, keeping instances across its restarts; stopped after."""
    if not (HubProcess.config_file.parent / "node_modules/.bin/configurable-http-proxy").exists():
        missing_peer("configurable-http-proxy not installed (run `npm install`)")
    hub = slurm.hub(keep_servers=True, VISA_APPS_CATALOG=str(APP_CATALOG))
    try:
        yield hub.start()
    finally:
        hub.stop()
        slurm.cancel_all()
        shutil.rmtree(hub.data_dir, ignore_errors=True)


class Person(UserSession):
    """Her HTTP session with the hub and her named instances."""

    def servers(self) -> dict[str, dict]:
        response = self.http.get(f"/hub/api/users/{self.username}", headers=self._hub_xsrf())
        response.raise_for_status()
        return response.json().get("servers", {})

    def start(self, name: str, **options: str) -> None:
        response = self.http.post(f"/hub/api/users/{self.username}/servers/{name}", json=options,
                                  headers=self._hub_xsrf())
        assert response.status_code in (201, 202), response.text

    def stop(self, name: str) -> None:
        response = self.http.delete(f"/hub/api/users/{self.username}/servers/{name}", headers=self._hub_xsrf())
        assert response.status_code in (202, 204), response.text
        wait_until(lambda: name not in self.servers(), 60, f"instance {name} to stop")

    def wait_ready(self, *names: str, timeout: float = 120) -> dict[str, dict]:  # type: ignore[override]
        def ready():
            servers = self.servers()
            for name in names:
                if name not in servers:
                    raise RuntimeError(f"{name} is gone (spawn failed?):\n{self.hub.log_tail()}")
            return servers if all(servers[n].get("ready") for n in names) else None

        return wait_until(ready, timeout, f"{self.username}'s instances {names} to be ready", interval=0.5)

    def get(self, name: str, path: str):
        return self.http.get(f"/user/{self.username}/{name}/{path}")

    def post(self, name: str, path: str, body: dict):
        token = self.http.cookies.get("_xsrf", path=f"/user/{self.username}/{name}/")
        return self.http.post(f"/user/{self.username}/{name}/{path}", json=body,
                              headers={"X-XSRFToken": token} if token else {})


def jobs_by_instance(slurm) -> dict[str, dict[str, str]]:
    """alice's live jobs as the hub's user sees them (its one squeue per poll), by instance job name."""
    out = slurm.run("squeue", "-h", "-t", "all", "-o", "%i|%u|%a|%T|%j", user=slurm.hub_user).stdout
    jobs = {}
    for line in out.splitlines():
        job_id, user, account, state, name = line.split("|")
        if user == USER and state in ("PENDING", "CONFIGURING", "RUNNING"):
            jobs[name] = {"id": job_id, "account": account, "state": state}
    return jobs


def kernel_environ(job_id: str, kernel_id: str) -> dict[str, str]:
    """The environment of a kernel of Slurm job ``job_id`` (read as root from /proc)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        env = process_environ(int(proc.name))
        if b"ipykernel_launcher" in cmdline and kernel_id.encode() in cmdline and env.get("SLURM_JOB_ID") == job_id:
            return env
    return {}


def in_kernel_environment(environ: dict[str, str], code: str, timeout: float = 180) -> dict:
    """Run ``code`` as alice in a kernel's environment (what her notebook in that Lab gets); its JSON output."""
    env = {k: v for k, v in environ.items() if k not in ("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN")}
    result = subprocess.run(["sudo", "-u", USER, "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                             sys.executable, "-c", textwrap.dedent(code)],
                            capture_output=True, text=True, timeout=timeout, cwd=env.get("HOME", "/"))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


DASK_SEEN = """
    import json, os
    import dask.config
    print(json.dumps({"DASK_CONFIG": os.environ.get("DASK_CONFIG"),
                      "account": dask.config.get("jobqueue.slurm.account", None),
                      "profiles": sorted(dask.config.get("visa-hub.dask.profiles", {})),
                      "ca": dask.config.get("distributed.comm.tls.ca-file", None)}))
"""

# plain dask-jobqueue in her notebook: the instance's configuration decides account, profile and TLS; the worker
# job is submitted from inside the Slurm job, where sbatch passes on only the variables the job was given
A_WORKER = """
    import json, subprocess
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    cluster = SLURMCluster()
    cluster.scale(1)
    with Client(cluster) as client:
        client.wait_for_workers(1, timeout=120)
        total = client.submit(sum, [1, 2, 3]).result()
        workers = [w["name"] for w in client.scheduler_info()["workers"].values()]
        squeue = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%j|%a|%T"], capture_output=True, text=True,
                                check=True).stdout.split()
    cluster.close()
    print(json.dumps({"total": total, "workers": workers, "address": cluster.scheduler_address,
                      "jobs": [line.split("|") for line in squeue if line.startswith("dask-")]}))
"""


def new_session_dirs(name: str, since: float) -> list[Path]:
    """TLS session directories of instance ``name`` in alice's home made since ``since``."""
    directory = Path(f"~{USER}").expanduser() / ".visa" / "dask" / "instances" / name
    return [d for d in directory.glob("session-*") if d.stat().st_mtime >= since - 1]


def test_isolation_two_slurm_instances_of_alice_side_by_side_stop_one_and_reattach(hub, slurm):
    alice = Person(hub, USER)
    assert alice.login().status_code == 200
    began = time.time()
    alice.start("loki-2026-042", experiment=LOKI, flavour="small")
    alice.start("odin-2026-007", experiment=ODIN, flavour="medium", lifetime_hours="12")
    alice.wait_ready(*INSTANCES)

    # two jobs, named after their instances, each accounted to its own experiment (what the hub's squeue sees)
    jobs = jobs_by_instance(slurm)
    assert set(jobs) == {f"jupyterlab-{USER}-{name}" for name in INSTANCES}, jobs
    job_of = {name: jobs[f"jupyterlab-{USER}-{name}"] for name in INSTANCES}
    for name, experiment in INSTANCES.items():
        assert job_of[name]["account"] == experiment.lower() and job_of[name]["state"] == "RUNNING", job_of
    assert job_of["loki-2026-042"]["id"] != job_of["odin-2026-007"]["id"]

    seen, profiles = {}, {}
    for name, experiment in INSTANCES.items():
        lab = alice.get(name, "lab")  # through the hub's proxy, into this job's server
        assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.text[:500]
        session = alice.get(name, "visa/api/session").json()
        assert session["experiment"]["code"] == experiment

        # the app kernels of the site's catalog, for this instance's instrument (visa-hub's Jupyter config)
        specs = alice.get(name, "api/kernelspecs").json()["kernelspecs"]
        assert "python3" in specs and "visa-app-julia-fit-1.0" in specs, sorted(specs)
        assert ("visa-app-scipp-reduce-26.10" in specs) == (experiment == LOKI), sorted(specs)  # LoKI and DREAM

        # a kernel of this Lab reads this instance's Dask configuration: its own account and profiles
        kernel = alice.post(name, "api/kernels", {"name": "python3"})
        assert kernel.status_code == 201, kernel.text
        job_id, kernel_id = job_of[name]["id"], kernel.json()["id"]
        environ = wait_until(lambda j=job_id, k=kernel_id: kernel_environ(j, k), 30, f"the kernel of {name}")
        seen[name] = in_kernel_environment(environ, DASK_SEEN)
        assert seen[name]["DASK_CONFIG"] == str(Path(f"~{USER}").expanduser() / ".config/dask/instances" / name)
        assert seen[name]["account"] == experiment, seen[name]
        written = yaml.safe_load((Path(seen[name]["DASK_CONFIG"]) / "visa-hub.yaml").read_text())
        assert written["jobqueue"]["slurm"]["account"] == experiment
        profiles[name] = sorted(written["visa-hub"]["dask"]["profiles"])
        # and a Dask worker started from there is accounted to this instance's experiment, over TLS
        worker = in_kernel_environment(environ, A_WORKER)
        assert worker["total"] == 6 and len(worker["workers"]) == 1 and worker["address"].startswith("tls://")
        assert [f"dask-{experiment}", experiment.lower(), "RUNNING"] in worker["jobs"], worker["jobs"]
        # one start, one set of credentials: nothing written twice, no unused session directory left behind
        assert len(new_session_dirs(name, began)) == 1, new_session_dirs(name, began)
    # (the profiles from her instance's own file: on this shared test machine, other checkouts' tests may write
    # alice's ~/.config/dask/visa-hub.yaml as earlier versions did, which dask merges in below the instance's)
    assert profiles == {"loki-2026-042": ["bigmem", "standard"], "odin-2026-007": ["gpu", "standard"]}
    assert seen["loki-2026-042"]["ca"] != seen["odin-2026-007"]["ca"]

    # a hub restart re-attaches both: the same jobs, Labs answering
    hub.restart()
    alice = Person(hub, USER)
    assert alice.login().status_code == 200
    alice.wait_ready(*INSTANCES, timeout=60)
    assert {n: j["id"] for n, j in jobs_by_instance(slurm).items()} == \
        {f"jupyterlab-{USER}-{n}": job_of[n]["id"] for n in INSTANCES}
    for name in INSTANCES:
        assert alice.get(name, "lab").status_code == 200  # a new login: Lab signs her in to each server again
        assert alice.get(name, "visa/api/session").json()["experiment"]["code"] == INSTANCES[name]

    # stop LOKI's: its job is cancelled; ODIN's keeps running, also over the next polls
    alice.stop("loki-2026-042")
    assert [j[4] for j in slurm.jobs() if j[0] == job_of["loki-2026-042"]["id"]] == ["CANCELLED"]
    time.sleep(5)  # the hub polls every 2 s in these tests
    assert alice.servers()["odin-2026-007"]["ready"]
    assert jobs_by_instance(slurm) == {f"jupyterlab-{USER}-odin-2026-007": job_of["odin-2026-007"]}
    assert alice.get("odin-2026-007", "api/status").status_code == 200  # signed in since the restart
    log = hub.log_text()
    assert "not visible to the hub's squeue" not in log  # one squeue served both instances' polls
    alice.stop("odin-2026-007")
    assert not slurm.live_jobs(USER)


def _catalog_with_quotas(users: int, staff: int) -> dict:
    document = yaml.safe_load(DEMO_CATALOG.read_text())
    document["quotas"]["users"]["instances"] = users
    document["quotas"]["staff"]["instances"] = staff
    return document


def max_jobs(slurm, account: str, user: str) -> str:
    return slurm.run("sacctmgr", "-nP", "show", "associations", "where", f"account={account}", f"user={user}",
                     "format=maxjobs,maxsubmit").stdout.strip()


def test_isolation_slurm_sync_max_jobs_follow_the_catalogs_instance_quota(slurm):
    # the demo catalog: users 2 instances, staff 4; LoKI's largest Dask profile allows 8 jobs
    assert max_jobs(slurm, LOKI.lower(), "alice") == "10|10"
    assert max_jobs(slurm, LOKI.lower(), "carl") == "12|12"  # staff (and the experiment's local contact)
    site = Path(tempfile.mkdtemp(prefix="visa-site-"))
    site.chmod(0o755)
    try:
        (site / "catalog.yaml").write_text(yaml.safe_dump(_catalog_with_quotas(users=3, staff=5)))
        shutil.copy(DEMO_USER_OFFICE, site / "useroffice.yaml")
        for file in site.iterdir():
            os.chmod(file, 0o644)
        changed = slurm.sync(site / "catalog.yaml", site / "useroffice.yaml").stderr
        assert f"Slurm account {LOKI.lower()}: limits of alice set to MaxJobs=MaxSubmitJobs=11" in changed, changed
        assert max_jobs(slurm, LOKI.lower(), "alice") == "11|11"
        assert max_jobs(slurm, LOKI.lower(), "bob") == "11|11"
        assert max_jobs(slurm, LOKI.lower(), "carl") == "13|13"
        assert max_jobs(slurm, ODIN.lower(), "alice") == "11|11"  # ODIN: 3 + standard's 8
    finally:
        slurm.sync()  # the demo catalog again, for the other tests of this module
        shutil.rmtree(site, ignore_errors=True)
    assert max_jobs(slurm, LOKI.lower(), "alice") == "10|10"
