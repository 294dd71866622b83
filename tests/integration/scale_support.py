"""Shared by the scale and operations tests: what the cloud holds that nobody should, logins in parallel.

:func:`leaks` reads the OpenStack simulator's own state (not the hub's view) and names every resource that
outlived its purpose: servers the hub does not own, ports without a live server, floating IPs not on a live
server's port, volumes that are not a person's one home volume or are attached to a server that is gone, and
VM processes still running for deleted servers.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hubtest import UserSession


def leaks(cloud: Any, owned_server_ids: set[str]) -> dict[str, list[str]]:
    """Every leaked cloud resource, by kind (empty lists: nothing leaked)."""

    def read(sim: Any) -> dict[str, list[str]]:
        state = sim.state
        live = {s.id: s for s in state.servers.values() if not s.deleted}
        live_ports = {p for s in live.values() for p in s.port_ids}
        found: dict[str, list[str]] = {"servers": [], "ports": [], "floating_ips": [], "volumes": [],
                                       "processes": []}
        for server in live.values():
            if server.id not in owned_server_ids:
                found["servers"].append(f"{server.name} ({server.id}, {server.status}) not in the hub's state")
        for server in state.servers.values():
            if server.deleted and server.process is not None and server.process.poll() is None:
                found["processes"].append(f"VM process {server.process.pid} of deleted server {server.name}")
        for port in state.ports.values():
            if port.get("device_owner", "").startswith("compute:") or port["id"] in live_ports:
                if port.get("device_id") not in live:
                    found["ports"].append(f"port {port['id']} of gone server {port.get('device_id')}")
            elif port.get("device_owner", "") == "" and port.get("name", "").startswith("visa"):
                found["ports"].append(f"port {port['id']} ({port.get('name')}) on no server")
        for fip in state.floating_ips.values():
            if not fip.get("port_id") or fip["port_id"] not in live_ports:
                found["floating_ips"].append(f"floating IP {fip.get('floating_ip_address')} on no live server")
        homes = Counter()
        for volume in state.volumes.values():
            meta = volume.metadata or {}
            if meta.get("visa_role") != "home":
                found["volumes"].append(f"volume {volume.name} ({volume.id}) is not a home volume")
                continue
            homes[meta.get("visa_user")] += 1
            for attachment in volume.attachments:
                if attachment.server_id not in live:
                    found["volumes"].append(f"home of {meta.get('visa_user')} attached to gone server "
                                            f"{attachment.server_id}")
        found["volumes"] += [f"{user} has {n} home volumes" for user, n in homes.items() if n > 1]
        return found

    return cloud.read(read)


def assert_no_leaks(cloud: Any, owned_server_ids: set[str]) -> None:
    found = leaks(cloud, owned_server_ids)
    assert not any(found.values()), {kind: items[:10] for kind, items in found.items() if items}


def log_in_all(hub: Any, names: list[str], workers: int = 8) -> dict[str, UserSession]:
    """Log everyone in, a few at a time (each login asks the User Office and writes auth_state)."""
    sessions = {name: UserSession(hub, name) for name in names}

    def login(session: UserSession) -> None:
        response = session.login()
        assert response.status_code == 200, (session.username, response.status_code, response.text[:300])

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(login, sessions.values()))
    return sessions


def ready_servers(api: Any) -> dict[str, bool]:
    """user name → whether her default server is ready, for every user with a server (one hub API call)."""
    users = api.get("/users", params={"state": "active"}).json()
    return {u["name"]: bool(u.get("servers", {}).get("", {}).get("ready")) for u in users
            if "" in u.get("servers", {})}


def wait_all_ready(api: Any, names: list[str], timeout: float) -> float:
    """Seconds until every one of ``names`` has a ready server (fails with the missing ones after timeout)."""
    began = time.monotonic()
    missing: list[str] = list(names)
    while time.monotonic() - began < timeout:
        try:
            ready = ready_servers(api)
        except Exception:  # noqa: BLE001  (the hub may still be starting)
            time.sleep(0.5)
            continue
        missing = [n for n in names if not ready.get(n)]
        if not missing:
            return time.monotonic() - began
        time.sleep(0.5)
    raise AssertionError(f"{len(missing)} servers not ready after {timeout:g} s: {missing[:10]}")
