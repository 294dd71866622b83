"""The OpenStack simulator, driven by the real openstacksdk (nothing mocked)."""

from __future__ import annotations

import base64
import json
import os
import stat
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import openstack
import pytest
from openstack import exceptions

from visa_hub.testing.openstack_sim import SimulatorThread

pytestmark = [
    pytest.mark.integration,
    pytest.mark.usefixtures("vm_sandbox"),  # servers run their user_data in a bubblewrap sandbox, as root
    # openstacksdk warns about its own internals on every call; not ours to fix
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]
T = TypeVar("T")


def wait_until(check: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def http_get(url: str, timeout: float = 1.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.read().decode()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def boot(conn: Any, name: str, flavor: str = "m1.small", **extra: Any) -> Any:
    """Create a server on the private network from the default image."""
    return conn.compute.create_server(
        name=name,
        flavor_id=conn.compute.find_flavor(flavor, ignore_missing=False).id,
        image_id=conn.image.find_image("visa-instance", ignore_missing=False).id,
        networks=[{"uuid": conn.network.find_network("private", ignore_missing=False).id}],
        **extra,
    )


def console(conn: Any, server: Any) -> str:
    return conn.compute.get_server_console_output(server)["output"]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# ------------------------------------------------------------------ identity


def test_password_auth_gives_catalog(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    openstack_conn.authorize()
    types = {entry["type"] for entry in openstack_conn.service_catalog}
    assert {"identity", "compute", "image", "network", "block-storage", "volumev3"} <= types
    assert {f.name for f in openstack_conn.compute.flavors()} >= {"m1.small", "m1.large"}
    assert openstack_conn.current_project_id == openstack_sim.sim.project.id


def test_application_credential_auth(openstack_sim: SimulatorThread) -> None:
    conn = openstack_sim.connect(use_app_credential=True)
    assert [i.name for i in conn.image.images(name="visa-instance")] == ["visa-instance"]
    assert conn.current_project_id == openstack_sim.sim.project.id


def test_wrong_password_is_an_auth_error(openstack_sim: SimulatorThread) -> None:
    kwargs = openstack_sim.sim.connect_kwargs()
    kwargs["auth"]["password"] = "not-the-password"
    conn = openstack.connect(**kwargs)
    with pytest.raises(exceptions.SDKException, match="requires authentication.*401"):
        conn.authorize()


def test_requests_without_a_valid_token_get_401(openstack_sim: SimulatorThread) -> None:
    request = urllib.request.Request(f"{openstack_sim.url}/compute/v2.1/servers/detail",
                                     headers={"X-Auth-Token": "bogus"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request)
    assert caught.value.code == 401
    assert json.load(caught.value)["error"]["title"] == "Unauthorized"


# ------------------------------------------------------------------ servers


def test_server_runs_user_data_and_is_cleaned_up_on_delete(
    openstack_sim: SimulatorThread, openstack_conn: Any, tmp_path: Any
) -> None:
    conn = openstack_conn
    group = conn.network.create_security_group(name="jupyter")
    conn.network.create_security_group_rule(security_group_id=group.id, direction="ingress", protocol="tcp",
                                            port_range_min=8000, port_range_max=8000)
    script = """#!/bin/sh
echo "$VISA_SIM_SERVER_ID $VISA_SIM_SERVER_IP $(id -u) $(hostname)" > /root/user-data-ran
mkdir -p /srv/www && cd /srv/www && echo hello-from-instance > index.html
exec python3 -m http.server 8000 --bind "$VISA_SIM_SERVER_IP"
"""
    server = boot(conn, "lab-1", security_groups=[{"name": "jupyter"}], metadata={"experiment": "ABC123"},
                  tags=["visa", "experiment-ABC123"], user_data=b64(script))
    seen = {(conn.compute.get_server(server.id).status)}
    server = conn.compute.wait_for_server(server, interval=0.05, wait=20)
    seen.add(server.status)
    assert seen == {"BUILD", "ACTIVE"}
    assert server.vm_state == "active" and server.task_state is None and server.power_state == 1
    address = server.addresses["private"][0]["addr"]
    assert address.startswith("127.") and server.access_ipv4 == address
    assert server.metadata == {"experiment": "ABC123"}
    assert set(server.tags) == {"visa", "experiment-ABC123"}
    assert server.security_groups == [{"name": "jupyter"}]

    assert wait_until(lambda: http_get(f"http://{address}:8000/index.html")) == "hello-from-instance\n"
    rootfs = openstack_sim.call(lambda: openstack_sim.sim.state.servers[server.id].rootfs)
    assert (rootfs / "root/user-data-ran").read_text().split() == [server.id, address, "0", "lab-1"]  # root

    assert [s.id for s in conn.compute.servers(tags="visa,experiment-ABC123")] == [server.id]
    assert list(conn.compute.servers(tags="visa,other")) == []
    assert [s.id for s in conn.compute.servers(any_tags="other,visa")] == [server.id]
    (port,) = conn.network.ports(device_id=server.id)
    assert port.fixed_ips[0]["ip_address"] == address
    assert port.security_group_ids == [group.id]

    pgid = openstack_sim.call(lambda: openstack_sim.sim.state.servers[server.id].process.pid)
    assert group_alive(pgid)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, interval=0.05, wait=20)
    assert not group_alive(pgid)
    assert http_get(f"http://{address}:8000/") is None
    assert list(conn.network.ports(device_id=server.id)) == []
    with pytest.raises(exceptions.NotFoundException):
        conn.compute.get_server(server.id)
    (gone,) = conn.compute.servers(changes_since="2000-01-01T00:00:00Z")
    assert (gone.id, gone.status) == (server.id, "DELETED")


def test_cloud_config_write_files_and_runcmd(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    config = {
        "write_files": [{"path": "/etc/visa-sim-test.conf", "content": "experiment = ABC123\n",
                         "permissions": "0600"}],
        "runcmd": [["sh", "-c", "cp /etc/visa-sim-test.conf /root/copied.conf"], "echo done > /root/done"],
    }
    user_data = "#cloud-config\n" + json.dumps(config)  # JSON is YAML
    server = boot(openstack_conn, "cc-1", user_data=b64(user_data))
    openstack_conn.compute.wait_for_server(server, interval=0.05, wait=20)
    rootfs = wait_until(lambda: openstack_sim.call(lambda: openstack_sim.sim.state.servers[server.id].rootfs))
    wait_until(lambda: (rootfs / "root/done").exists())
    target = rootfs / "etc/visa-sim-test.conf"  # in the VM's root disk, not on the simulator's machine
    assert target.read_text() == "experiment = ABC123\n" and not Path("/etc/visa-sim-test.conf").exists()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert (rootfs / "root/copied.conf").read_text() == "experiment = ABC123\n"


def test_volume_outlives_its_server(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    conn = openstack_conn
    volume = conn.block_storage.create_volume(size=2, name="home-alice", metadata={"owner": "alice"})
    volume = conn.block_storage.wait_for_status(volume, "available", interval=0.05, wait=10)
    bdm = [{"source_type": "volume", "destination_type": "volume", "uuid": volume.id, "boot_index": None,
            "delete_on_termination": False}]
    writer = boot(conn, "writer", block_device_mapping=bdm,
                  user_data=b64('#!/bin/sh\necho "notes of $VISA_SIM_SERVER_NAME" > "$VISA_SIM_VOLUME_0/notes.txt"\n'
                                'echo wrote\n'))
    writer = conn.compute.wait_for_server(writer, interval=0.05, wait=20)
    assert [(a.id, a.delete_on_termination) for a in writer.attached_volumes] == [(volume.id, False)]
    volume = conn.block_storage.wait_for_status(volume, "in-use", interval=0.05, wait=10)
    assert volume.attachments[0]["server_id"] == writer.id
    wait_until(lambda: "wrote" in console(conn, writer))

    conn.compute.delete_server(writer)
    conn.compute.wait_for_delete(writer, interval=0.05, wait=20)
    volume = conn.block_storage.wait_for_status(volume, "available", interval=0.05, wait=10)
    # openstacksdk sends a dict as its keys only: pass Cinder's filter as a literal via ``properties``.
    assert [v.id for v in conn.block_storage.volumes(properties=json.dumps({"owner": "alice"}))] == [volume.id]

    reader = boot(conn, "reader", user_data=b64('#!/bin/sh\ncat "$VISA_SIM_VOLUME_0/notes.txt"\n'))
    reader = conn.compute.wait_for_server(reader, interval=0.05, wait=20)
    assert reader.attached_volumes == []
    conn.compute.create_volume_attachment(reader, volume)
    conn.block_storage.wait_for_status(volume, "in-use", interval=0.05, wait=10)
    conn.compute.stop_server(reader)
    conn.compute.wait_for_server(reader, status="SHUTOFF", interval=0.05, wait=20)
    conn.compute.start_server(reader)  # boots again, now with the volume
    conn.compute.wait_for_server(reader, interval=0.05, wait=20)
    assert wait_until(lambda: "notes of writer" in console(conn, reader))

    conn.compute.delete_volume_attachment(reader, volume)
    conn.block_storage.wait_for_status(volume, "available", interval=0.05, wait=10)
    conn.block_storage.delete_volume(volume)
    conn.block_storage.wait_for_delete(volume, interval=0.05, wait=10)


def test_attach_while_building_is_409_unless_allowed(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    conn = openstack_conn
    volume = conn.block_storage.create_volume(size=1, name="scratch")
    volume = conn.block_storage.wait_for_status(volume, "available", interval=0.05, wait=10)
    openstack_sim.sim.boot_delay = 1.0
    server = boot(conn, "early", user_data=b64('#!/bin/sh\necho "volumes=$VISA_SIM_VOLUMES"\n'))
    with pytest.raises(exceptions.ConflictException, match="while it is in vm_state building"):
        conn.compute.create_volume_attachment(server, volume)
    openstack_sim.sim.allow_attach_while_building = True
    conn.compute.create_volume_attachment(server, volume)
    conn.compute.wait_for_server(server, interval=0.05, wait=20)
    # the VM finds it where a KVM guest finds a Cinder volume
    assert wait_until(lambda: f"volumes=/dev/disk/by-id/virtio-{volume.id[:20]}" in console(conn, server))


# ------------------------------------------------------------------ quotas and faults


def test_quota_exceeded_is_nova_403(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    openstack_sim.sim.set_quota(cores=20, instances=-1, ram=-1)
    boot(openstack_conn, "big-1", flavor="m1.xlarge")
    boot(openstack_conn, "big-2", flavor="m1.xlarge")
    with pytest.raises(exceptions.HttpException) as caught:
        boot(openstack_conn, "big-3", flavor="m1.xlarge")
    assert caught.value.status_code == 403
    assert "Quota exceeded for cores: Requested 8, but already used 16 of 20 cores" in str(caught.value)
    limits = openstack_conn.compute.get_limits().absolute
    assert (limits.total_cores, limits.total_cores_used) == (20, 16)


def test_injected_build_failure_puts_server_in_error(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    openstack_sim.sim.faults.fail_server_creates(1, message="No valid host was found. There are not enough hosts.")
    server = boot(openstack_conn, "doomed")
    with pytest.raises(exceptions.ResourceFailure):
        openstack_conn.compute.wait_for_server(server, interval=0.05, wait=20)
    server = openstack_conn.compute.get_server(server.id)
    assert server.status == "ERROR"
    assert server.fault["code"] == 500
    assert server.fault["message"].startswith("No valid host was found.")
    healthy = openstack_conn.compute.wait_for_server(boot(openstack_conn, "fine"), interval=0.05, wait=20)
    assert healthy.status == "ACTIVE"


def test_http_fault_injection_and_request_counts(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    conn = openstack_conn
    conn.authorize()
    list(conn.compute.servers())  # microversion discovery happens once, before counting
    openstack_sim.sim.reset_stats()
    list(conn.compute.servers())
    assert openstack_sim.sim.stats() == {"GET /compute/v2.1/servers/detail": 1}

    openstack_sim.sim.faults.add(r"/servers/detail$", method="GET", status=500, count=1)
    with pytest.raises(exceptions.HttpException) as caught:
        list(conn.compute.servers())
    assert caught.value.status_code == 500
    assert list(conn.compute.servers()) == []

    # the same over the admin endpoint, with a Neutron-shaped error
    body = json.dumps({"path": r"/network/v2\.0/ports$", "method": "GET", "status": 503, "count": 1}).encode()
    urllib.request.urlopen(urllib.request.Request(f"{openstack_sim.url}/_sim/faults", data=body, method="POST"))
    with pytest.raises(exceptions.HttpException) as caught:
        list(conn.network.ports())
    assert caught.value.status_code == 503
    assert list(conn.network.ports()) == []
    with urllib.request.urlopen(f"{openstack_sim.url}/_sim/stats") as response:
        stats = json.load(response)
    assert stats["GET /compute/v2.1/servers/detail"] == 3
    assert stats["GET /network/v2.0/ports"] == 2


def test_injected_delay(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    openstack_conn.authorize()
    openstack_sim.sim.faults.add(r"/flavors/detail$", status=None, delay=0.3, count=1)
    started = time.monotonic()
    assert list(openstack_conn.compute.flavors())
    assert time.monotonic() - started >= 0.3


def test_error_bodies_have_the_real_shapes(openstack_sim: SimulatorThread, openstack_conn: Any) -> None:
    token = openstack_conn.session.get_token()

    def error(path: str) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(openstack_sim.url + path, headers={"X-Auth-Token": token})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request)
        return caught.value.code, json.load(caught.value)

    assert error("/compute/v2.1/servers/nope") == (
        404, {"itemNotFound": {"code": 404, "message": "Instance nope could not be found."}})
    assert error("/network/v2.0/ports/nope") == (
        404, {"NeutronError": {"type": "PortNotFound", "message": "Port nope could not be found.", "detail": ""}})
    project = openstack_sim.sim.project.id
    assert error(f"/volume/v3/{project}/volumes/nope") == (
        404, {"itemNotFound": {"code": 404, "message": "Volume nope could not be found."}})
    with pytest.raises(exceptions.NotFoundException):
        openstack_conn.image.get_image("nope")
