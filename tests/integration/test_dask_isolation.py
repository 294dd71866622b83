"""Dask locked to its owner, with distinct unix users and real Slurm worker jobs (issue 10, "Dask locked").

alice and bob are both members of LOKI-2026-042 (bob as co-proposer), so bob is exactly the person who could
learn the address of alice's cluster. Each has an instance environment of their own, written as at instance
start (:mod:`visa_hub.dask.instance`), and every notebook runs as the real unix user (``sudo -u``):

- alice's cluster (plain ``SLURMCluster()``: the instance configuration decides) computes on a Slurm worker job;
  bob, who knows its address, is refused over TLS with his own session's credentials and with a certificate he
  made himself, and over plain TCP; he cannot read her credentials nor connect to her dashboard, which listens on
  no TCP port at all; another process of alice's connects and computes;
- through a real hub (Slurm backend: Lab runs as alice in a Slurm job), dask-labextension's "New cluster" in
  alice's Lab: her dashboard link opens for her through her server (Chromium draws it, live over its websocket);
  bob's browser session and his API token get 403 there;
- worker jobs end by the session's expiry (squeue), even a job that asks for longer; near the expiry the person
  gets a sentence instead of a job.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import missing_peer

from hubtest import HubProcess, UserSession, wait_until
from visa_hub.catalog import load_catalog
from visa_hub.demo import DEMO_CATALOG
from visa_hub.people import Experiment, Person
from visa_hub.policy import SpawnRequest, plan_session

pytestmark = pytest.mark.integration

EXPERIMENT = "LOKI-2026-042"  # alice's experiment in the demo User Office; bob is its co-proposer
PYTHON = sys.executable


@pytest.fixture(scope="module")
def slurm():
    from peers_slurm import check_usable_by, slurm_cluster, slurm_missing

    reason = slurm_missing()
    if reason:
        missing_peer(reason)
    for user in ("alice", "bob"):
        problem = check_usable_by(user, modules=("dask_jobqueue", "distributed", "dask_labextension",
                                                 "cryptography"))
        if problem:
            pytest.fail(problem, pytrace=False)
    with slurm_cluster(partition="ess") as cluster:
        yield cluster


# -- instances and notebooks as the real unix users ------------------------------------------------------------
@pytest.fixture
def instance_env(slurm):
    """Factory: ``instance_env(user, lifetime_hours)``; the dask configuration directories are removed after."""
    made: list[dict[str, str]] = []

    def make(user: str, lifetime_hours: float) -> dict[str, str]:
        made.append(write_instance(user, slurm, lifetime_hours))
        return made[-1]

    yield make
    for env in made:
        subprocess.run(["rm", "-rf", env["DASK_CONFIG"]], check=False)


def write_instance(user: str, slurm, lifetime_hours: float) -> dict[str, str]:
    """``user``'s instance environment for LOKI-2026-042, its dask configuration written as at start-up."""
    now = dt.datetime.now(dt.UTC)
    experiment = Experiment(EXPERIMENT, "Self-assembly of lipid nanodiscs under shear", "LoKI",
                            now - dt.timedelta(days=1), now + dt.timedelta(days=3))
    plan = plan_session(Person(user, user.title(), experiments=(experiment,)),
                        SpawnRequest(EXPERIMENT, lifetime_hours=lifetime_hours), load_catalog(DEMO_CATALOG), now)
    home = Path(f"~{user}").expanduser()
    env = {
        **plan.environment,
        **slurm.env,
        "HOME": str(home),
        "USER": user,
        "PATH": f"{Path(PYTHON).parent}:/usr/local/bin:/usr/bin:/bin",
        "DASK_CONFIG": str(home / f".visa-test-dask-{secrets.token_hex(4)}"),
        "JUPYTERHUB_USER": user,
        "JUPYTERHUB_SERVICE_PREFIX": f"/user/{user}/",
    }
    written = run_as(user, env, [PYTHON, "-m", "visa_hub.dask.instance"])
    assert "Dask configuration for this session written" in written.stderr, written.stderr
    return env


def sudo(user: str, env: dict[str, str], cmd: list[str]) -> list[str]:
    return ["sudo", "-u", user, "env", "-i", *[f"{k}={v}" for k, v in env.items()], *cmd]


def run_as(user: str, env: dict[str, str], cmd: list[str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run(sudo(user, env, cmd), capture_output=True, text=True, timeout=timeout, cwd=env["HOME"])


def notebook(user: str, env: dict[str, str], code: str, *args: str, timeout: float = 180) -> tuple[dict, str]:
    """Run notebook code as ``user``; the JSON object it prints last, and its stderr."""
    result = run_as(user, env, [PYTHON, "-c", textwrap.dedent(code), *args], timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1]), result.stderr


def session_files(env: dict[str, str]) -> list[str]:
    """The instance's dask configuration and the TLS files it names (read as root)."""
    path = Path(env["DASK_CONFIG"]) / "visa-hub.yaml"
    config = yaml.safe_load(path.read_text())
    tls = config["distributed"]["comm"]["tls"]
    logs = sorted(Path(config["jobqueue"]["slurm"]["log-directory"]).glob("*.err"))
    return [str(path), tls["ca-file"], tls["client"]["cert"], tls["client"]["key"], *map(str, logs[-1:])]


def tcp_listeners(port: int) -> list[str]:
    """Local addresses (hex, as the kernel lists them) with a TCP socket listening on ``port``."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                found.append(local)
    return found


def listening_ports_of(pid: int) -> set[int]:
    """TCP ports process ``pid`` listens on (its socket inodes matched in the kernel's tables)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd)
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def outward_address() -> str:
    """An address of this machine that is not loopback (where other machines would connect)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        return probe.getsockname()[0]


ALICE_CLUSTER = """
    import json, os, sys
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    cluster = SLURMCluster()               # nothing else: the instance configuration decides
    cluster.scale(1)
    client = Client(cluster)
    client.wait_for_workers(1, timeout=120)
    total = client.submit(sum, client.map(lambda x: x * x, range(100))).result()
    print(json.dumps({"address": cluster.scheduler_address, "link": cluster.dashboard_link, "total": total,
                      "dashboard_port": cluster.scheduler_info["services"]["dashboard"],
                      "worker_pids": client.run(os.getpid)}), flush=True)
    sys.stdin.readline()                   # others try their luck meanwhile
    after = client.submit(sum, client.map(lambda x: x + 1, range(10))).result()
    print(json.dumps({"after": after}), flush=True)
    client.close(); cluster.close()
"""

BOB_TRIES = """
    import json, socket, sys
    from distributed import Client
    from distributed.security import Security

    address, dashboard_port, dashboard_socket, outward = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    files = sys.argv[5:]
    tried = {}

    def attempt(name, action):
        try:
            action()
            tried[name] = "it worked"
        except Exception as exc:  # what bob sees
            tried[name] = f"{type(exc).__name__}: {exc}"[:400]

    def compute(address, **kwargs):
        with Client(address, timeout=15, **kwargs) as client:
            client.submit(sum, [1, 2]).result(timeout=15)

    attempt("his own session's TLS", lambda: compute(address))
    attempt("a certificate he made", lambda: compute(address, security=Security.temporary()))
    attempt("plain TCP", lambda: compute(address.replace("tls://", "tcp://"),
                                         security=Security(require_encryption=False)))
    for path in files:
        attempt(f"read {path}", lambda path=path: open(path, "rb").read())
    attempt("dashboard socket", lambda: socket.socket(socket.AF_UNIX).connect(dashboard_socket))
    for host in ("127.0.0.1", outward):
        attempt(f"dashboard TCP {host}", lambda host=host: socket.create_connection((host, dashboard_port), 5))
    print(json.dumps(tried))
"""

ALICE_AGAIN = """
    import json, sys
    from distributed import Client

    with Client(sys.argv[1], timeout=30) as client:   # her configuration: her session's credentials
        total = client.submit(sum, client.map(lambda x: x * 2, range(10))).result()
        print(json.dumps({"total": total, "workers": len(client.scheduler_info()["workers"])}))
"""


def stop_notebook(process: subprocess.Popen) -> None:
    """End a notebook started with ``sudo`` (a signal to sudo alone would leave its child running)."""
    if process.poll() is not None:
        return
    with contextlib.suppress(OSError, ValueError):
        process.stdin.close()  # it was waiting for a line: it closes its cluster and exits
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)  # its own session: sudo and the notebook
        process.wait()


def test_isolation_bob_cannot_use_alices_cluster_nor_reach_her_dashboard_while_she_computes(slurm, instance_env):
    alice_env, bob_env = instance_env("alice", 8), instance_env("bob", 8)
    alice = subprocess.Popen(sudo("alice", alice_env, [PYTHON, "-c", textwrap.dedent(ALICE_CLUSTER)]),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=alice_env["HOME"], start_new_session=True)
    try:
        line = alice.stdout.readline()
        assert line, alice.stderr.read()[-3000:]
        cluster = json.loads(line)
        assert cluster["total"] == sum(x * x for x in range(100))
        assert cluster["address"].startswith("tls://")
        port = cluster["dashboard_port"]
        assert cluster["link"] == f"/user/alice/visa-dask/{port}/status"
        dashboard_socket = Path("~alice/.visa/dask/run").expanduser() / f"{port}.sock"
        assert dashboard_socket.is_socket() and dashboard_socket.owner() == "alice"
        assert dashboard_socket.parent.stat().st_mode & 0o777 == 0o700
        assert tcp_listeners(port) == []  # the dashboard listens on no TCP port, loopback or other
        for address, pid in cluster["worker_pids"].items():  # the worker job (on this node): TLS comm port only
            assert listening_ports_of(pid) == {int(address.rsplit(":", 1)[1])}, address

        alice_files = session_files(alice_env)
        tried, _ = notebook("bob", bob_env, BOB_TRIES, cluster["address"], str(port), str(dashboard_socket),
                            outward_address(), *alice_files)
        assert not [name for name, outcome in tried.items() if outcome == "it worked"], tried
        for name in ("his own session's TLS", "a certificate he made"):  # her scheduler trusts only her CA
            assert "TLS certificate does not match" in tried[name], tried[name]
        assert tried["plain TCP"].startswith(("CommClosedError", "OSError", "TimeoutError")), tried["plain TCP"]
        for path in alice_files:
            assert tried[f"read {path}"].startswith("PermissionError"), tried
        assert tried["dashboard socket"].startswith("PermissionError"), tried
        assert all(tried[f"dashboard TCP {host}"].startswith("ConnectionRefusedError")
                   for host in ("127.0.0.1", outward_address())), tried

        again, _ = notebook("alice", alice_env, ALICE_AGAIN, cluster["address"])
        assert again == {"total": sum(x * 2 for x in range(10)), "workers": 1}

        alice.stdin.write("done\n")
        alice.stdin.flush()
        assert json.loads(alice.stdout.readline()) == {"after": sum(x + 1 for x in range(10))}
        assert alice.wait(60) == 0
    finally:
        stop_notebook(alice)
        slurm.cancel_all()
    assert not dashboard_socket.exists()  # gone with the scheduler


WALLTIMES = """
    import json, subprocess, time
    from dask_jobqueue import SLURMCluster
    from visa_hub.dask import cluster

    session = cluster()                          # the default profile: 2 hours of walltime
    session.scale(1)
    plain = SLURMCluster(walltime="02:00:00")    # asks for 2 hours outright
    plain.scale(1)
    deadline, jobs = time.monotonic() + 90, []
    while time.monotonic() < deadline:
        out = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%i|%T|%l|%e"], capture_output=True, text=True,
                             check=True).stdout
        jobs = [line.split("|") for line in out.split()]
        if len(jobs) == 2 and all(job[1] == "RUNNING" for job in jobs):
            break
        time.sleep(1)
    print(json.dumps({"jobs": jobs, "script": session.job_script(), "plain_script": plain.job_script()}))
    session.close(); plain.close()
"""

TOO_LATE = """
    import json
    from visa_hub.dask import ProfileError, cluster

    try:
        cluster().scale(1)
        print(json.dumps({"refused": None}))
    except ProfileError as exc:
        print(json.dumps({"refused": str(exc)}))
"""


def slurm_minutes(limit: str) -> float:
    """squeue's time limit (``29:00``, ``1:30:00``, ``1-00:00:00``) in minutes."""
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    while len(parts) < 3:
        parts.insert(0, 0)
    return int(days or 0) * 1440 + parts[0] * 60 + parts[1] + parts[2] / 60


def test_isolation_worker_jobs_end_by_the_sessions_expiry(slurm, instance_env):
    env = instance_env("alice", 0.5)  # a 30-minute session; the default profile's walltime is 2 hours
    expires = dt.datetime.fromisoformat(env["VISA_EXPIRES_AT"])
    try:
        out, stderr = notebook("alice", env, WALLTIMES)
    finally:
        slurm.cancel_all()
    assert len(out["jobs"]) == 2 and {job[1] for job in out["jobs"]} == {"RUNNING"}, out["jobs"]
    left = (expires - dt.datetime.now(dt.UTC)).total_seconds() / 60
    for job_id, _, limit, end in out["jobs"]:
        assert slurm_minutes(limit) <= 30 and slurm_minutes(limit) < left + 1, (job_id, limit, left)
        ends = dt.datetime.fromisoformat(end).astimezone()  # squeue prints local time
        assert ends <= expires, f"worker job {job_id} ends at {ends}, after the session ({expires})"
    assert "worker walltime cut from 02:00:00 to 00:2" in stderr, stderr  # the log line says so
    assert "#SBATCH -t 00:2" in out["script"] and "#SBATCH --deadline=" in out["script"]
    assert "#SBATCH -t 02:00:00" in out["plain_script"]  # asked for 2 h: Slurm cut it at the deadline

    soon = instance_env("alice", 0.05)  # 3 minutes left
    refused, _ = notebook("alice", soon, TOO_LATE)
    assert refused["refused"].startswith("This session ends at "), refused
    assert "too soon to start Dask workers" in refused["refused"]
    assert not slurm.live_jobs("alice")  # nothing was submitted


# -- the dashboard through the hub --------------------------------------------------------------------------
@pytest.fixture
def slurm_hub(slurm):
    """A real hub with the Slurm backend, run as the site's hub service user (see peers_slurm)."""
    if not (HubProcess.config_file.parent / "node_modules/.bin/configurable-http-proxy").exists():
        missing_peer("configurable-http-proxy not installed (run `npm install`)")
    hub = slurm.hub(partition="ess", extra_config="c.Spawner.start_timeout = 120\n")
    yield hub.start()
    hub.stop()
    slurm.cancel_all()
    shutil.rmtree(hub.data_dir, ignore_errors=True)


def browser_page(browser, session: UserSession):
    """A browser context of its own holding the cookies of ``session`` (as if she had logged in there)."""
    context = browser.new_context()
    context.add_cookies([{"name": c.name, "value": c.value, "domain": "127.0.0.1", "path": c.path or "/"}
                         for c in session.http.cookies.jar])
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def test_isolation_dashboard_opens_for_the_owner_only_through_her_server(slurm_hub, slurm, browser):
    hub = slurm_hub
    alice, bob = UserSession(hub, "alice"), UserSession(hub, "bob")
    try:
        assert alice.login().status_code == 200
        response = alice.submit_spawn_form(experiment=EXPERIMENT, flavour="small", lifetime_hours="0.5")
        assert response.status_code == 200, response.text[:2000]
        alice.wait_ready(timeout=120)
        lab_job = [j for j in slurm.jobs("%i|%u|%a|%P|%T|%C|%m|%l|%j|%r|%e") if j[1] == "alice"
                   and j[4] == "RUNNING" and not j[8].startswith("dask-")]
        assert len(lab_job) == 1, slurm.jobs()

        # dask-labextension's "New cluster", in alice's Lab, as its REST API is called from her browser
        assert alice.lab().status_code == 200  # her browser has her server's cookies now
        api = "/user/alice/dask/clusters"
        created = alice.http.put(api, headers=alice._server_xsrf())
        assert created.status_code == 200, created.text
        model = created.json()
        assert model["scheduler_address"].startswith("tls://")
        link = model["dashboard_link"]
        assert link.startswith("/user/alice/visa-dask/") and link.endswith("/status"), link
        assert alice.http.patch(f"{api}/{model['id']}", json={"workers": 1},
                                headers=alice._server_xsrf()).status_code == 200
        wait_until(lambda: alice.http.get(f"{api}/{model['id']}").json()["workers"] == 1, 90,
                   "the worker of alice's cluster to join")

        mine = alice.http.get(link)
        assert mine.status_code == 200 and "Dask" in mine.text, mine.text[:500]
        plots = alice.http.get(link.replace("/status", "/individual-plots.json"))
        assert plots.status_code == 200 and "Task Stream" in "".join(plots.json())

        assert bob.login().status_code == 200
        assert bob.http.get(link).status_code == 403  # his browser session, on her server

        def with_token(session: UserSession) -> int:
            token = session.http.post(f"/hub/api/users/{session.username}/tokens", json={"note": "dashboard"},
                                      headers=session._hub_xsrf()).json()["token"]
            return httpx.get(f"{hub.url}{link}", headers={"Authorization": f"token {token}"}, timeout=30).status_code

        assert with_token(bob) == 403  # his API token
        assert with_token(alice) == 200  # hers opens it: the token path works, bob is not allowed on it

        # in their browsers: alice's dashboard draws and stays live (bokeh's websocket through her server)
        alice_page, bob_page = browser_page(browser, alice), browser_page(browser, bob)
        with alice_page.expect_websocket(lambda ws: "/visa-dask/" in ws.url and ws.url.endswith("/status/ws")):
            assert alice_page.goto(hub.url + link).status == 200
        alice_page.locator("canvas").first.wait_for()  # bokeh draws the plots it got over the websocket
        assert alice_page.title() == "Dask: Status"
        assert bob_page.goto(hub.url + link).status == 403
        assert "Dask" not in bob_page.title()

        port = int(link.split("/visa-dask/")[1].split("/")[0])
        assert tcp_listeners(port) == []  # reachable only through her server, not on any TCP port

        # the worker job ends before alice's instance does (its time limit is cut to the session's 30 minutes)
        workers = [j for j in slurm.jobs("%i|%u|%a|%P|%T|%C|%m|%l|%j|%r|%e")
                   if j[1] == "alice" and j[8].startswith("dask-") and int(j[0]) > int(lab_job[0][0])]
        assert len(workers) == 1 and workers[0][4] == "RUNNING", workers
        assert slurm_minutes(workers[0][7]) <= 30
        assert dt.datetime.fromisoformat(workers[0][10]) <= dt.datetime.fromisoformat(lab_job[0][10])

        assert alice.http.delete(f"{api}/{model['id']}", headers=alice._server_xsrf()).status_code == 204
        wait_until(lambda: not [j for j in slurm.live_jobs("alice") if j[8].startswith("dask-")], 30,
                   "the worker job to end")
        alice.stop_server()
    finally:
        alice.close()
        bob.close()
