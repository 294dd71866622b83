"""A fault matrix over many spawns: each user reads a clear message, nothing is left that no spawner owns.

Faults are injected into the simulator's API (quota, ERROR builds, 500s and timeouts on create, list and
delete); the hub uses the real openstacksdk with a 3 s API timeout. Instances run the minimal HTTP
stand-in (see test_openstack_restart.py for why); floating IPs are on, so their clean-up is checked too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hubtest import UserSession, wait_until
from openstack_support import STANDIN, Cloud, spawn, start_openstack_hub

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

CREATE = r"/compute/v2\.1/servers$"
LIST = r"/compute/v2\.1/servers/detail$"
DELETE = r"/compute/v2\.1/servers/[0-9a-f-]{36}$"
EXPERIMENT = "LOKI-2026-042"

# (user, what goes wrong, request faults, ERROR builds, expected: None = Lab ready, else the message shown)
MATRIX = [
    ("quota", "project quota used up", [], 0,
     "No capacity for flavour medium for experiment LOKI-2026-042 (the cloud project's cores quota is used up)"),
    ("novalid", "build ends in ERROR", [], 1,
     "could not be started: the cloud has no free host for an instance of this size right now"),
    ("create500", "one 500 on create", [dict(path=CREATE, method="POST", status=500, count=1)], 0, None),
    ("create500x9", "create keeps failing", [dict(path=CREATE, method="POST", status=500, count=9)], 0,
     "The cloud kept failing while starting your medium instance for experiment LOKI-2026-042"),
    # the timed-out request still creates its server 4 s later: the hub adopts it or the reaper deletes it
    ("createslow", "create times out once", [dict(path=CREATE, method="POST", status=None, delay=4, count=1)],
     0, None),
    ("createslowx9", "create always times out (and never creates)",
     [dict(path=CREATE, method="POST", status=504, delay=4, count=9)], 0,
     "The cloud did not answer in time while starting your medium instance for experiment LOKI-2026-042"),
    ("list500", "list fails 3 times", [dict(path=LIST, method="GET", status=500, count=3)], 0, None),
    ("listslow", "list times out twice", [dict(path=LIST, method="GET", status=None, delay=4, count=2)], 0, None),
    ("ok1", "no fault", [], 0, None),
    ("ok2", "no fault", [], 0, None),
]
USERS = [row[0] for row in MATRIX]


def create_calls(cloud: Cloud) -> int:
    return cloud.sim.stats().get("POST /compute/v2.1/servers", 0)


def test_fault_matrix_leaves_nothing_behind(cloud: Cloud, hubs, tmp_path: Path):
    env = start_openstack_hub(hubs, cloud, tmp_path, users=USERS, cmd=STANDIN, args=[],
                              floating_ip_network="public")
    sessions = {name: UserSession(env.hub, name) for name in USERS}
    for session in sessions.values():
        assert session.login().status_code == 200

    seen: dict[str, str] = {}
    for user, what, faults, error_builds, expected in MATRIX:
        cloud.sim.set_quota(cores=3 if user == "quota" else -1)
        for fault in faults:
            cloud.sim.faults.add(**fault)
        if error_builds:
            cloud.sim.faults.fail_server_creates(error_builds, message="No valid host was found. There are "
                                                 "not enough hosts available.")
        creates = create_calls(cloud)
        spawn(sessions[user], experiment=EXPERIMENT, flavour="medium")
        messages = sessions[user].progress_messages(timeout=60)
        cloud.sim.faults.clear()
        if expected is None:
            sessions[user].wait_ready(timeout=30)
            seen[user] = "ready"
        else:
            assert expected in messages[-1], (what, messages)
            seen[user] = messages[-1]
            assert not sessions[user].server_model(), what  # the hub no longer lists a server for her
        if user == "quota":
            assert create_calls(cloud) - creates == 1  # refused by quota: never retried
        if user == "create500x9":
            assert create_calls(cloud) - creates == 4  # 1 + 3 bounded retries, then a clear message
    cloud.sim.set_quota(cores=-1)
    assert [u for u, result in seen.items() if result == "ready"] == \
        ["create500", "createslow", "list500", "listslow", "ok1", "ok2"]

    # stop one instance while its deletes fail: the user is released, the reaper finishes the delete
    cloud.sim.faults.add(path=DELETE, method="DELETE", status=500, count=5)
    sessions["ok1"].stop_server()
    # and one whose delete times out once
    cloud.sim.faults.add(path=DELETE, method="DELETE", status=None, delay=4, count=1)
    sessions["ok2"].stop_server()

    # once the reaper's grace (5 s) has passed: every server in the cloud is one the hub owns
    def settled() -> bool:
        servers = {s.id for s in cloud.servers()}
        return servers == env.owned_server_ids() and len(servers) == 4
    wait_until(settled, 40, "the cloud to hold exactly the servers the hub owns", interval=1)
    fips = cloud.floating_ips()
    assert len(fips) == 4 and all(f["port_id"] for f in fips)
    assert len(cloud.ports()) == 4
    log = env.hub.log_text()
    assert "Reaper: deleted server" in log  # the late servers of timed-out creates, the failed delete

    for user in ("create500", "createslow", "list500", "listslow"):
        sessions[user].stop_server()
    wait_until(lambda: not cloud.servers() and not cloud.ports() and not cloud.floating_ips(), 40,
             "no servers, ports or floating IPs left", interval=0.5)
    homes = cloud.volumes()  # one persistent home per user, kept through every failure and stop
    assert sorted(v.metadata["visa_user"] for v in homes) == sorted(USERS)
    assert {v.status for v in homes} == {"available"}
    for session in sessions.values():
        session.close()
