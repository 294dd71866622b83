"""End to end: visa-hub's hub driven over HTTP like a browser would.

Tests of the hub process itself (databases, restarts, its log) run the real `jupyterhub -f jupyterhub_config.py`;
tests of what the authenticator and the spawner decide run the same configuration in this test process
(``inprocess_hub``: pytest-jupyterhub's MockHub, see tests/inprocess_hub.py), which starts in half the time.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from hubtest import UserSession, processes_under

pytestmark = pytest.mark.integration


@pytest.fixture
def session_factory():
    sessions: list[UserSession] = []

    def make(hub, username):
        session = UserSession(hub, username)
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()


def alice_in_lab(hub, session_factory) -> UserSession:
    """Alice logged in, with an instance for her running LoKI experiment and Lab open."""
    alice = session_factory(hub, "alice")
    alice.login()
    alice.submit_spawn_form(experiment="LOKI-2026-042")
    alice.wait_ready()
    assert alice.lab().status_code == 200
    return alice


def checked_experiment(html: str) -> str | None:
    match = re.search(r'<input[^>]*name="experiment"[^>]*value="([^"]+)"[^>]*checked', html)
    return match.group(1) if match else None


def selected(html: str, select: str) -> str | None:
    block = re.search(rf'<select[^>]*name="{select}".*?</select>', html, re.S).group(0)
    match = re.search(r'<option value="([^"]+)"[^>]*\bselected\b', block)
    return match.group(1) if match else None


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_spawn_lab_stop_and_find_files_again(database, start_hub, session_factory, request):
    env = {"VISA_DB_URL": request.getfixturevalue("postgres_url")} if database == "postgresql" else {}
    hub = start_hub(**env)
    alice = session_factory(hub, "alice")

    home = alice.login()
    assert home.url.path == "/hub/home", home.text[:500]  # her instance dashboard
    form = alice.spawn_form()
    offered = re.findall(r'name="experiment"[^>]*value="([^"]+)"', form.text)
    assert offered == ["LOKI-2026-042", "ODIN-2026-007"]  # running first; not BIFROST (opens later)

    pending = alice.submit_spawn_form(experiment="LOKI-2026-042", flavour="large",
                                      image="ess-analysis-2026.04", lifetime_hours="12")
    assert pending.status_code == 200, pending.text[:1000]
    progress = alice.progress_messages()  # what the spawn-pending page shows her
    assert any("Experiment LOKI-2026-042 on LoKI: large (16 CPU, 64 GB)" in m for m in progress), progress
    assert any("Creating your persistent home" in m for m in progress), progress
    alice.wait_ready()
    lab = alice.lab()
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    assert '"news": {"disabled": true}' in lab.text  # no "get Jupyter news?" toast: instances have no internet
    assert lab.url.path == "/user/alice/lab"
    assert alice.put_file("results.txt", "reduced data from the first instance").status_code == 201
    # Dask in this instance defaults to the experiment's profile, accounted to the experiment
    # (each instance has its own Dask configuration directory: her instances share the home)
    dask_config = yaml.safe_load(
        (hub.data_dir / "homes/alice/.config/dask/instances/_default/visa-hub.yaml").read_text())
    assert dask_config["jobqueue"]["slurm"]["account"] == "LOKI-2026-042"
    assert dask_config["labextension"]["factory"]["class"] == "SessionCluster"
    clusters = alice.http.get("/user/alice/dask/clusters", headers=alice._server_xsrf())
    assert clusters.status_code == 200 and clusters.json() == []  # dask-labextension is there, with our factory

    alice.stop_server()
    # relaunch with the same settings: the form remembers her last choice
    again = alice.spawn_form()
    assert checked_experiment(again.text) == "LOKI-2026-042"
    assert selected(again.text, "flavour") == "large"
    assert selected(again.text, "image") == "ess-analysis-2026.04"
    assert 'value="12"' in again.text

    alice.submit_spawn_form(experiment="LOKI-2026-042", flavour="large", image="ess-analysis-2026.04",
                            lifetime_hours="12")
    assert any("Using your persistent home" in m for m in alice.progress_messages())
    alice.wait_ready()
    assert alice.lab().status_code == 200  # opening Lab logs her in to the new instance
    saved = alice.get_file("results.txt")
    assert saved.status_code == 200
    assert saved.json()["content"] == "reduced data from the first instance"
    if database == "postgresql":  # the hub really kept its state in PostgreSQL
        import psycopg

        with psycopg.connect(env["VISA_DB_URL"]) as db:
            names = {row[0] for row in db.execute("SELECT name FROM users")}
        assert "alice" in names
        assert not (hub.data_dir / "jupyterhub.sqlite").exists()


def test_people_the_service_refuses_get_the_reason(inprocess_hub, session_factory):
    hub = inprocess_hub()  # authenticator and spawner behaviour: the hub in this process
    erik = session_factory(hub, "erik").login()
    assert erik.status_code == 403
    assert "not a member of any experiment in the User Office" in erik.text

    dora = session_factory(hub, "dora").login()
    assert dora.status_code == 403
    assert "access to your experiments has ended" in dora.text

    stranger = session_factory(hub, "mallory").login()
    assert stranger.status_code == 403 and "not registered in the User Office" in stranger.text

    wrong = session_factory(hub, "alice").login(password="not-the-password")
    assert wrong.status_code == 403 and "Invalid username or password" in wrong.text


def test_the_server_refuses_what_the_form_should_not_offer(inprocess_hub, session_factory):
    hub = inprocess_hub()  # authenticator and spawner behaviour: the hub in this process
    bob = session_factory(hub, "bob")
    bob.login()
    refused = bob.submit_spawn_form(experiment="LOKI-2026-042", flavour="gpu-large", lifetime_hours="10")
    assert refused.status_code == 400
    assert "Flavour &#39;gpu-large&#39; is not available for LoKI experiments" in refused.text
    # nothing was lost: the form comes back with her choice, and no instance was started
    assert checked_experiment(refused.text) == "LOKI-2026-042"
    assert bob.server_model() == {}

    not_mine = bob.submit_spawn_form(experiment="ODIN-2026-007")
    assert not_mine.status_code == 400 and "You are not a member of experiment ODIN-2026-007" in not_mine.text

    too_long = bob.submit_spawn_form(experiment="LOKI-2026-042", lifetime_hours="1000")
    assert too_long.status_code == 400 and "at most 168 hours" in too_long.text

    # the REST API gets the same checks and messages as the form
    api = f"/hub/api/users/{bob.username}/server"
    for options, message in [
        ({"experiment": "ODIN-2026-007"}, "You are not a member of experiment ODIN-2026-007"),
        ({"experiment": "LOKI-2026-042", "lifetime_hours": "forever"}, "The lifetime must be a number of hours"),
        ({"experiment": "LOKI-2026-042", "gpu": True}, "Unknown option(s): gpu."),
    ]:
        response = bob.http.post(api, json=options, headers=bob._hub_xsrf())
        assert response.status_code == 400, response.text
        assert message in response.json()["message"]
    assert bob.server_model() == {}


def test_groups_admin_and_staff_view(inprocess_hub, session_factory):
    hub = inprocess_hub()  # authenticator and spawner behaviour: the hub in this process
    session_factory(hub, "alice").login()
    olga = session_factory(hub, "olga")
    olga.login()
    alice = olga.http.get("/hub/api/users/alice", headers=olga._hub_xsrf()).json()
    assert {"proposal:LOKI-2026-042", "instrument:LoKI", "instrument:ODIN"} <= set(alice["groups"])
    assert alice["admin"] is False
    assert olga.http.get("/hub/api/users/olga", headers=olga._hub_xsrf()).json()["admin"] is True

    carl = session_factory(hub, "carl")  # staff: may pick any experiment, even one that ended
    carl.login()
    form = carl.spawn_form()
    offered = set(re.findall(r'name="experiment"[^>]*value="([^"]+)"', form.text))
    assert offered == {"LOKI-2026-042", "ODIN-2026-007", "BIFROST-2026-013", "DREAM-2023-101"}
    # a role only where he has one: local contact of LOKI, nothing on BIFROST (not "co proposer")
    labels = dict(re.findall(r'value="([^"]+)"[^>]*>\s*<label.*?<small class="visa-muted">(.*?)</small>', form.text,
                             re.S))
    assert "local contact" in labels["LOKI-2026-042"]
    assert "proposer" not in labels["BIFROST-2026-013"] and "investigator" not in labels["BIFROST-2026-013"]


def test_restarted_hub_reattaches_running_instances(start_hub, session_factory):
    hub = start_hub(VISA_KEEP_SERVERS="1")
    alice = alice_in_lab(hub, session_factory)
    assert alice.put_file("note.txt", "before the restart").status_code == 201
    instances = processes_under(hub.data_dir)

    hub.restart()
    assert alice.server_model().get("ready") is True  # re-attached ...
    assert processes_under(hub.data_dir) == instances  # ... to the same process, not a new one
    assert alice.lab().status_code == 200
    assert alice.get_file("note.txt").json()["content"] == "before the restart"


def test_no_secret_reaches_the_hub_log_even_at_debug_level(start_hub, session_factory):
    hub = start_hub(VISA_LOG_LEVEL="DEBUG")
    alice_in_lab(hub, session_factory)
    [instance] = processes_under(hub.data_dir)
    environ = dict(
        item.split("=", 1) for item in Path(f"/proc/{instance}/environ").read_text().split("\0") if "=" in item
    )
    secrets = {
        "the instance's API token": environ["JUPYTERHUB_API_TOKEN"],
        "the auth_state key": (hub.data_dir / "jupyterhub_crypt_key").read_text().strip(),
        "the cookie secret": (hub.data_dir / "jupyterhub_cookie_secret").read_text().strip(),
        "the demo password": "visa-demo",
    }
    log = hub.log_text()
    assert "[D " in log  # really at debug level
    for what, secret in secrets.items():
        assert secret not in log, f"{what} is in the hub log"
