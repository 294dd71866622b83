"""OpenStack instances run as the person, from the instance environment, and keep the server token to her.

A real hub with OpenStackSpawner and the real openstacksdk against the OpenStack simulator, whose VMs run
their user_data as root in a bubblewrap sandbox that sees the image (the instance environment provisioned by
scripts/provision-instance.sh at /opt/visa-instance) and nothing of the hub. The hub's API listens only on
its own loopback address (VISA_HUB_BIND_IP) and instances are told VISA_HUB_CONNECT_URL, so an instance
reaching for the hub's default 127.0.0.1 would fail. "bob" is another unix user on the VM (a distinct uid)
acting from inside it: what another person logged in to the instance could do.
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
from pathlib import Path

import httpx
import pytest
from vm_probe import environ_of, in_vm, lab_process, uid_of, vm_processes

from hubtest import REPO, UserSession, free_port, wait_until
from openstack_support import Cloud, kill_hub, spawn, start_openstack_hub
from peers_slurm import ensure_user
from visa_hub.testing.openstack_sim.metadata import metadata_url

pytestmark = [
    pytest.mark.cloud_boot_delay(1.0),
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]
EXPERIMENT = "LOKI-2026-042"
ALICE_UID = 2_345_678  # the site's mapping for her (c.OpenStackSpawner.uid_map)


def connect_env() -> tuple[str, dict[str, str]]:
    """The hub's API on an address of its own (not 127.0.0.1), and the connect URL instances get."""
    ip, port = f"127.{random.randint(250, 254)}.{random.randint(1, 254)}.1", free_port()
    url = f"http://{ip}:{port}"
    return url, {"VISA_HUB_BIND_IP": ip, "VISA_HUB_API_PORT": str(port), "VISA_HUB_CONNECT_URL": url}


def start_alice(cloud: Cloud, hubs: list, tmp_path: Path) -> tuple[str, object, UserSession, object]:
    connect_url, env = connect_env()
    hub = start_openstack_hub(hubs, cloud, tmp_path, users=["alice", "bob"], extra_env=env,
                              uid_map={"alice": ALICE_UID})
    alice = UserSession(hub.hub, "alice")
    assert alice.login().status_code == 200
    assert alice.submit_spawn_form(experiment=EXPERIMENT, flavour="small").status_code == 200
    alice.wait_ready(timeout=180)
    (server,) = cloud.servers()
    return connect_url, hub, alice, server


def test_isolation_lab_runs_as_her_from_the_instance_env_via_the_connect_url(cloud: Cloud, hubs, tmp_path: Path):
    connect_url, hub, alice, server = start_alice(cloud, hubs, tmp_path)
    lab = lab_process(server)

    # her uid (the site's mapping), not root, not the hub's user; nothing else in the VM runs as root but the
    # sandbox's init (cloud-init's shell replaced itself with JupyterLab once it had dropped root)
    assert lab.uid == ALICE_UID and lab.uid not in (0, os.getuid())
    others = [p for p in vm_processes(server) if p.uid != ALICE_UID]
    assert [p.argv[0] for p in others] == ["bwrap"], others
    assert in_vm(server, ["id", "-un"], uid=lab.uid).stdout.strip() == "alice"  # her account on the VM

    # from the instance environment only: its Python, its packages, its Jupyter defaults
    assert lab.argv[:2] == ["/opt/visa-instance/bin/python", "/opt/visa-instance/bin/jupyterhub-singleuser"]
    mapped = set(re.findall(r"\s(/\S+)$", Path(f"/proc/{lab.pid}/maps").read_text(), re.M))
    assert any(path.startswith("/opt/visa-instance/lib/python3") for path in mapped), mapped
    assert all(path.startswith(("/opt/visa-instance/", "/usr/")) for path in mapped), mapped
    env = environ_of(lab.pid)
    assert not {"VIRTUAL_ENV", "PYTHONPATH", "JUPYTER_CONFIG_PATH", "VISA_DATA_DIR", "OS_CLOUD"} & set(env)
    assert not [k for k, v in env.items() if str(REPO) in v or sys.prefix in v], env
    for hub_path in (REPO, Path(sys.prefix), tmp_path / "data"):  # the VM cannot even see the hub's files
        assert in_vm(server, ["test", "-e", str(hub_path)]).returncode == 1, hub_path
    lab_page = alice.lab()
    assert lab_page.status_code == 200 and '"news": {"disabled": true}' in lab_page.text  # <prefix>/etc/jupyter

    # her home is her volume, owned by her and private
    assert env["HOME"] == "/home/alice" and env["USER"] == "alice"
    assert in_vm(server, ["stat", "-c", "%U %a", "/home/alice"]).stdout.split() == ["alice", "700"]
    assert alice.put_file("results.txt", "reduced as alice").status_code == 201
    (volume,) = cloud.volumes()
    assert uid_of(volume.path) == ALICE_UID and uid_of(volume.path / "results.txt") == ALICE_UID

    # the hub through the configured connect URL: its API is not on the default address at all
    assert env["JUPYTERHUB_API_URL"] == f"{connect_url}/hub/api"
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{connect_url.rsplit(':', 1)[1]}/hub/api/", timeout=5)
    assert httpx.get(f"{connect_url}/hub/api/", timeout=5).status_code == 200  # (and Lab's OAuth worked above)
    alice.close()


def test_isolation_no_other_unix_user_reads_the_server_token(cloud: Cloud, hubs, tmp_path: Path):
    connect_url, hub, alice, server = start_alice(cloud, hubs, tmp_path)
    lab = lab_process(server)
    token = environ_of(lab.pid)["JUPYTERHUB_API_TOKEN"]  # read as root on the host, as the cloud could
    whoami = httpx.get(f"{connect_url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10)
    assert whoami.status_code == 200 and whoami.json()["name"] == "alice"  # the real server token

    bob = ensure_user("bob")
    assert bob.pw_uid != ALICE_UID
    assert in_vm(server, ["useradd", "--uid", str(bob.pw_uid), "--no-create-home", "bob"]).returncode == 0

    def as_bob(argv: list[str], **kwargs) -> str:
        result = in_vm(server, argv, uid=bob.pw_uid, gid=bob.pw_gid, **kwargs)
        return result.stdout + result.stderr

    # the process list, with commands and environments (bob sees Lab is there, not its token)
    listing = as_bob(["ps", "-e", "e", "-ww", "-o", "pid,user,args"])
    assert "jupyterhub-singleuser" in listing and "alice" in listing
    assert token not in listing

    # /proc of every process of the VM, and every file he can read outside the image's read-only /usr
    sweep = as_bob(["/usr/bin/python3", "-c", SWEEP], input=token)  # stdin: the sweep's own argv is in /proc too
    report = json.loads(sweep.strip().splitlines()[-1])
    assert report["found"] == [], report["found"]
    assert str(lab.pid) not in report["readable_environ"] and report["denied_environ"], report
    assert report["files_read"] > 50, report  # the walk did read the VM's files
    assert "/var/lib/visa-instance/api-token" in report["denied_files"]  # the token file exists, not for him

    # the metadata service still serves user_data: it holds a bootstrap code, spent at first boot, no token
    user_data = as_bob(["curl", "-s", f"{metadata_url(cloud.sim, server.id)}/openstack/latest/user_data"])
    assert user_data.startswith("#!/bin/sh") and token not in user_data
    code = re.search(r"^export VISA_BOOTSTRAP_CODE=(\S+)", user_data, re.M).group(1).strip("'")
    replay = as_bob(["curl", "-s", "-w", "\n%{http_code}", "-H", "Content-Type: application/json", "--data",
                     "@-", f"{connect_url}/hub/api/visa/instance-token"],
                    input=json.dumps({"user": "alice", "server_name": "", "code": code}))
    assert replay.rstrip().endswith("403") and token not in replay
    log = hub.hub.log_text()
    assert "Refused a second use of the bootstrap code of alice" in log
    assert token not in log and code not in log

    # alice herself can read her server's environment: the refusals above are about bob, not about anyone
    assert token in in_vm(server, ["cat", f"/proc/{_vm_pid(server, lab.pid)}/environ"], uid=ALICE_UID).stdout

    # a reboot runs user_data again: Lab comes back as her with the token stored at first boot (the spent
    # code is not presented again)
    def relaunched():
        try:
            again = lab_process(server)
        except (AssertionError, AttributeError, OSError):
            return None
        return again if again.pid != lab.pid else None

    cloud.thread.connect().compute.reboot_server(server.id, "SOFT")
    again = wait_until(relaunched, 90, "Lab to start again after the reboot")
    assert again.uid == ALICE_UID and environ_of(again.pid)["JUPYTERHUB_API_TOKEN"] == token
    wait_until(lambda: alice.lab().status_code == 200, 60, "Lab to answer after the reboot")
    assert hub.hub.log_text().count("fetched its API token") == 1
    alice.close()


@pytest.mark.cloud_boot_delay(20.0)
def test_isolation_token_exchange_survives_a_hub_restart_between_create_and_boot(cloud: Cloud, hubs, tmp_path: Path):
    connect_url, env = connect_env()
    hub = start_openstack_hub(hubs, cloud, tmp_path, users=["alice"], extra_env={**env, "VISA_KEEP_SERVERS": "1"})
    alice = UserSession(hub.hub, "alice")
    assert alice.login().status_code == 200
    assert spawn(alice, experiment=EXPERIMENT, flavour="small").status_code in (201, 202)
    wait_until(cloud.servers, 60, "the server to be created")
    kill_hub(hub.hub)  # the VM is still building: it presents its code to the next hub
    hub.hub.start()
    alice.wait_ready(timeout=180)

    # the restarted hub no longer knew the token (it keeps hashes only): it issued a new one for the code, and
    # Lab's OAuth with the hub works with it (the OAuth client's secret followed)
    log = hub.hub.log_text()
    assert "Issued a new API token for alice" in log and "Refused" not in log
    lab = alice.lab()
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    (server,) = cloud.servers()
    token = environ_of(lab_process(server).pid)["JUPYTERHUB_API_TOKEN"]
    whoami = httpx.get(f"{connect_url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=10)
    assert whoami.status_code == 200 and whoami.json()["name"] == "alice"
    assert token not in log
    alice.close()


def _vm_pid(server: object, host_pid: int) -> int:
    """A process's pid inside the VM's pid namespace."""
    status = Path(f"/proc/{host_pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("NSpid:")).split()[-1])


# run as bob inside the VM: every /proc/<pid>/{environ,cmdline} and every readable file, searched for the token
SWEEP = r"""
import json, os, sys
token = sys.stdin.read().strip().encode()
report = {"found": [], "readable_environ": [], "denied_environ": [], "files_read": 0, "denied_files": []}
for pid in filter(str.isdigit, os.listdir("/proc")):
    for item in ("environ", "cmdline"):
        try:
            data = open(f"/proc/{pid}/{item}", "rb").read()
        except PermissionError:
            if item == "environ":
                report["denied_environ"].append(pid)
            continue
        except OSError:
            continue
        if item == "environ":
            report["readable_environ"].append(pid)
        if token in data:
            report["found"].append(f"/proc/{pid}/{item}")
for top in ("/etc", "/var", "/home", "/root", "/tmp", "/run", "/srv", "/opt", "/mnt", "/media", "/dev/shm"):
    for directory, dirs, files in os.walk(top):
        if directory.startswith("/opt/visa-instance"):
            dirs[:] = []  # the image's read-only environment
            continue
        for name in files:
            path = os.path.join(directory, name)
            try:
                with open(path, "rb") as fh:
                    data = fh.read(1 << 20)
            except PermissionError:
                report["denied_files"].append(path)
                continue
            except OSError:
                continue
            report["files_read"] += 1
            if token in data:
                report["found"].append(path)
print(json.dumps(report))
"""
