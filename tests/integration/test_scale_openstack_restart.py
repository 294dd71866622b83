"""Restart at scale: the hub SIGKILLed with 100 running and 20 building OpenStack instances re-attaches to all.

test_openstack_restart.py's approach at 120 instances: real simulator servers created by the hub through
openstacksdk, each running the minimal stand-in Lab (see that file for why not JupyterLab), floating IPs on.
After the kill and restart: every person's server is the one she had (none duplicated, none lost), the hub's
state names exactly the cloud's servers, and nothing is left over — servers, ports, floating IPs, volumes.
The times from the new hub process to the running ones and to the last one re-attached are printed (``-s``).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from hubtest import wait_until
from openstack_support import STANDIN, Cloud, kill_hub, spawn_all, start_openstack_hub
from scale_support import assert_no_leaks, log_in_all, wait_all_ready

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::openstack.warnings.OpenStackDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]

RUNNING, BUILDING = 100, 20
USERS = [f"scale{n:03d}" for n in range(1, RUNNING + BUILDING + 1)]
OPTIONS = {"experiment": "LOKI-2026-042", "flavour": "small"}


def test_scale_restart_reattaches_100_running_and_20_building(cloud: Cloud, hubs, tmp_path: Path):
    env = start_openstack_hub(hubs, cloud, tmp_path, users=USERS, cmd=STANDIN, args=[],
                              floating_ip_network="public", api_workers=8,
                              extra_env={"VISA_KEEP_SERVERS": "1"})
    sessions = log_in_all(env.hub, USERS)
    api = env.api()

    began = time.monotonic()
    for batch in range(0, RUNNING, 25):  # as people arrive: in waves, not all in one second
        spawn_all([sessions[name] for name in USERS[batch:batch + 25]], **OPTIONS)
    wait_all_ready(api, USERS[:RUNNING], timeout=600)
    print(f"\n{RUNNING} instances running after {time.monotonic() - began:.1f} s")

    cloud.sim.boot_delay = 60.0  # the last twenty are still building when the hub dies
    spawn_all([sessions[name] for name in USERS[RUNNING:]], **OPTIONS)
    wait_until(lambda: len(cloud.servers()) == len(USERS), 120, f"{len(USERS)} servers in the cloud", interval=0.5)
    before = {s.metadata["visa_user"]: s.id for s in cloud.servers()}
    statuses = sorted(s.status for s in cloud.servers())
    assert statuses.count("ACTIVE") == RUNNING and statuses.count("BUILD") == BUILDING, statuses

    kill_hub(env.hub)
    cloud.sim.boot_delay = 0.3
    restarted = time.monotonic()
    env.hub.start(timeout=300)
    answering = time.monotonic() - restarted
    running_back = wait_all_ready(api, USERS[:RUNNING], timeout=600) + answering
    all_back = wait_all_ready(api, USERS, timeout=600) + answering
    print(f"after the restart: hub answering in {answering:.1f} s, the {RUNNING} running instances re-attached in "
          f"{running_back:.1f} s, all {len(USERS)} (the {BUILDING} building ones booted) in {all_back:.1f} s")

    after = {s.metadata["visa_user"]: s.id for s in cloud.servers()}
    assert after == before  # the same server for every person: none lost, none duplicated, none replaced
    assert {s.status for s in cloud.servers()} == {"ACTIVE"}
    owned = env.owned_server_ids()
    assert owned == set(after.values())  # the hub's state names exactly the cloud's servers
    assert len(cloud.floating_ips()) == len(USERS) and len(cloud.volumes()) == len(USERS)
    assert_no_leaks(cloud, owned)
    for name in (USERS[0], USERS[RUNNING - 1], USERS[RUNNING], USERS[-1]):  # running and building ones alike
        response = sessions[name].http.get(f"/user/{name}/api/status")
        assert response.status_code == 200 and response.json()["user"] == name
    assert "Reaper: deleted" not in env.hub.log_text()

    # and they all stop cleanly: nothing of the 120 is left but the homes
    with ThreadPoolExecutor(20) as pool:
        stops = list(pool.map(lambda name: api.delete(f"/users/{name}/server").status_code, USERS))
    assert set(stops) <= {202, 204}, stops
    wait_until(lambda: not cloud.servers() and not cloud.floating_ips() and not cloud.ports(), 300,
               "every server, port and floating IP deleted", interval=1)
    assert_no_leaks(cloud, set())
    assert {v.status for v in cloud.volumes()} == {"available"}
    for session in sessions.values():
        session.close()
    api.close()
