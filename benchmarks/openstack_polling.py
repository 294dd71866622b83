"""OpenStack backend: cloud API requests per poll cycle with 1, 50 and 200 instances, and Lab-ready time.

Part 1 (in process): the OpenStack simulator holds N servers carrying the hub's tag; N real
OpenStackSpawner objects (state = their server id, as after a hub restart) share one fleet. Per cycle the
poller lists the servers and every spawner's ``poll()`` runs. Requests are counted by the simulator.
Goal: the same number of requests per cycle for every N.

Part 2 (real hub): one user spawns through the hub with a simulated boot of ``--boot`` seconds (Nova's
BUILD phase) and real jupyterhub-singleuser; measures request-to-Lab-served-through-the-proxy time and
the cloud requests made meanwhile.

    .venv/bin/python benchmarks/openstack_polling.py [--sizes 1 50 200] [--cycles 10] [--boot 60] [--no-lab]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "integration")]
warnings.filterwarnings("ignore")

from traitlets.config import Config  # noqa: E402

from spawners.openstack import OpenStackSpawner  # noqa: E402
from spawners.openstack.fleet import hub_tag  # noqa: E402
from visa_hub.testing.openstack_sim import SimulatorThread  # noqa: E402


async def requests_per_cycle(sim_thread: SimulatorThread, n: int, cycles: int) -> tuple[float, dict[str, int]]:
    config = Config()
    auth = sim_thread.sim.connect_kwargs()
    config.OpenStackSpawner.cloud_auth = {k: v for k, v in auth.items() if k not in ("load_yaml_config",
                                                                                    "load_envvars")}
    config.OpenStackSpawner.hub_id = f"bench-{n}"
    config.OpenStackSpawner.cloud_poll_interval = 0.3
    config.OpenStackSpawner.cloud_poll_fast_interval = 0.3
    log = logging.getLogger("bench")
    spawners = []
    tag = hub_tag(f"bench-{n}")
    ids = sim_thread.call(_create_servers, sim_thread.sim, n, tag)
    for i, server_id in enumerate(ids):
        spawner = OpenStackSpawner(user=SimpleNamespace(name=f"user{i}", url=f"/user/user{i}/"), config=config,
                                   log=log)
        spawner.load_state({"server_id": server_id, "instance_ip": "127.0.0.1"})
        spawners.append(spawner)
    fleet = spawners[0].fleet
    await fleet.poller.fresh()  # first cycle: authentication and version discovery, not counted
    await fleet.poller.next_cycle()
    sim_thread.sim.reset_stats()
    for _ in range(cycles):
        await fleet.poller.next_cycle()
        statuses = await asyncio.gather(*(s.poll() for s in spawners))
        assert all(status is None for status in statuses), statuses
    stats = sim_thread.sim.stats()
    await fleet.close()
    return sum(stats.values()) / cycles, stats


def _create_servers(sim, n: int, tag: str) -> list[str]:
    """N ACTIVE servers straight into the simulator's state (creating 200 through the API is not measured)."""
    from visa_hub.testing.openstack_sim.state import Server, new_uuid, utcnow

    flavor = next(iter(sim.state.flavors.values()))
    ids = []
    for i in range(n):
        now = utcnow()
        server = Server(id=new_uuid(), name=f"bench-{i}", project_id=sim.project.id, user_id=sim.user.id,
                        flavor=flavor, image_id=None, created=now, updated=now, status="ACTIVE",
                        vm_state="active", task_state=None, power_state=1, tags=[tag],
                        metadata={"visa_user": f"user{i}"}, ip=f"127.1.{i // 250}.{i % 250 + 2}")
        sim.state.servers[server.id] = server
        ids.append(server.id)
    return ids


def lab_ready_time(boot: float) -> dict[str, float]:
    from hubtest import UserSession
    from openstack_support import start_cloud, start_openstack_hub
    from visa_hub.testing.instance_env import ensure_instance_env

    instance_env = ensure_instance_env()  # what the simulated VM image holds at /opt/visa-instance
    with tempfile.TemporaryDirectory(prefix="visa-os-bench-") as tmp:
        cloud = start_cloud(Path(tmp), boot_delay=boot, instance_env=instance_env)
        hubs: list = []
        try:
            env = start_openstack_hub(hubs, cloud, Path(tmp))
            alice = UserSession(env.hub, "alice")
            alice.login()
            cloud.sim.reset_stats()
            began = time.perf_counter()
            alice.submit_spawn_form(experiment="LOKI-2026-042", flavour="medium")
            active_at = None
            while True:
                servers = cloud.servers()
                if active_at is None and servers and servers[0].status == "ACTIVE":
                    active_at = time.perf_counter() - began
                response = alice.lab()
                if response.status_code == 200 and response.url.path == "/user/alice/lab":
                    break
                if time.perf_counter() - began > boot + 120:
                    raise TimeoutError(env.hub.log_tail())
                time.sleep(0.2)
            ready = time.perf_counter() - began
            requests = sum(cloud.sim.stats().values())
            lists = cloud.sim.stats().get("GET /compute/v2.1/servers/detail", 0)
            alice.stop_server()
        finally:
            for hub in hubs:
                hub.stop()
            cloud.thread.stop()
    return {"active": active_at or float("nan"), "ready": ready, "requests": requests, "lists": lists}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 50, 200])
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--boot", type=float, default=60.0, help="simulated Nova build time (s)")
    parser.add_argument("--no-lab", action="store_true", help="skip the Lab-ready measurement")
    args = parser.parse_args()

    print(f"cloud API requests per poll cycle ({args.cycles} cycles, every spawner polls each cycle):")
    with tempfile.TemporaryDirectory(prefix="visa-os-bench-") as tmp:
        from visa_hub.testing.openstack_sim import Quota

        unlimited = Quota(instances=-1, cores=-1, ram=-1, volumes=-1, gigabytes=-1, floating_ips=-1)
        with SimulatorThread(workdir=Path(tmp), quota=unlimited) as sim_thread:
            for n in args.sizes:
                per_cycle, stats = asyncio.run(requests_per_cycle(sim_thread, n, args.cycles))
                detail = ", ".join(f"{k}: {v / args.cycles:g}" for k, v in stats.items())
                print(f"  {n:4d} instances: {per_cycle:5.2f} requests/cycle  ({detail})")
    if not args.no_lab:
        result = lab_ready_time(args.boot)
        print(f"Lab-ready with a simulated {args.boot:g} s boot: {result['ready']:.1f} s from spawn request to "
              f"Lab served through the proxy (server ACTIVE after {result['active']:.1f} s); "
              f"{result['requests']} cloud requests meanwhile, {result['lists']} of them list calls")


if __name__ == "__main__":
    main()
