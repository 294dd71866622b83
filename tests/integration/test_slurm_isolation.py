"""Every person a separate principal on Slurm: accounts per experiment, limits Slurm enforces, a private token.

The cluster runs as a site runs it (tests/peers_slurm.py): slurmdbd with MariaDB, accounting enforced,
``PrivateData=jobs``, job scripts and environments stored. The hub runs as the non-root service user ``visahub``
with sudo rights for sbatch/squeue/scancel only. ``visa-hub slurm-sync`` made the accounts from a User Office and a
catalog of this module: LoKI's only Dask profile allows 2 worker jobs and the users' quota 2 instances, so a member
of LOKI-2026-042 may have 2 instances + 2 = 4 jobs queued or running in that account, however she submits them.

alice, bob and carl are distinct unix users: alice is in LOKI-2026-042 and ODIN-2026-007, bob only in
LOKI-2026-042, carl is staff.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import missing_peer

from hubtest import HubProcess, UserSession, wait_until
from visa_hub.demo import DEMO_CATALOG, DEMO_USER_OFFICE

pytestmark = pytest.mark.integration

LOKI, ODIN = "LOKI-2026-042", "ODIN-2026-007"
SUBMIT_REFUSED = "Job violates accounting/QOS policy"
NO_ACCOUNT = "Invalid account or account/partition combination specified"


def _catalog() -> dict:
    document = yaml.safe_load(DEMO_CATALOG.read_text())
    document["dask_profiles"].append({"name": "tiny", "partition": "ess", "cores": 1, "memory_gb": 1,
                                      "walltime": "00:30:00", "max_jobs": 2})
    loki = next(i for i in document["instruments"] if i["name"] == "LoKI")
    loki["dask_profiles"], loki["default_dask_profile"] = ["tiny"], "tiny"
    return document


def _user_office(without: tuple[str, str] | None = None, adding: tuple[str, str] | None = None) -> dict:
    """The demo User Office, optionally with one (experiment, member) removed or added as co-proposer."""
    document = yaml.safe_load(DEMO_USER_OFFICE.read_text())
    for experiment in document["experiments"]:
        members = experiment["members"]
        if without and experiment["code"] == without[0]:
            for role in members:
                members[role] = [name for name in members[role] if name != without[1]]
        if adding and experiment["code"] == adding[0]:
            members.setdefault("co-proposer", []).append(adding[1])
    return document


@pytest.fixture(scope="module")
def site():
    """A directory the hub's user can read, with this module's catalog and User Office files."""
    path = Path(tempfile.mkdtemp(prefix="visa-site-"))
    path.chmod(0o755)
    (path / "catalog.yaml").write_text(yaml.safe_dump(_catalog()))
    (path / "useroffice.yaml").write_text(yaml.safe_dump(_user_office()))
    for file in path.iterdir():
        file.chmod(0o644)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def slurm(site):
    from peers_slurm import check_usable_by, ensure_user, slurm_cluster, slurm_missing

    reason = slurm_missing()
    if reason:
        missing_peer(reason)
    for user in ("alice", "bob", "carl"):
        ensure_user(user)
    problem = check_usable_by("alice", modules=("batchspawner", "jupyterhub", "dask_jobqueue"))
    if problem:
        pytest.fail(problem, pytrace=False)
    with slurm_cluster(partition="ess") as cluster:
        print(f"Slurm peer with accounting started in {cluster.started_in:.1f} s")
        cluster.sync(site / "catalog.yaml", site / "useroffice.yaml")
        yield cluster


def sync(slurm, site, *args: str) -> str:
    result = slurm.sync(site / "catalog.yaml", site / "useroffice.yaml", *args)
    return result.stderr


def write_user_office(site: Path, document: dict) -> None:
    (site / "useroffice.yaml").write_text(yaml.safe_dump(document))


def sbatch(slurm, user: str, account: str, seconds: int = 300) -> subprocess.CompletedProcess:
    return slurm.run("sbatch", "--parsable", f"--account={account}", "--output=/dev/null", "--time=00:10:00",
                     "--mem=100M", f"--wrap=sleep {seconds}", user=user, check=False)


@pytest.fixture
def hubs(slurm, site):
    """Factory: hubs on this cluster (as visahub) with this module's catalog and User Office; stopped after."""
    if not (HubProcess.config_file.parent / "node_modules/.bin/configurable-http-proxy").exists():
        missing_peer("configurable-http-proxy not installed (run `npm install`)")
    started: list[HubProcess] = []
    # alice's instances write her Dask configuration for this module's catalog: leave her home as it was found
    dask_config = Path("~alice/.config/dask/instances/_default/visa-hub.yaml").expanduser()
    before = dask_config.read_bytes() if dask_config.exists() else None

    def start(keep_servers: bool = False, **env: str) -> HubProcess:
        hub = slurm.hub(keep_servers=keep_servers, VISA_CATALOG=str(site / "catalog.yaml"),
                        VISA_USER_OFFICE_FILE=str(site / "useroffice.yaml"), **env)
        started.append(hub)
        return hub.start()

    yield start
    for hub in started:
        hub.stop()
    slurm.cancel_all()
    for hub in started:
        shutil.rmtree(hub.data_dir, ignore_errors=True)
    if before is None:
        dask_config.unlink(missing_ok=True)
    elif dask_config.exists():
        dask_config.write_bytes(before)


def login(hub: HubProcess, user: str) -> UserSession:
    session = UserSession(hub, user)
    assert session.login().status_code == 200
    return session


def spawn(session: UserSession, experiment: str = LOKI) -> None:
    response = session.submit_spawn_form(experiment=experiment, flavour="small")
    assert response.status_code == 200, response.text[:2000]
    session.progress_messages(timeout=90)
    session.wait_ready()


def live_job(slurm, user: str) -> str:
    jobs = slurm.live_jobs(user)
    assert len(jobs) == 1, f"expected one live job of {user}, got {jobs}"
    return jobs[0][0]


def uid_of(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))


# -- the hub as a non-root service user under PrivateData=jobs ------------------------------------------------
def test_isolation_non_root_hub_spawns_polls_stops_and_reattaches_with_one_squeue(hubs, slurm):
    import pwd

    hub = hubs(keep_servers=True)
    assert uid_of(hub.proc.pid) == pwd.getpwnam(slurm.hub_user).pw_uid != 0  # the hub is not root
    alice = login(hub, "alice")
    spawn(alice)
    job_id = live_job(slurm, "alice")
    assert alice.lab().status_code == 200

    # PrivateData=jobs: bob sees nothing; the hub's user sees the experiment's job without sudo (coordinator)
    assert job_id not in slurm.run("squeue", "-h", "-o", "%i", user="bob").stdout
    assert job_id in slurm.run("squeue", "-h", "-o", "%i", user=slurm.hub_user).stdout

    hub.restart()  # re-attach: the same job, polled again by the restarted hub
    alice = login(hub, "alice")
    assert alice.server_model().get("ready"), "the restarted hub lost the running instance"
    assert alice.lab().status_code == 200 and live_job(slurm, "alice") == job_id

    alice.stop_server()
    assert [j[4] for j in slurm.jobs() if j[0] == job_id] == ["CANCELLED"]
    log = hub.log_text()
    assert "not visible to the hub's squeue" not in log  # one squeue served every poll: no per-job sudo
    assert "API token handed to Slurm job" in log


def test_isolation_hub_that_is_not_coordinator_still_follows_the_job_as_its_owner(hubs, slurm, site):
    from peers_slurm import PARENT_ACCOUNT

    accounts = ",".join((PARENT_ACCOUNT, LOKI.lower(), ODIN.lower()))
    slurm.sacctmgr("delete", "coordinator", f"names={slurm.hub_user}", f"account={accounts}")
    try:
        hub = hubs()
        alice = login(hub, "alice")
        spawn(alice)
        job_id = live_job(slurm, "alice")
        assert job_id not in slurm.run("squeue", "-h", "-o", "%i", user=slurm.hub_user).stdout  # as at such a site
        assert alice.lab().status_code == 200
        assert re.search(rf"Slurm job {job_id} of alice is not visible to the hub's squeue .* asked as alice",
                         hub.log_text())
        alice.stop_server()
        assert [j[4] for j in slurm.jobs() if j[0] == job_id] == ["CANCELLED"]
    finally:  # the administrator's one-time grant again; the sync then makes the hub coordinator of the accounts
        slurm.sacctmgr("add", "coordinator", f"account={PARENT_ACCOUNT}", f"names={slurm.hub_user}")
        sync(slurm, site)


# -- accounts and limits, however a person submits --------------------------------------------------------------
def test_isolation_bob_cannot_submit_to_alices_experiment_account(slurm):
    refused = sbatch(slurm, "bob", ODIN)
    assert refused.returncode != 0 and NO_ACCOUNT in refused.stderr, refused.stderr
    accepted = sbatch(slurm, "alice", ODIN)
    assert accepted.returncode == 0, accepted.stderr
    job_id = accepted.stdout.strip()
    try:  # and bob cannot see her job either
        assert job_id not in slurm.run("squeue", "-h", "-o", "%i", user="bob").stdout
        shown = slurm.run("scontrol", "show", "job", job_id, user="bob", check=False)
        assert shown.returncode != 0 and "Invalid job id" in shown.stderr, shown.stdout + shown.stderr
    finally:
        slurm.cancel_all()


def test_isolation_dask_profile_job_limit_holds_for_a_bare_sbatch(slurm):
    limits = slurm.run("sacctmgr", "-nP", "show", "associations", "where", f"account={LOKI.lower()}", "user=alice",
                       "format=maxjobs,maxsubmit,maxwall").stdout.strip()
    assert limits == "4|4|7-00:00:00", limits  # her quota's 2 instances + tiny's 2 workers; LoKI's 168 h sessions
    try:
        jobs = [sbatch(slurm, "alice", LOKI) for _ in range(4)]
        assert all(j.returncode == 0 for j in jobs), [j.stderr for j in jobs]
        fifth = sbatch(slurm, "alice", LOKI)
        assert fifth.returncode != 0 and SUBMIT_REFUSED in fifth.stderr, fifth.stderr
        assert len(slurm.live_jobs("alice")) == 4
        # the limit is hers, per experiment: bob in the same experiment still submits
        assert sbatch(slurm, "bob", LOKI).returncode == 0
    finally:
        slurm.cancel_all()


def test_isolation_dask_profile_job_limit_holds_for_a_plain_slurmcluster(slurm, tmp_path):
    """dask_jobqueue.SLURMCluster(account=...) from her terminal, without visa-hub's configuration or client."""
    home = Path(tempfile.mkdtemp(prefix="visa-plain-dask-", dir=Path("~alice").expanduser()))
    shutil.chown(home, "alice")
    code = textwrap.dedent(f"""
        import json, subprocess, time
        from dask_jobqueue import SLURMCluster

        cluster = SLURMCluster(account="{LOKI}", queue="ess", cores=1, memory="1GiB", processes=1,
                               walltime="00:10:00", log_directory="{home}")
        cluster.scale(jobs=6)
        most, deadline = 0, time.monotonic() + 25
        while time.monotonic() < deadline:
            out = subprocess.run(["squeue", "-h", "-u", "alice", "-o", "%i"], capture_output=True, text=True).stdout
            most = max(most, len(out.split()))
            time.sleep(0.5)
        print(json.dumps({{"most": most}}), flush=True)
        try:
            cluster.close()
        except AssertionError:  # dask-jobqueue trips over its refused jobs when closing; Slurm cancels the rest
            pass
    """)
    env = {**slurm.env, "HOME": str(home), "USER": "alice", "DASK_CONFIG": str(home / "dask"),
           "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"}
    try:
        result = subprocess.run(["sudo", "-u", "alice", "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                                 sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd=home)
        assert result.returncode == 0, result.stderr[-3000:]
        assert json.loads(result.stdout.strip().splitlines()[0])["most"] == 4, result.stderr[-3000:]
        assert "AssocMaxSubmitJobLimit" in result.stderr or SUBMIT_REFUSED in result.stderr, result.stderr[-3000:]
    finally:
        slurm.cancel_all()
        shutil.rmtree(home, ignore_errors=True)


# -- the sync ----------------------------------------------------------------------------------------------------
def test_isolation_slurm_sync_is_idempotent_removes_leavers_and_has_a_dry_run(slurm, site):
    assert "in step with the User Office, nothing to change" in sync(slurm, site)
    try:
        write_user_office(site, _user_office(without=(LOKI, "bob")))
        dry = sync(slurm, site, "--dry-run")
        assert f"[dry run] Slurm account {LOKI.lower()}: removed bob (no longer a member of {LOKI})" in dry
        assert (LOKI.lower(), "bob") in slurm.associations()  # a dry run changes nothing

        done = sync(slurm, site)
        assert f"Slurm account {LOKI.lower()}: removed bob (no longer a member of {LOKI})" in done
        assert f"Slurm account {LOKI.lower()} is bob's default account" in done  # only an admin may set another
        assert (LOKI.lower(), "bob") not in slurm.associations()
        refused = sbatch(slurm, "bob", LOKI)
        assert refused.returncode != 0 and NO_ACCOUNT in refused.stderr, refused.stderr
        assert "nothing to change" in sync(slurm, site)
    finally:
        write_user_office(site, _user_office())
        assert f"Slurm account {LOKI.lower()}: added bob (co-proposer)" in sync(slurm, site)


def test_isolation_slurm_sync_runs_as_a_managed_service_of_the_hub(hubs, slurm, site):
    hub = hubs(VISA_SLURM_SYNC_INTERVAL="1")
    try:
        write_user_office(site, _user_office(adding=(ODIN, "bob")))
        wait_until(lambda: (ODIN.lower(), "bob") in slurm.associations(), 60, "the service to add bob to ODIN")
        wait_until(lambda: f"Slurm account {ODIN.lower()}: added bob (co-proposer)" in hub.log_text(), 10,
                   "the service's log line in the hub's log")
        assert sbatch(slurm, "bob", ODIN).returncode == 0
    finally:
        slurm.cancel_all()
        write_user_office(site, _user_office())
        wait_until(lambda: (ODIN.lower(), "bob") not in slurm.associations(), 60, "the service to remove bob")


# -- the server's API token --------------------------------------------------------------------------------------
BOB_LOOKS = textwrap.dedent("""
    import json, os, subprocess, sys
    token = sys.stdin.read().strip()
    alice = int(sys.argv[1])
    found = {"ps": [], "environ_read": [], "cmdline": [], "files": []}
    for args in (["ps", "-eo", "pid,user,args"], ["ps", "eww", "-e"], ["ps", "auxeww"]):
        if token in subprocess.run(args, capture_output=True, text=True).stdout:
            found["ps"].append(" ".join(args))
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{pid}").st_uid != alice:
                continue
            if token.encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                found["cmdline"].append(pid)
            open(f"/proc/{pid}/environ", "rb").read()
            found["environ_read"].append(pid)
        except OSError:
            pass
    for top in sys.argv[2:]:
        for root, dirs, files in os.walk(top):
            for name in files:
                try:
                    with open(os.path.join(root, name), "rb") as f:
                        if token.encode() in f.read():
                            found["files"].append(os.path.join(root, name))
                except OSError:
                    pass
    print(json.dumps(found))
""")


def server_token(job_id: str) -> str:
    """The running server's API token, read as root from its process (what must stay private)."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        variables = dict(v.decode(errors="replace").split("=", 1) for v in environ if b"=" in v)
        if variables.get("SLURM_JOB_ID") == job_id and variables.get("JUPYTERHUB_API_TOKEN"):
            return variables["JUPYTERHUB_API_TOKEN"]
    raise AssertionError(f"no process of Slurm job {job_id} with an API token")


def files_containing(secret: str, *tops: Path) -> list[str]:
    hits = []
    for top in tops:
        for path in top.rglob("*"):
            try:
                if path.is_file() and secret.encode() in path.read_bytes():
                    hits.append(str(path))
            except OSError:
                continue
    return hits


def test_isolation_no_other_user_can_read_the_server_token_on_the_slurm_node(hubs, slurm):
    import pwd

    hub = hubs()
    alice = login(hub, "alice")
    spawn(alice)
    job_id = live_job(slurm, "alice")
    token = server_token(job_id)
    home = Path("~alice").expanduser()
    assert alice.lab().status_code == 200

    # bob, on the node: process list, /proc of her processes, every file he can read
    looked = subprocess.run(
        ["sudo", "-u", "bob", sys.executable, "-c", BOB_LOOKS, str(pwd.getpwnam("alice").pw_uid),
         "/tmp", "/var/tmp", "/dev/shm", str(home), str(slurm.root), str(hub.data_dir)],
        input=token, capture_output=True, text=True, timeout=120, cwd="/")
    assert looked.returncode == 0, looked.stderr
    assert json.loads(looked.stdout) == {"ps": [], "environ_read": [], "cmdline": [], "files": []}

    # what Slurm keeps, read as root (the most any reader of the accounting database or spool gets)
    wait_until(lambda: "JUPYTERHUB_USER=alice" in slurm.run("sacct", "-j", job_id, "--env-vars").stdout, 30,
               "slurmdbd to store the job's environment")
    stored_env = slurm.run("sacct", "-j", job_id, "--env-vars").stdout
    stored_script = slurm.run("sacct", "-j", job_id, "--batch-script").stdout
    assert "visa_hub.slurm.jobtoken" in stored_script  # the stored script is there: the check can fail
    shown = slurm.run("scontrol", "show", "job", "-dd", job_id).stdout
    written = slurm.run("scontrol", "write", "batch_script", job_id, "-").stdout
    for text in (stored_env, stored_script, shown, written):
        assert token not in text
    assert files_containing(token, slurm.root, hub.data_dir) == []  # spool, state, MariaDB, logs, hub data
    # in her home only Jupyter Server's own runtime files hold it (as in every JupyterHub), in a directory only
    # she can open
    for hit in files_containing(token, home):
        runtime = Path(hit).parent.stat()
        assert hit.startswith(f"{home}/.local/share/jupyter/runtime/jpserver-"), hit
        assert runtime.st_uid == pwd.getpwnam("alice").pw_uid and runtime.st_mode & 0o077 == 0, oct(runtime.st_mode)

    # the handover is once per spawn, and only for her uid: neither a second try of hers nor bob gets it
    env = {"SLURM_JOB_ID": job_id, "JUPYTERHUB_API_URL": f"http://127.0.0.1:{hub.api_port}/hub/api",
           "VISA_MUNGE_SOCKET": str(slurm.munge_socket), "VISA_TOKEN_UID": str(pwd.getpwnam(slurm.hub_user).pw_uid),
           "PATH": "/usr/bin:/bin"}
    for user in ("alice", "bob"):
        again = subprocess.run(["sudo", "-u", user, "env", "-i", *[f"{k}={v}" for k, v in env.items()],
                                sys.executable, "-m", "visa_hub.slurm.jobtoken", "--", "env"],
                               capture_output=True, text=True, timeout=60, cwd="/")
        assert again.returncode == 1 and "the hub refused the token handover (HTTP 403)" in again.stderr, again
        assert token not in again.stdout + again.stderr
    alice.stop_server()
    assert token not in hub.log_text()
