"""Several OpenStack instances per person, as the dashboard starts them: homes and experiment data that allow it.

A real hub with OpenStackSpawner, the real openstacksdk and the OpenStack simulator, whose VMs run user_data as
root in bubblewrap sandboxes. The simulator's file server stands for the site's NFS server: its exports are host
directories that every VM mounts through the image's NFS client (``mount -t nfs``), so what one instance writes
the others see at once. The site's account provisioning is played by the tests: they create the (empty) export
directories, as a site makes homes and experiment directories on its file server.

- Shared homes: alice runs LOKI and ODIN at once, with real JupyterLab; a file written in one is read in the
  other, both as her uid; a hub restart re-attaches both, without duplicates; stopping one leaves the other.
- Experiment data: alice's and bob's LOKI instances share /data/LOKI-2026-042 through the experiment's group.
- Volume homes (Cinder): her second instance is refused before anything is created, with a sentence naming the
  instance that holds her home; after she stops it, the second starts with the same volume.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from vm_probe import in_vm, lab_process, uid_of

from hubtest import UserSession, wait_until
from openstack_support import STANDIN, Cloud, kill_hub, start_openstack_hub
from spawners.openstack.account import default_uid

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

FILES = "files.example"
HOMES = f"nfs://{FILES}/export/homes/{{username}}"
DATA = f"nfs://{FILES}/export/experiments/{{experiment}}"
LOKI, ODIN = "loki-2026-042", "odin-2026-007"
ALICE_UID = default_uid("alice")
LOKI_GID = default_uid("LOKI-2026-042", (1_000_000_000, 2_000_000_000))


class Owner(UserSession):
    """A person driving her named instances through the hub's REST API, as the dashboard does."""

    def start(self, name: str, **options: str) -> httpx.Response:
        return self.http.post(f"/hub/api/users/{self.username}/servers/{name}", json=options,
                              headers=self._hub_xsrf())

    def stop(self, name: str) -> httpx.Response:
        return self.http.delete(f"/hub/api/users/{self.username}/servers/{name}", headers=self._hub_xsrf())

    def servers(self) -> dict[str, dict]:
        user = self.http.get(f"/hub/api/users/{self.username}", headers=self._hub_xsrf())
        assert user.status_code == 200, user.text
        return user.json().get("servers", {})

    def wait_ready(self, *names: str, timeout: float = 180) -> dict[str, dict]:  # type: ignore[override]
        def ready():
            servers = self.servers()
            missing = [n for n in names if n not in servers]
            if missing:
                raise AssertionError(f"{self.username}'s {missing} stopped (spawn failed?):\n{self.hub.log_tail()}")
            return servers if all(servers[n].get("ready") for n in names) else None

        return wait_until(ready, timeout, f"{self.username}'s instances {names} to be ready", interval=0.5)

    def dashboard(self) -> dict:
        """What the dashboard reads: her instances, quota and whether a new one can start."""
        response = self.http.get(f"/hub/api/visa/users/{self.username}/instances", headers=self._hub_xsrf())
        assert response.status_code == 200, response.text
        return response.json()

    def lab_of(self, name: str) -> httpx.Response:
        return self.http.get(f"/user/{self.username}/{name}/lab")

    def _xsrf_of(self, name: str) -> dict[str, str]:
        token = self.http.cookies.get("_xsrf", path=f"/user/{self.username}/{name}/")
        return {"X-XSRFToken": token} if token else {}

    def put_file_on(self, name: str, path: str, content: str) -> httpx.Response:
        return self.http.put(f"/user/{self.username}/{name}/api/contents/{path}",
                             json={"type": "file", "format": "text", "content": content},
                             headers=self._xsrf_of(name))

    def get_file_on(self, name: str, path: str) -> httpx.Response:
        return self.http.get(f"/user/{self.username}/{name}/api/contents/{path}", headers=self._xsrf_of(name))


def provision(cloud: Cloud, *exports: str) -> dict[str, Path]:
    """The site's provisioning: empty export directories on the file server (root's until claimed)."""
    made = {}
    for export in exports:
        directory = cloud.sim.export_directory(export)
        directory.mkdir(parents=True)
        made[export] = directory
    return made


def server_of(cloud: Cloud, user: str, name: str):
    (server,) = [s for s in cloud.servers()
                 if s.metadata.get("visa_user") == user and s.metadata.get("visa_server_name") == name]
    return server


def as_member(server, user: str, command: str):
    """``sh -c command`` inside a VM as one of its unix users, with her groups (as her login would have)."""
    return in_vm(server, ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups", "--",
                          "sh", "-c", command])


def status_field(pid: int, field: str) -> str:
    status = Path(f"/proc/{pid}/status").read_text()
    return re.search(rf"^{field}:\s*(.*)$", status, re.M).group(1).strip()


@pytest.mark.cloud_boot_delay(1.0)
def test_dashboard_openstack_shared_home_two_instances_at_once_restart_and_stop(cloud: Cloud, hubs,
                                                                              tmp_path: Path):
    exports = provision(cloud, f"{FILES}:/export/homes/alice")
    env = start_openstack_hub(hubs, cloud, tmp_path, extra_env={"VISA_KEEP_SERVERS": "1"}, home_source=HOMES)
    alice = Owner(env.hub, "alice")
    assert alice.login().status_code == 200
    form = alice.http.get(f"/hub/spawn/alice/{ODIN}")
    assert form.status_code == 200 and "visa-instance-conflict" not in form.text

    assert alice.start(LOKI, experiment="LOKI-2026-042", flavour="small").status_code in (201, 202)
    assert alice.start(ODIN, experiment="ODIN-2026-007", flavour="medium").status_code in (201, 202)
    alice.wait_ready(LOKI, ODIN)

    # two servers, each named and labelled as its own instance; no volume: her home is on the file server
    loki, odin = server_of(cloud, "alice", LOKI), server_of(cloud, "alice", ODIN)
    assert len(cloud.servers()) == 2 and loki.id != odin.id
    assert f"-{LOKI}-" in loki.name and f"-{ODIN}-" in odin.name
    assert (loki.metadata["visa_home"], odin.metadata["visa_experiment"]) == ("shared", "ODIN-2026-007")
    assert cloud.volumes() == [] and loki.attachments == [] and odin.attachments == []

    # Lab runs as her in both; the same home, live: written through one instance's Lab, read through the other's
    for server in (loki, odin):
        assert lab_process(server).uid == ALICE_UID
        assert "on /home/alice type" in in_vm(server, ["sh", "-c", "mount | grep ' /home/alice '"]).stdout
    assert alice.lab_of(LOKI).status_code == 200 and alice.lab_of(ODIN).status_code == 200
    assert alice.put_file_on(LOKI, "reduced.txt", "written on LOKI").status_code == 201
    seen = alice.get_file_on(ODIN, "reduced.txt")
    assert seen.status_code == 200 and seen.json()["content"] == "written on LOKI"
    assert alice.put_file_on(ODIN, "reduced.txt", "changed on ODIN").status_code == 200
    assert alice.get_file_on(LOKI, "reduced.txt").json()["content"] == "changed on ODIN"
    home = exports[f"{FILES}:/export/homes/alice"]
    assert uid_of(home) == ALICE_UID and uid_of(home / "reduced.txt") == ALICE_UID  # on the file server: hers
    assert (home.stat().st_mode & 0o777) == 0o700  # her first instance claimed the empty directory
    for server in (loki, odin):
        assert in_vm(server, ["stat", "-c", "%U %a", "/home/alice/reduced.txt"], uid=ALICE_UID).stdout.split()[0] \
            == "alice"
    # each instance its own Dask configuration in the shared home
    assert (home / ".config/dask/instances" / LOKI / "visa-hub.yaml").exists()
    assert (home / ".config/dask/instances" / ODIN / "visa-hub.yaml").exists()

    cards = alice.dashboard()
    assert {c["name"]: c["state"] for c in cards["instances"]} == {LOKI: "running", ODIN: "running"}
    assert cards["new_instance_conflict"] is None  # shared homes: nothing stops a third but her quota

    # a hub restart re-attaches each instance to its own server: no new server, none reaped
    kill_hub(env.hub)
    env.hub.start()
    alice.wait_ready(LOKI, ODIN)
    assert {s.id for s in cloud.servers()} == {loki.id, odin.id}
    assert env.owned_server_ids() == {loki.id, odin.id}
    assert alice.get_file_on(ODIN, "reduced.txt").json()["content"] == "changed on ODIN"
    assert alice.get_file_on(LOKI, "reduced.txt").json()["content"] == "changed on ODIN"

    # stopping ODIN deletes its server only; LOKI keeps running with her home
    assert alice.stop(ODIN).status_code in (202, 204)
    wait_until(lambda: [s.id for s in cloud.servers()] == [loki.id], 60, "ODIN's server to be deleted")
    assert ODIN not in alice.servers() or not alice.servers()[ODIN].get("ready")
    assert alice.servers()[LOKI]["ready"] and cloud.sim.server_by_name(loki.name).status == "ACTIVE"
    assert lab_process(loki).uid == ALICE_UID
    assert alice.get_file_on(LOKI, "reduced.txt").json()["content"] == "changed on ODIN"
    assert "Reaper" not in env.hub.log_text()
    alice.close()


def test_dashboard_openstack_experiment_data_shared_by_its_members(cloud: Cloud, hubs, tmp_path: Path):
    exports = provision(cloud, f"{FILES}:/export/homes/alice", f"{FILES}:/export/homes/bob",
                        f"{FILES}:/export/experiments/LOKI-2026-042")
    env = start_openstack_hub(hubs, cloud, tmp_path, cmd=STANDIN, args=[], home_source=HOMES,
                              experiment_data_source=DATA)
    alice, bob = Owner(env.hub, "alice"), Owner(env.hub, "bob")
    for person in (alice, bob):
        assert person.login().status_code == 200
        assert person.start(LOKI, experiment="LOKI-2026-042", flavour="small").status_code in (201, 202)
    alice.wait_ready(LOKI, timeout=120)
    bob.wait_ready(LOKI, timeout=120)
    hers, his = server_of(cloud, "alice", LOKI), server_of(cloud, "bob", LOKI)

    # the experiment's directory: group exp-loki-2026-042 on both instances (the same gid), setgid, no others
    data = exports[f"{FILES}:/export/experiments/LOKI-2026-042"]
    assert (data.stat().st_gid, oct(data.stat().st_mode & 0o7777)) == (LOKI_GID, "0o2770")
    for server, user in ((hers, "alice"), (his, "bob")):
        assert in_vm(server, ["stat", "-c", "%G %a", "/data/LOKI-2026-042"]).stdout.split() == \
            ["exp-loki-2026-042", "2770"]
        lab = lab_process(server, marker="openstack_standin_lab.py")
        assert lab.uid == default_uid(user)
        assert str(LOKI_GID) in status_field(lab.pid, "Groups").split()  # Lab runs with the experiment's group
        assert status_field(lab.pid, "Umask") == "0007"  # what it writes, the group may change

    # what alice writes there, bob reads and changes from his own instance; someone outside the group cannot
    wrote = as_member(hers, "alice", "umask 0007; echo 'run 1 reduced by alice' > /data/LOKI-2026-042/run-1.txt")
    assert wrote.returncode == 0, wrote.stderr
    changed = as_member(his, "bob", "cat /data/LOKI-2026-042/run-1.txt && echo 'checked by bob' >> "
                                    "/data/LOKI-2026-042/run-1.txt")
    assert changed.returncode == 0 and changed.stdout.strip() == "run 1 reduced by alice", changed.stderr
    assert as_member(hers, "alice", "cat /data/LOKI-2026-042/run-1.txt").stdout.splitlines() == \
        ["run 1 reduced by alice", "checked by bob"]
    assert (data / "run-1.txt").stat().st_gid == LOKI_GID
    outsider = in_vm(hers, ["ls", "/data/LOKI-2026-042"], uid=4_242_424)
    assert outsider.returncode != 0 and "Permission denied" in outsider.stderr
    # their homes stay their own: each VM mounts only its person's home; the file server's tree is root's only
    assert in_vm(hers, ["test", "-e", "/home/bob"]).returncode == 1
    browse = as_member(hers, "alice", f"ls /run/visa-sim/nfs/{FILES}/export/homes")
    assert browse.returncode != 0 and "Permission denied" in browse.stderr
    # each home directory on the file server belongs to its person, mode 0700
    for user in ("alice", "bob"):
        home = exports[f"{FILES}:/export/homes/{user}"]
        assert (uid_of(home), home.stat().st_mode & 0o777) == (default_uid(user), 0o700)
    alice.close()
    bob.close()


def test_dashboard_openstack_volume_home_refuses_a_second_instance_early(cloud: Cloud, hubs, tmp_path: Path):
    env = start_openstack_hub(hubs, cloud, tmp_path, cmd=STANDIN, args=[])  # home_source: "volume"
    alice = Owner(env.hub, "alice")
    assert alice.login().status_code == 200
    assert alice.start(LOKI, experiment="LOKI-2026-042", flavour="small").status_code in (201, 202)
    alice.wait_ready(LOKI, timeout=120)
    (loki,) = cloud.servers()
    (volume,) = cloud.volumes()
    assert [a.volume_id for a in loki.attachments] == [volume.id]

    def cloud_counts() -> tuple:
        def count(sim):
            writes = {k: v for k, v in sim.stats().items() if not k.startswith("GET") and "auth/tokens" not in k}
            return len(sim.state.servers), len(sim.state.ports), len(sim.state.volumes), writes
        return cloud.read(count)

    before = cloud_counts()
    sentence = ("Your home directory is a cloud volume, which only one instance can use at a time, and your "
                "instance LOKI-2026-042 is using it: stop LOKI-2026-042 first, or ask the site for shared homes.")

    # the dashboard's REST call: refused at once, with the sentence
    refused = alice.start(ODIN, experiment="ODIN-2026-007", flavour="medium")
    assert refused.status_code == 400 and sentence in refused.json()["message"]
    # the spawn form says it before she fills anything in; submitting it anyway gets the same answer
    form = alice.http.get(f"/hub/spawn/alice/{ODIN}")
    assert form.status_code == 200 and sentence in form.text and 'id="visa-instance-conflict"' in form.text
    submitted = alice.http.post(f"/hub/spawn/alice/{ODIN}", data={
        "experiment": "ODIN-2026-007", "flavour": "medium", "_xsrf": alice.http.cookies.get("_xsrf", path="/hub/")})
    assert sentence in submitted.text
    # nothing was created or changed in the cloud: the same servers, ports and volumes, no write request at all
    assert cloud_counts() == before
    assert ODIN not in alice.servers() or not alice.servers()[ODIN].get("ready")
    assert alice.servers()[LOKI]["ready"]
    # the dashboard says it too, next to "New instance", and shows no card for the refused one
    cards = alice.dashboard()
    assert cards["new_instance_conflict"] == sentence and [c["name"] for c in cards["instances"]] == [LOKI]

    # once LOKI is stopped, ODIN starts, with the same home volume
    assert alice.stop(LOKI).status_code in (202, 204)
    wait_until(lambda: not cloud.servers(), 60, "LOKI's server to be deleted")
    assert alice.dashboard()["new_instance_conflict"] is None
    assert alice.start(ODIN, experiment="ODIN-2026-007", flavour="medium").status_code in (201, 202)
    alice.wait_ready(ODIN, timeout=120)
    (odin,) = cloud.servers()
    assert odin.metadata["visa_server_name"] == ODIN and [a.volume_id for a in odin.attachments] == [volume.id]
    assert [v.id for v in cloud.volumes()] == [volume.id]
    alice.close()


def test_dashboard_openstack_a_home_missing_on_the_file_server_fails_at_once_with_the_reason(
        cloud: Cloud, hubs, tmp_path: Path):
    env = start_openstack_hub(hubs, cloud, tmp_path, cmd=STANDIN, args=[], home_source=HOMES)  # no export made
    alice = Owner(env.hub, "alice")
    assert alice.login().status_code == 200
    started = alice.start(LOKI, experiment="LOKI-2026-042", flavour="small")

    # the VM's start-up script gives up; the spawner reads why on its console (not after the 600 s start timeout)
    reason = (f"Your instance for experiment LOKI-2026-042 could not start: your home {FILES}:/export/homes/alice "
              "could not be mounted from the file server")
    if started.status_code in (201, 202):  # still starting when the REST call returned: the progress says why
        events = []
        url = f"/hub/api/users/alice/servers/{LOKI}/progress"
        with alice.http.stream("GET", url, headers=alice._hub_xsrf(), timeout=120) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    events.append(json.loads(line[5:]))
                    if events[-1].get("ready") or events[-1].get("failed"):
                        break
        assert events[-1].get("failed") and reason in events[-1]["message"], events
    else:  # it failed before the REST call returned (JupyterHub's slow_spawn_timeout): the answer says why
        assert reason in started.json()["message"], started.text
    wait_until(lambda: not cloud.servers(), 60, "the failed instance's server to be deleted")
    assert LOKI not in alice.servers()
    alice.close()
