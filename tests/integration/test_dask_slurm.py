"""Dask on Slurm with an experiment's instance configuration, as a notebook would use it, on a real Slurm node.

The instance configuration is what :mod:`visa_hub.dask.instance` writes for alice's LoKI experiment; the
notebook code runs as alice (``sudo -u``) with the instance's environment, so its ``sbatch`` calls are hers.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import missing_peer

from hubtest import free_port, wait_until
from visa_hub.catalog import load_catalog
from visa_hub.demo import DEMO_CATALOG
from visa_hub.people import Experiment, Person
from visa_hub.policy import SpawnRequest, plan_session

pytestmark = pytest.mark.integration

USER = "alice"
EXPERIMENT = "LOKI-2026-042"


@pytest.fixture(scope="module")
def slurm():
    from peers_slurm import check_usable_by, slurm_cluster, slurm_missing

    reason = slurm_missing()
    if reason:
        missing_peer(reason)
    problem = check_usable_by(USER, modules=("dask_jobqueue", "distributed", "dask_labextension"))
    if problem:
        pytest.fail(problem, pytrace=False)
    with slurm_cluster(partition="ess", extra_partitions={"short": "MaxTime=00:10:00"}) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def catalog_file(tmp_path_factory) -> Path:
    """The demo catalog plus a LoKI profile on a partition whose time limit its walltime exceeds."""
    document = yaml.safe_load(DEMO_CATALOG.read_text())
    document["dask_profiles"].append({"name": "too-long", "partition": "short", "cores": 1, "memory_gb": 1,
                                      "walltime": "01:00:00", "max_jobs": 1})
    next(i for i in document["instruments"] if i["name"] == "LoKI")["dask_profiles"].append("too-long")
    path = tmp_path_factory.mktemp("catalog") / "catalog.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.fixture
def instance(slurm, catalog_file, tmp_path):
    """alice's instance environment for LOKI-2026-042, with its dask configuration written as at start-up."""
    now = dt.datetime.now(dt.UTC)
    experiment = Experiment(EXPERIMENT, "Self-assembly of lipid nanodiscs under shear", "LoKI",
                            now - dt.timedelta(days=1), now + dt.timedelta(days=3))
    plan = plan_session(Person(USER, "Alice", experiments=(experiment,)), SpawnRequest(EXPERIMENT),
                        load_catalog(catalog_file), now)
    home = Path(f"~{USER}").expanduser()
    dask_dir = home / f".visa-test-dask-{secrets.token_hex(4)}"
    env = {
        **plan.environment,
        **slurm.env,
        "HOME": str(home),
        "USER": USER,
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "DASK_CONFIG": str(dask_dir),
        "JUPYTERHUB_USER": USER,
        "JUPYTERHUB_SERVICE_PREFIX": f"/user/{USER}/",
    }
    written = as_alice([sys.executable, "-m", "visa_hub.dask.instance"], env)
    assert "Dask configuration for this session written" in written.stderr, written.stderr
    yield env
    slurm.cancel_all()
    subprocess.run(["rm", "-rf", str(dask_dir)], check=False)


def as_alice(cmd: list[str], env: dict[str, str], timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["sudo", "-u", USER, "env", "-i", *[f"{k}={v}" for k, v in env.items()], *cmd],
                          capture_output=True, text=True, timeout=timeout, cwd=env["HOME"], **kwargs)


def notebook(code: str, env: dict[str, str]) -> dict:
    """Run notebook code as alice; it prints one JSON object as its last line."""
    result = as_alice([sys.executable, "-c", textwrap.dedent(code)], env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_slurmcluster_has_the_experiments_default_profile_and_runs_a_computation(instance, slurm):
    out = notebook("""
        import json, subprocess
        from dask_jobqueue import SLURMCluster
        from distributed import Client

        cluster = SLURMCluster()          # nothing else: the instance configuration decides
        cluster.scale(2)
        client = Client(cluster)
        client.wait_for_workers(2, timeout=120)
        total = client.submit(sum, client.map(lambda x: x * x, range(100))).result()
        hosts = sorted({w["id"] for w in client.scheduler_info()["workers"].values()})
        squeue = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%i|%a|%P|%C|%m|%l|%j|%T"],
                                capture_output=True, text=True, check=True).stdout
        print(json.dumps({"total": total, "workers": len(client.scheduler_info()["workers"]),
                          "squeue": squeue.split(), "dashboard": cluster.dashboard_link,
                          "script": cluster.job_script()}))
        client.close(); cluster.close()
    """, instance)
    assert out["total"] == sum(x * x for x in range(100))
    assert out["workers"] == 2
    jobs = [line.split("|") for line in out["squeue"]]
    assert len(jobs) == 2, jobs
    for _, account, partition, cpus, memory, limit, name, state in jobs:
        assert account == EXPERIMENT.lower()  # Slurm keeps account names in lower case
        assert (partition, cpus, memory, limit, state) == ("ess", "2", "4G", "2:00:00", "RUNNING")
        assert name == f"dask-{EXPERIMENT}"
    assert f"#SBATCH -A {EXPERIMENT}" in out["script"] and sys.executable in out["script"]
    assert out["dashboard"].startswith(f"/user/{USER}/visa-dask/") and out["dashboard"].endswith("/status")
    wait_until(lambda: not slurm.live_jobs(USER), 30, "the worker jobs to end after cluster.close()")


def test_another_allowed_profile_by_name_and_refusals_with_reasons(instance):
    out = notebook("""
        import json
        from visa_hub.dask import ProfileError, cluster, profiles

        refusals = {}
        bigmem = cluster("bigmem")
        script = bigmem.job_script()
        for name, attempt in {
            "gpu": lambda: cluster("gpu"),                       # ODIN's profile, not LoKI's
            "override": lambda: cluster("standard", cores=64),  # resources come from the profile
            "too many jobs": lambda: bigmem.scale(jobs=5),      # bigmem allows 4 jobs
        }.items():
            try:
                attempt()
                refusals[name] = None
            except ProfileError as exc:
                refusals[name] = str(exc)
        bigmem.close()
        print(json.dumps({"profiles": sorted(profiles()), "script": script, "refusals": refusals}))
    """, instance)
    assert out["profiles"] == ["bigmem", "standard", "too-long"]
    assert "#SBATCH --cpus-per-task=4" in out["script"] and "#SBATCH --mem=32G" in out["script"]
    assert "--nworkers 2" in out["script"]  # processes per job
    assert out["refusals"]["gpu"] == (
        f"Dask profile 'gpu' is not available for experiment {EXPERIMENT}. Choose one of: standard, bigmem, too-long."
    )
    assert "cores is set by Dask profile 'standard'" in out["refusals"]["override"]
    assert "allows at most 4 worker jobs (8 workers); you asked for 5 jobs" in out["refusals"]["too many jobs"]


def test_a_worker_job_that_never_starts_says_why(instance, slurm):
    out = notebook("""
        import json, time
        from visa_hub.dask import cluster

        c = cluster("too-long")      # walltime 1 h on a partition that allows 10 minutes
        c.scale(1)
        deadline = time.monotonic() + 60
        while not c.why_pending() and time.monotonic() < deadline:
            time.sleep(0.5)
        why = c.why_pending()
        c.close()
        print(json.dumps({"why": why}))
    """, instance)
    assert "Dask worker job" in out["why"] and "(profile too-long) is waiting:" in out["why"]
    assert "than the partition allows" in out["why"], out["why"]


def test_labextension_new_cluster_uses_the_session_profile(instance, slurm, tmp_path):
    """dask-labextension's REST API (what its 'New cluster' button calls) on a Jupyter server run as alice."""
    port, token = free_port(), secrets.token_hex(16)
    env = {**instance, "JUPYTER_CONFIG_DIR": str(Path(instance["DASK_CONFIG"]) / "jupyter"),
           "JUPYTER_RUNTIME_DIR": str(Path(instance["DASK_CONFIG"]) / "runtime")}
    command = [str(Path(sys.executable).with_name("jupyter-server")), f"--port={port}", "--ip=127.0.0.1",
               "--no-browser", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={env['HOME']}"]
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(["sudo", "-u", USER, "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                                   *command], stdout=log, stderr=subprocess.STDOUT, cwd=env["HOME"],
                                  start_new_session=True)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"token {token}"},
                       timeout=120)
    try:
        wait_until(lambda: api.get("/api/status").status_code == 200, 60, "jupyter server")
        created = api.put("/dask/clusters")
        assert created.status_code == 200, created.text + (tmp_path / "server.log").read_text()[-2000:]
        model = created.json()
        assert model["dashboard_link"].startswith(f"/user/{USER}/visa-dask/")
        scaled = api.patch(f"/dask/clusters/{model['id']}", json={"workers": 1})
        assert scaled.status_code == 200, scaled.text
        running = wait_until(lambda: [j for j in slurm.live_jobs(USER) if j[4] == "RUNNING"], 60,
                             "the labextension's worker job to run")
        assert running[0][2:4] == [EXPERIMENT.lower(), "ess"] and running[0][5:8] == ["2", "4G", "2:00:00"]
        wait_until(lambda: api.get(f"/dask/clusters/{model['id']}").json()["workers"] == 1, 60,
                   "the worker to join the cluster")
        assert api.delete(f"/dask/clusters/{model['id']}").status_code == 204
        wait_until(lambda: not slurm.live_jobs(USER), 30, "the worker job to end")
    finally:
        api.close()
        os.killpg(server.pid, 15)
        server.wait(30)
