"""Fault soak: many spawns and stops through the OpenStack simulator while the cloud misbehaves and the hub restarts.

``--people`` people (threads, each with her own HTTP session) start an instance, reach it through the proxy
and stop it, again and again, until ``--spawns`` spawns have been asked for. Meanwhile a chaos loop injects,
at random (``--seed``), the faults an OpenStack cloud has: 500 answers and timeouts on create, list, delete
and volume calls; servers that end in ERROR; the project's quota used up for a while; slow deletes. The hub
is SIGKILLed at one third of the spawns and stopped cleanly (SIGTERM) at two thirds, and started again each
time (instances keep running: ``VISA_KEEP_SERVERS=1``).

At the end every instance is stopped and the cloud must hold nothing but one home volume per person: no
server, port or floating IP (:func:`scale_support.leaks`). Every failed spawn must have ended with a message
a person understands (what failed and what to do, no traceback), no request may have got a 500, and every
successful spawn must have reached her own instance. Instances are the stand-in Lab (see
test_openstack_restart.py for why).

    .venv/bin/python benchmarks/openstack_soak.py --spawns 1000 [--people 20] [--seed 15]

The CI version (100 spawns) is tests/integration/test_scale_openstack_soak.py.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "integration")]

from hubtest import UserSession, wait_until  # noqa: E402
from openstack_support import STANDIN, kill_hub, start_cloud, start_openstack_hub  # noqa: E402
from scale_support import leaks  # noqa: E402

EXPERIMENT = "LOKI-2026-042"
CREATE, LIST = r"/compute/v2\.1/servers$", r"/compute/v2\.1/servers/detail$"
DELETE, VOLUMES = r"/compute/v2\.1/servers/[0-9a-f-]{36}$", r"/volumev3/.*/volumes"
#: what a message for people says: what to do next
ADVICE = ("try again", "contact support", "Stop another instance", "choose a smaller flavour")
#: what must never reach a person
RAW = ("Traceback", "Exception", "Internal Server Error", "HTTP 500", "InvalidStateError", "None")
HUB_DOWN = (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError, httpx.ReadTimeout,
            httpx.WriteError, httpx.PoolTimeout, httpx.ConnectTimeout)


def understandable(message: str) -> bool:
    return bool(message) and any(a in message for a in ADVICE) and not any(r in message for r in RAW)


@dataclass
class Soak:
    """What happened, counted."""

    asked: int = 0
    ready: int = 0
    reached: int = 0
    failed: Counter = field(default_factory=Counter)  # message (first 90 chars) -> count
    not_understandable: list[str] = field(default_factory=list)
    lost_in_restart: int = 0
    server_errors: list[str] = field(default_factory=list)  # any 500 answer seen by a person
    wrong_instance: list[str] = field(default_factory=list)
    faults: Counter = field(default_factory=Counter)
    restarts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take_ticket(self, limit: int) -> int | None:
        with self.lock:
            if self.asked >= limit:
                return None
            self.asked += 1
            return self.asked


class Chaos:
    """Random cloud faults while the soak runs, and the two hub restarts."""

    MENU = ("create_500", "create_500_x4", "create_timeout", "list_500_x3", "list_timeout", "error_build",
            "quota_squeeze", "slow_deletes", "delete_500_x3", "volume_500")

    def __init__(self, cloud: Any, rng: random.Random, soak: Soak):
        self.cloud, self.rng, self.soak = cloud, rng, soak
        self.sim = cloud.sim

    def inject(self) -> None:
        fault = self.rng.choice(self.MENU)
        self.soak.faults[fault] += 1
        faults = self.sim.faults
        if fault == "create_500":
            faults.add(path=CREATE, method="POST", status=500, count=1)
        elif fault == "create_500_x4":
            faults.add(path=CREATE, method="POST", status=500, count=4)
        elif fault == "create_timeout":  # answered after the hub gave up; the server exists all the same
            faults.add(path=CREATE, method="POST", status=None, delay=4, count=1)
        elif fault == "list_500_x3":
            faults.add(path=LIST, method="GET", status=500, count=3)
        elif fault == "list_timeout":
            faults.add(path=LIST, method="GET", status=None, delay=4, count=1)
        elif fault == "error_build":
            faults.fail_server_creates(1)
        elif fault == "quota_squeeze":
            self.sim.set_quota(cores=2)
            threading.Timer(self.rng.uniform(2, 6), lambda: self.sim.set_quota(cores=-1)).start()
        elif fault == "slow_deletes":
            self.sim.delete_delay = self.rng.uniform(2, 6)
            threading.Timer(self.rng.uniform(5, 15), lambda: setattr(self.sim, "delete_delay", 0.0)).start()
        elif fault == "delete_500_x3":
            faults.add(path=DELETE, method="DELETE", status=500, count=3)
        elif fault == "volume_500":
            faults.add(path=VOLUMES, method="GET", status=500, count=1)

    def calm(self) -> None:
        self.sim.faults.clear()
        self.sim.set_quota(cores=-1)
        self.sim.delete_delay = 0.0


class Person:
    """One person's loop: spawn, follow progress, reach her instance, stop; survives hub restarts."""

    def __init__(self, env: Any, name: str, soak: Soak, limit: int, hub_up: threading.Event):
        self.env, self.name, self.soak, self.limit, self.hub_up = env, name, soak, limit, hub_up
        self.session = UserSession(env.hub, name)

    def call(self, func, *args, **kwargs):
        """A request to the hub; while it restarts, wait for it and ask again."""
        deadline = time.monotonic() + 300
        while True:
            self.hub_up.wait(timeout=300)
            try:
                response = func(*args, **kwargs)
            except HUB_DOWN:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
                continue
            restarting = response.status_code == 503 and "The hub is restarting" in response.text
            if restarting or (response.status_code in (502, 503)
                              and "json" not in response.headers.get("content-type", "")):
                # the proxy while the hub restarts (the hub's own 503s are JSON with a message), or the hub
                # answering a request its clean shutdown cut off (visa_hub.restart): try again, as she is told
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the hub did not come back: {response.status_code}")
                time.sleep(1)
                continue
            if response.status_code >= 500 and response.status_code != 503:
                self.soak.server_errors.append(f"{self.name}: {response.status_code} {response.request.url}: "
                                               f"{response.text[:200]}")
            return response

    def model(self) -> dict:
        response = self.call(self.session.http.get, f"/hub/api/users/{self.name}", headers=self.session._hub_xsrf())
        if response.status_code == 403:  # a restarted hub may want a fresh login (it does not, but be sure)
            self.login()
            return self.model()
        return response.json().get("servers", {}).get("", {})

    def login(self) -> None:
        response = self.call(self.session.login)
        assert response.status_code == 200, (self.name, response.status_code, response.text[:300])

    def run(self) -> None:
        self.login()
        while self.soak.take_ticket(self.limit) is not None:
            self.one_spawn()
            self.stop()

    def one_spawn(self) -> None:
        response = self.call(self.session.http.post, f"/hub/api/users/{self.name}/server",
                             json={"experiment": EXPERIMENT, "flavour": "small"}, headers=self.session._hub_xsrf())
        if response.status_code == 503:  # failed before the hub's slow_spawn_timeout: the message is the answer
            self.record_failure(response.json().get("message", ""))
            return
        if response.status_code == 400 and "pending check" in response.text:
            # right after a restart the hub re-checks the instance that a spawn in flight left (re-attached,
            # booting): her page shows it busy, and she waits, as the driver does
            self.settle(f"{self.name}'s instance to be re-checked after the restart")
            messages = None
        elif response.status_code in (201, 202) or (response.status_code == 400 and (
                "pending" in response.text or "already running" in response.text)):
            # (a 400 'pending'/'already running': the request went through before a restart and its answer was
            # lost; follow that spawn)
            messages = self.progress()
        else:
            self.record_failure(f"spawn request answered {response.status_code}: {response.text[:200]}")
            return
        if messages is None:  # the stream broke in a restart, or there was none: the hub knows what became of it
            wait_until(lambda: (m := self.model()) == {} or m.get("ready") or None, 180,
                       f"{self.name}'s spawn to settle after a restart", interval=1)
            if not self.model():
                with self.soak.lock:
                    self.soak.lost_in_restart += 1
                return
        elif not self.model().get("ready"):
            self.record_failure(messages[-1] if messages else "")
            return
        with self.soak.lock:
            self.soak.ready += 1
        answer = self.call(self.session.http.get, f"/user/{self.name}/api/status")
        if answer.status_code == 200 and answer.json().get("user") == self.name:
            with self.soak.lock:
                self.soak.reached += 1
        else:
            self.soak.wrong_instance.append(f"{self.name}: {answer.status_code} {answer.text[:200]}")

    def progress(self) -> list[str] | None:
        try:
            self.hub_up.wait(timeout=300)
            return self.session.progress_messages(timeout=300)
        except HUB_DOWN:
            return None
        except json.JSONDecodeError:
            return None

    def record_failure(self, message: str) -> None:
        with self.soak.lock:
            self.soak.failed[re.sub(r"\s+", " ", message)[:90]] += 1
            if not understandable(message):
                self.soak.not_understandable.append(message[:300])

    def settle(self, what: str) -> None:
        """Wait while the hub re-checks her instance after a restart (JupyterHub's pending 'check')."""
        wait_until(lambda: self.model().get("pending") != "check", 300, what, interval=0.5)

    def stop(self) -> None:
        # (JupyterHub answers a stop during its post-restart check with a 500: wait for the check, as her page does)
        self.settle(f"{self.name}'s instance to be re-checked after the restart")
        if not self.model():
            return
        self.call(self.session.http.delete, f"/hub/api/users/{self.name}/server", headers=self.session._hub_xsrf())
        wait_until(lambda: not self.model(), 300, f"{self.name}'s instance to stop", interval=0.5)


def run_soak(tmp: Path, spawns: int, people: int, seed: int = 15, chaos_every: float = 1.5,
             log=print, instance_env: Path | None = None) -> tuple[Soak, dict[str, list[str]], Any]:
    """The whole soak; returns what happened, the leaks found at the end, and the hub's log text.

    ``instance_env``: the provisioned instance environment the simulated VMs run the stand-in Lab from
    (default: :func:`visa_hub.testing.instance_env.ensure_instance_env`)."""
    if instance_env is None:
        from visa_hub.testing.instance_env import ensure_instance_env

        instance_env = ensure_instance_env()
    rng = random.Random(seed)
    soak = Soak()
    names = [f"soak{n:02d}" for n in range(1, people + 1)]
    cloud = start_cloud(tmp, boot_delay=0.3, instance_env=instance_env)
    hubs: list[Any] = []
    try:
        env = start_openstack_hub(hubs, cloud, tmp, users=names, cmd=STANDIN, args=[],
                                  floating_ip_network="public", api_workers=6, volume_wait_timeout=180.0,
                                  extra_env={"VISA_KEEP_SERVERS": "1"})
        chaos = Chaos(cloud, rng, soak)
        hub_up = threading.Event()
        hub_up.set()
        restart_at = [spawns // 3, 2 * spawns // 3]
        done = threading.Event()

        def chaos_loop() -> None:
            while not done.wait(chaos_every):
                if rng.random() < 0.6:
                    chaos.inject()
                if restart_at and soak.asked >= restart_at[0]:
                    how = "SIGKILL" if len(restart_at) == 2 else "SIGTERM"
                    restart_at.pop(0)
                    hub_up.clear()
                    (kill_hub if how == "SIGKILL" else lambda hub: hub.stop())(env.hub)
                    began = time.monotonic()
                    env.hub.start(timeout=180)
                    hub_up.set()
                    soak.restarts.append(f"{how} at spawn {soak.asked}: back in {time.monotonic() - began:.1f} s")
                    log(f"hub restarted ({soak.restarts[-1]})")

        chaos_thread = threading.Thread(target=chaos_loop, daemon=True)
        began = time.monotonic()
        chaos_thread.start()
        with ThreadPoolExecutor(people) as pool:
            for future in [pool.submit(Person(env, name, soak, spawns, hub_up).run) for name in names]:
                future.result()
        done.set()
        chaos_thread.join()
        chaos.calm()
        log(f"{soak.asked} spawns in {time.monotonic() - began:.0f} s; settling")

        # stop whatever still runs, then let the reaper finish what the faults left
        with env.api() as api:
            for user in api.get("/users", params={"state": "active"}).json():
                api.delete(f"/users/{user['name']}/server")

        def settled() -> bool:
            return not cloud.servers() and not cloud.floating_ips() and not cloud.ports()

        wait_until(settled, 300, "the cloud to hold no server, port or floating IP", interval=2)
        found = leaks(cloud, set())
        homes = Counter((v.metadata or {}).get("visa_user") for v in cloud.volumes())
        if set(homes) - set(names) or any(n > 1 for n in homes.values()):
            found["volumes"].append(f"homes: {dict(homes)}")
        found["volumes"] += [f"volume {v.name} {v.status}" for v in cloud.volumes() if v.status != "available"]
        return soak, found, env.hub.log_text()
    finally:
        for hub in hubs:
            hub.stop()
        cloud.thread.stop()


def hub_500s(hub_log: str, *, during_shutdown: bool = False) -> list[str]:
    """Requests the hub answered with 500 (JupyterHub's request log: ``[E ... log:192] 500 GET /hub/...``), each
    with the last error logged before it. Those logged while a clean shutdown cancels the requests in flight
    (between "Received signal SIGTERM" and the next "is now running") are listed only ``during_shutdown``: the
    person gets visa-hub's 503 "the hub is restarting" for them (visa_hub.restart; JupyterHub's log still says
    500), and any other answer reaches :attr:`Soak.server_errors`."""
    found, last_error, stopping = [], "", False
    for line in hub_log.splitlines():
        if "Received signal SIGTERM" in line:
            stopping = True
        elif "JupyterHub is now running" in line:
            stopping = False
        if re.search(r"\] 500 (GET|POST|DELETE|PUT|PATCH) ", line):
            if stopping == during_shutdown:
                found.append(f"{line} (after: {last_error})")
        elif line.startswith("[E ") or re.match(r"\s*\w+(Error|Exception):", line):
            last_error = line.strip()[:300]
    return found


def report(soak: Soak, found: dict[str, list[str]], hub_log: str) -> str:
    failed = sum(soak.failed.values())
    lines = [f"spawns asked {soak.asked}: ready {soak.ready} (reached through the proxy {soak.reached}), failed "
             f"with a message {failed}, lost in a hub restart {soak.lost_in_restart}",
             f"faults injected: {dict(sorted(soak.faults.items()))}", *(f"restart: {r}" for r in soak.restarts),
             "failure messages:"]
    lines += [f"  {n:4d} × {message}" for message, n in soak.failed.most_common()]
    lines.append(f"not understandable: {len(soak.not_understandable)}; 500 answers: {len(soak.server_errors)}; "
                 f"wrong or unreachable instance: {len(soak.wrong_instance)}; 500s in the hub log: "
                 f"{len(hub_500s(hub_log))} (and {len(hub_500s(hub_log, during_shutdown=True))} logged for requests "
                 "cut off by the clean shutdown)")
    lines += [f"  hub: {line[:300]}" for line in hub_500s(hub_log)[:5]]
    lines += [f"  hub (shutting down): {line[:300]}" for line in hub_500s(hub_log, during_shutdown=True)[:5]]
    lines.append(f"leaked at the end: { {k: len(v) for k, v in found.items()} }")
    for kind, items in found.items():
        lines += [f"  {kind}: {item}" for item in items[:10]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spawns", type=int, default=1000)
    parser.add_argument("--people", type=int, default=20)
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    print(f"load average at start: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}", flush=True)
    with tempfile.TemporaryDirectory(prefix="visa-soak-") as tmp:
        soak, found, hub_log = run_soak(Path(tmp), args.spawns, args.people, args.seed,
                                        log=lambda text: print(text, flush=True))
    print(report(soak, found, hub_log))
    ok = not any(found.values()) and not soak.not_understandable and not soak.server_errors \
        and not soak.wrong_instance and soak.reached == soak.ready and not hub_500s(hub_log)
    print("result:", "zero leaked resources, every failure explained, no 500" if ok else "PROBLEMS (see above)")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
