"""The Slurm backend end to end: a real hub spawns JupyterLab as a Slurm job on a real single-node cluster.

The cluster runs as a site runs it (tests/peers_slurm.py): accounting enforced, ``PrivateData=jobs``, one account
per experiment made by ``visa-hub slurm-sync``; the hub runs as the non-root service user ``visahub`` with sudo
rights for the Slurm commands only. Alice logs in (demo), spawns for her LoKI experiment; the job carries the
experiment as account, the lifetime as time limit and the flavour as CPUs/memory; Lab answers through the hub's
proxy; stopping cancels the job.
Also: a restarted hub re-attaches, a job Slurm ends is seen as a stopped server, a controller that is down or a
job that can never start end the spawn with a message a person understands, and the API token is never logged.
"""

from __future__ import annotations

import html
import re
import shutil
import time
from pathlib import Path

import pytest
from conftest import missing_peer

from hubtest import HubProcess, UserSession, wait_until

pytestmark = pytest.mark.integration

EXPERIMENT = "LOKI-2026-042"  # alice's running LoKI experiment in the demo User Office
USER = "alice"


@pytest.fixture(scope="module")
def slurm():
    from peers_slurm import check_usable_by, slurm_cluster, slurm_missing

    reason = slurm_missing()
    if reason:
        missing_peer(reason)
    problem = check_usable_by(USER, modules=("batchspawner", "jupyterhub", "dask_jobqueue"))
    if problem:
        pytest.fail(problem, pytrace=False)
    with slurm_cluster(partition="ess", extra_partitions={"short": "MaxTime=00:10:00"}) as cluster:
        yield cluster


@pytest.fixture
def slurm_hub(slurm):
    """Factory: a real hub (as the service user) using the Slurm backend on ``partition``; stopped after."""
    if not (HubProcess.config_file.parent / "node_modules/.bin/configurable-http-proxy").exists():
        missing_peer("configurable-http-proxy not installed (run `npm install`)")
    hubs: list[HubProcess] = []

    def start(partition: str = "ess", keep_servers: bool = False, extra_config: str = "") -> HubProcess:
        hub = slurm.hub(partition=partition, keep_servers=keep_servers, extra_config=extra_config)
        hubs.append(hub)
        return hub.start()

    yield start
    for hub in hubs:
        hub.stop()
    slurm.cancel_all()
    for hub in hubs:
        shutil.rmtree(hub.data_dir, ignore_errors=True)


def alice(hub: HubProcess) -> UserSession:
    session = UserSession(hub, USER)
    assert session.login().status_code == 200
    return session


def job_of(slurm, user: str = USER) -> list[str]:
    jobs = slurm.live_jobs(user)
    assert len(jobs) == 1, f"expected one live job of {user}, got {jobs}"
    return jobs[0]


def spawn(session: UserSession, **fields: str) -> list[str]:
    response = session.submit_spawn_form(experiment=EXPERIMENT, **fields)
    assert response.status_code == 200, response.text[:2000]
    return session.progress_messages(timeout=90)


def failed_spawn(session: UserSession, **fields: str) -> str:
    """Submit the form for a spawn that fails; the message the person sees (error page or pending page)."""
    response = session.submit_spawn_form(experiment=EXPERIMENT, **fields)
    if "/spawn-pending/" in str(response.url):  # slower than the form waits: the pending page follows progress
        assert response.status_code == 200, response.text[:2000]
        return session.progress_messages(timeout=90)[-1]
    assert response.status_code == 503, response.text[:2000]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.text)).split())


def server_token(job_id: str) -> str:
    """The API token of the running server, read from its process (the secret that must not be logged)."""
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


def test_spawn_lab_through_proxy_then_stop_cancels_the_job(slurm_hub, slurm):
    hub = slurm_hub()
    session = alice(hub)
    started = time.monotonic()
    messages = spawn(session)
    session.wait_ready()
    print(f"spawn-to-ready through Slurm: {time.monotonic() - started:.1f} s")

    assert any(m.startswith("Submitting to Slurm: partition ess, account loki-2026-042") for m in messages), messages
    assert any(re.match(r"Slurm job \d+ is running on ", m) for m in messages), messages

    job_id, user, account, partition, state, cpus, memory, limit, *_ = job_of(slurm)
    assert (user, partition, state) == (USER, "ess", "RUNNING")
    assert account == EXPERIMENT.lower()  # Slurm keeps account names in lower case
    assert (cpus, memory, limit) == ("4", "16G", "1-00:00:00")  # LoKI default: medium flavour, 24 h

    lab = session.lab()
    assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.text[:500]
    name = f"from-slurm-{job_id}.txt"
    assert session.put_file(name, "written in a Slurm job").status_code == 201
    written = Path(f"~alice/{name}").expanduser()
    assert written.read_text() == "written in a Slurm job" and written.owner() == USER  # the job runs as alice
    written.unlink()

    # the instance wrote its Dask configuration before Lab started, and dask-labextension uses it
    dask_config = Path("~alice/.config/dask/instances/_default/visa-hub.yaml").expanduser().read_text()
    assert f"account: {EXPERIMENT}" in dask_config and "queue: ess" in dask_config
    clusters = session.http.get(f"/user/{USER}/dask/clusters", headers=session._server_xsrf())
    assert clusters.status_code == 200 and clusters.json() == []

    token = server_token(job_id)
    session.stop_server()
    assert not slurm.live_jobs(USER), slurm.jobs()
    assert [j[4] for j in slurm.jobs() if j[0] == job_id] == ["CANCELLED"]

    log = hub.log_text()
    assert "Slurm job script of" in log  # debug logging was on
    assert token not in log, "the server's API token is in the hub log"
    assert token not in Path(f"~alice/visa-instance-{job_id}.log").expanduser().read_text()


def test_restarted_hub_reattaches_and_a_job_slurm_ends_is_a_stopped_server(slurm_hub, slurm):
    hub = slurm_hub(keep_servers=True)
    session = alice(hub)
    spawn(session, flavour="small")
    session.wait_ready()
    job_id = job_of(slurm)[0]

    hub.restart()
    session = alice(hub)
    assert session.server_model().get("ready"), "the restarted hub lost the running instance"
    assert session.lab().status_code == 200
    assert job_of(slurm)[0] == job_id  # the same job, not a new one

    # Slurm ends the job (as a time limit or an operator would): the hub sees the server stopped
    slurm.run("scancel", job_id)
    wait_until(lambda: not session.server_model(), 30, "the hub to notice that Slurm ended the job")
    assert "stopped" in hub.log_text() or "not running" in hub.log_text()


def test_a_job_that_can_never_start_fails_the_spawn_with_the_pending_reason(slurm_hub, slurm):
    hub = slurm_hub(partition="short")  # MaxTime 10 minutes, the session asks for 24 hours
    session = alice(hub)
    started = time.monotonic()
    page = failed_spawn(session, flavour="small")
    assert time.monotonic() - started < 30
    message = page[page.find("Error"):][:600]
    assert "The instance for experiment LOKI-2026-042 cannot start on the Slurm cluster" in page, message
    assert "than the partition allows" in page and "shorter lifetime" in page, message
    assert "SpawnException" not in message  # the person reads our sentence, not a class name
    assert re.search(r"Slurm job \d+ is waiting in the queue: .* than the partition allows", hub.log_text())
    wait_until(lambda: not slurm.live_jobs(USER), 15, "the pending job to be cancelled")


def test_controller_down_fails_the_spawn_quickly_with_a_clear_message(slurm_hub, slurm):
    hub = slurm_hub()
    session = alice(hub)
    slurm.stop_controller()
    try:
        started = time.monotonic()
        page = failed_spawn(session, flavour="small")
        assert time.monotonic() - started < 30
        assert "Slurm cluster is not answering" in page and EXPERIMENT in page, page
        assert not session.server_model()
    finally:
        slurm.start_controller()
        slurm.wait_idle()
    # and once Slurm is back, the same person spawns without any clean-up
    spawn(session, flavour="small")
    session.wait_ready()
    session.stop_server()


def test_hub_log_has_the_session_plan_but_no_environment_dump(slurm_hub, slurm):
    """batchspawner logs 'Spawner submitting environment' at debug level; our backend must not."""
    hub = slurm_hub()
    session = alice(hub)
    spawn(session, flavour="small")
    session.wait_ready()
    session.stop_server()
    log = hub.log_text()
    assert "Spawner submitting environment" not in log
    assert "JUPYTERHUB_API_TOKEN=" not in log and not re.search(r"'JUPYTERHUB_API_TOKEN': '", log)
    assert "Submitting the instance of alice to Slurm" in log
