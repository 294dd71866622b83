"""OpenStackSpawner end to end: a real hub, the real openstacksdk, the OpenStack simulator, real JupyterLab."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from vm_probe import environ_of, lab_process

from hubtest import UserSession, wait_until
from openstack_support import Cloud, start_openstack_hub

pytestmark = [
    pytest.mark.cloud_boot_delay(2.5),  # 0.5 s per Nova build step: the poller sees each
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


def test_lab_through_the_proxy_and_a_home_that_outlives_its_instances(cloud: Cloud, hubs, tmp_path: Path):
    env = start_openstack_hub(hubs, cloud, tmp_path, log_level="DEBUG", log_cloud_requests=True,
                              cloud_poll_fast_interval=0.2)
    alice = UserSession(env.hub, "alice")
    alice.login()
    pending = alice.submit_spawn_form(experiment="LOKI-2026-042", flavour="medium")
    assert pending.status_code == 200, pending.text[:1000]
    progress = alice.progress_messages(timeout=120)
    steps = ["Preparing the firewall of experiment LOKI-2026-042", "persistent home volume",
             "Asking the cloud for a medium (4 CPU, 16 GB) instance", "(scheduling)",
             "Connecting your instance to the network", "Building the virtual machine",
             "its operating system is booting", "JupyterLab is starting"]
    positions = [next((i for i, m in enumerate(progress) if step in m), None) for step in steps]
    assert None not in positions and positions == sorted(positions), "\n".join(progress)
    alice.wait_ready()

    (server,) = cloud.servers()
    assert server.flavor.name == "medium" and server.status == "ACTIVE"
    assert server.metadata["visa_user"] == "alice" and server.metadata["visa_experiment"] == "LOKI-2026-042"
    assert set(server.tags) == {"visa-hub-visa-hub", "experiment-LOKI-2026-042"}
    assert server.security_groups == ["visa-visa-hub-exp-LOKI-2026-042"]
    lab = alice.lab()  # through configurable-http-proxy to the instance's 127.x address
    assert lab.status_code == 200 and "JupyterLab" in lab.text, lab.text[:500]
    assert alice.put_file("results.txt", "reduced on the first instance").status_code == 201

    # the debug log shows the cloud requests, never the instance's token or its user_data
    token = environ_of(lab_process(server).pid)["JUPYTERHUB_API_TOKEN"]
    assert len(token) >= 32
    log = env.hub.log_text()
    assert "/compute/v2.1/servers" in log and "REQ: curl" in log and '"user_data": "***"' in log
    assert token not in log
    assert server.user_data not in log and base64.b64decode(server.user_data).decode()[:60] not in log

    first_volume = {v.id for v in cloud.volumes()}
    alice.stop_server()
    wait_until(lambda: not cloud.servers(), 30, "the server to be deleted")
    assert cloud.ports() == [] and cloud.floating_ips() == []
    (volume,) = cloud.volumes()
    assert volume.id in first_volume and volume.metadata["visa_user"] == "alice"
    wait_until(lambda: volume.status == "available", 10, "the volume to be detached")

    alice.submit_spawn_form(experiment="LOKI-2026-042", flavour="small")
    alice.wait_ready(timeout=120)
    (second,) = cloud.servers()
    assert second.id != server.id and second.flavor.name == "small"
    assert [a.volume_id for a in second.attachments] == [volume.id]
    assert alice.lab().status_code == 200
    saved = alice.get_file("results.txt")
    assert saved.status_code == 200 and saved.json()["content"] == "reduced on the first instance"
    alice.stop_server()
    wait_until(lambda: not cloud.servers(), 30, "the second server to be deleted")
    assert [v.id for v in cloud.volumes()] == [volume.id]
    alice.close()
