"""A hub killed while 20 instances run and 5 are building re-attaches to all 25, without duplicates.

The 25 cloud servers are real simulator servers created through openstacksdk by the hub; what runs inside
them is a minimal HTTP responder (openstack_standin_lab.py), not JupyterLab: the test is about the hub's
bookkeeping of cloud servers across a restart, and 25 JupyterLabs do not fit on a 2-core CI machine. The
hub still reaches every instance on the address the cloud gave it. The responder runs where Lab would: in
the simulated VM, as the person, from the instance environment, started by the same user_data; the five VMs
that boot after the restart trade their one-time bootstrap codes with the restarted hub. Real JupyterLab
through the proxy is covered by test_openstack_spawner.py and test_openstack_isolation.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hubtest import UserSession, wait_until
from openstack_support import STANDIN, Cloud, kill_hub, spawn_all, start_openstack_hub
from spawners.openstack.account import default_uid

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

USERS = [f"user{n:02d}" for n in range(1, 26)]


def test_restarted_hub_reattaches_25_instances(cloud: Cloud, hubs, tmp_path: Path):
    env = start_openstack_hub(hubs, cloud, tmp_path, users=USERS, cmd=STANDIN, args=[],
                              extra_env={"VISA_KEEP_SERVERS": "1"})
    sessions = {name: UserSession(env.hub, name) for name in USERS}
    for session in sessions.values():
        assert session.login().status_code == 200
    spawn_all([sessions[name] for name in USERS[:20]], experiment="LOKI-2026-042", flavour="small")
    for name in USERS[:20]:
        sessions[name].wait_ready(timeout=90)

    cloud.sim.boot_delay = 20.0  # the last five are still building when the hub dies, and boot after it
    spawn_all([sessions[name] for name in USERS[20:]], experiment="LOKI-2026-042", flavour="small")
    wait_until(lambda: len(cloud.servers()) == 25, 30, "25 servers in the cloud")
    before = {s.metadata["visa_user"]: (s.id, s.status) for s in cloud.servers()}
    assert sorted(status for _, status in before.values()) == ["ACTIVE"] * 20 + ["BUILD"] * 5

    kill_hub(env.hub)
    env.hub.start()
    for name in USERS:
        sessions[name].wait_ready(timeout=90)  # all 25 ready again, the building five included

    after = {s.metadata["visa_user"]: (s.id, s.status) for s in cloud.servers()}
    assert {u: i for u, (i, _) in after.items()} == {u: i for u, (i, _) in before.items()}  # same servers
    assert len(cloud.servers()) == 25 and {status for _, status in after.values()} == {"ACTIVE"}
    assert env.owned_server_ids() == {i for i, _ in after.values()}  # the hub's state names every one
    for name in (USERS[0], *USERS[20:]):  # reachable through the proxy, on the address the cloud gave
        response = sessions[name].http.get(f"/user/{name}/api/status")
        assert response.status_code == 200 and response.json()["user"] == name
        # running as her, from the instance environment, with a token the hub accepts as hers: the building
        # five booted after the restart and traded their bootstrap codes with the restarted hub
        status = response.json()
        assert (status["uid"], status["python"], status["token_owner"]) == (default_uid(name), "/opt/visa-instance",
                                                                             name)
    log = env.hub.log_text()
    # the building five: re-attached from the state the hub committed before creating them (their bootstrap
    # codes), or by their metadata if it died before recording their server ids; new tokens for all five
    assert log.count("found by its metadata") <= 5
    assert log.count("Issued a new API token for") == 5
    assert "Reaper" not in log
    for session in sessions.values():
        session.close()
