"""Hub load: N people log in, start an instance, use it through the proxy and stop it — visa-hub vs vanilla.

Each simulated person (plain asyncio + httpx, one HTTP client with its own cookies each) does what a browser
does, with ``--think`` seconds (exponentially distributed, mean) between steps:

1. ``login``        GET /hub/login, POST the form (demo password; vanilla: SharedPasswordAuthenticator)
2. ``spawn_request`` POST /hub/api/users/<u>/server (visa-hub: experiment and flavour), answered at once
3. ``spawn_ready``  the hub's progress stream until "ready" (from the request on: the whole start)
4. ``lab_api``      GET /user/<u>/api/status through configurable-http-proxy: her instance must answer as hers
5. ``stop_request`` DELETE /hub/api/users/<u>/server; ``stopped``: until her model shows no server, polling
   ``user_model`` (GET /hub/api/users/<u>) every 0.25 s

``--concurrency`` people are active at once until all ``--users`` are done. Printed per hub and step:
count, p50/p95/p99, errors; the hub's CPU (seconds and mean %) and peak memory (the proxy's separately);
then the ratios visa-hub / vanilla. "hub API" is every request answered by the hub itself (login,
spawn_request, stop_request, user_model).

Instances are a stand-in server (:mod:`visa_hub.testing.standin_lab`: a tiny HTTP responder started as a local
process exactly where JupyterLab would be), so 500 instances fit on 2 cores; both hubs start the same stand-in
with their own local-process spawner (visa-hub: ``visa-local`` with the site's policy, User Office and
dashboard; vanilla: SimpleLocalProcessSpawner). Both hubs use SQLite unless ``--postgres`` (a throw-away
PostgreSQL per hub). The machine's load average is printed at the start and end: compare runs only on a quiet
machine.

    .venv/bin/python benchmarks/hub_load.py --users 500 --concurrency 50 [--think 0.5] [--hubs visa-hub vanilla]

Goal (issue 15): at 500 users / 50 concurrent, hub API p99 ≤ 1.2 × vanilla and < 1 s, zero errors.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from hubtest import HubProcess  # noqa: E402

STANDIN = [sys.executable, "-m", "visa_hub.testing.standin_lab"]
EXPERIMENT = "LOKI-2026-042"
PASSWORD = "visa-demo"
HUB_API_STEPS = ("login", "spawn_request", "stop_request", "user_model")
STEPS = ("login", "spawn_request", "spawn_ready", "lab_api", "stop_request", "stopped", "user_model")
#: One TLS context for every simulated person: httpx builds one per client otherwise (24 ms of CPU each, on the
#: driver's event loop, where it delayed every answer in flight; a browser does not do that per person)
TLS_CONTEXT = ssl.create_default_context()
CONFIGS = {"visa-hub": HERE / "hub_load_config.py", "vanilla": HERE / "vanilla_jupyterhub_config.py"}


def usernames(n: int) -> list[str]:
    return [f"load{i:04d}" for i in range(1, n + 1)]


def people_file(path: Path, names: list[str]) -> Path:
    """A User Office (the demo's file backend) where everyone is a member of the running LoKI experiment."""
    path.write_text(yaml.safe_dump({
        "people": [{"username": u, "name": f"Load Tester {u[4:]}"} for u in names],
        "experiments": [{"code": EXPERIMENT, "proposal_pk": 1042, "title": "Nanodiscs under shear",
                         "instrument": "LoKI", "starts": "today-3d", "ends": "today+4d",
                         "members": {"principal-investigator": names[:1], "co-proposer": names[1:]}}],
    }))
    return path


# ------------------------------------------------------------------------------------------- measurements


@dataclass
class Results:
    """Latencies per step and errors, for one hub."""

    hub: str
    latencies: dict[str, list[float]] = field(default_factory=lambda: {step: [] for step in STEPS})
    errors: list[str] = field(default_factory=list)
    reached: set[str] = field(default_factory=set)  # users whose own instance answered through the proxy
    wall: float = 0.0
    resources: dict[str, float] = field(default_factory=dict)
    server_side: dict[str, float] = field(default_factory=dict)  # the hub's own request durations (quantiles)

    def record(self, step: str, seconds: float) -> None:
        self.latencies[step].append(seconds)

    def hub_api(self) -> list[float]:
        return [s for step in HUB_API_STEPS for s in self.latencies[step]]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


class ProcessSampler:
    """CPU seconds and peak resident memory of the hub process and of its children (the proxy), from /proc."""

    def __init__(self, pid: int, interval: float = 0.5):
        self.pid, self.interval = pid, interval
        self.peak_rss = {"hub": 0, "proxy": 0}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._ticks = os.sysconf("SC_CLK_TCK")

    def _children(self) -> list[int]:
        try:
            return [int(p) for p in Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()]
        except OSError:
            return []

    def cpu_seconds(self, pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def settle(self, quiet: float = 0.05, window: float = 1.0, timeout: float = 60.0) -> float:
        """Wait until the hub and its children (the proxy, its managed services) are done starting: less than
        ``quiet`` of a core over ``window`` seconds. Returns the seconds waited. Both hubs are measured from
        there, so neither run includes the other's start-up work (visa-hub starts its sessions service)."""
        began = time.monotonic()

        def tree_cpu() -> float:
            return self.cpu_seconds(self.pid) + sum(self.cpu_seconds(p) for p in self._children())

        while time.monotonic() - began < timeout:
            before = tree_cpu()
            time.sleep(window)
            if tree_cpu() - before < quiet * window:
                break
        return time.monotonic() - began

    @staticmethod
    def rss(pid: int) -> int:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return 0
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) * 1024 if match else 0

    def proxy_pids(self) -> list[int]:
        pids = []
        for child in self._children():
            with contextlib.suppress(OSError):
                if "configurable-http-proxy" in Path(f"/proc/{child}/cmdline").read_text(errors="replace"):
                    pids.append(child)
        return pids

    def snapshot(self) -> dict[str, float]:
        return {"hub": self.cpu_seconds(self.pid), "proxy": sum(self.cpu_seconds(p) for p in self.proxy_pids())}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_rss["hub"] = max(self.peak_rss["hub"], self.rss(self.pid))
            self.peak_rss["proxy"] = max(self.peak_rss["proxy"], sum(self.rss(p) for p in self.proxy_pids()))

    @contextlib.contextmanager
    def measure(self, results: Results) -> Iterator[None]:
        before, began = self.snapshot(), time.monotonic()
        self._thread.start()
        try:
            yield
        finally:
            self._stop.set()
            self._thread.join()
            after, wall = self.snapshot(), time.monotonic() - began
            results.resources = {
                "hub_cpu_s": after["hub"] - before["hub"], "proxy_cpu_s": after["proxy"] - before["proxy"],
                "hub_cpu_pct": 100 * (after["hub"] - before["hub"]) / wall,
                "hub_rss_mb": self.peak_rss["hub"] / 2**20, "proxy_rss_mb": self.peak_rss["proxy"] / 2**20,
            }


# ------------------------------------------------------------------------------------------- one person


class Person:
    """One simulated person with her own cookies, driving one hub."""

    def __init__(self, hub_url: str, name: str, results: Results, think: float, spawn_options: dict,
                 timeout: float):
        self.name, self.results, self.think, self.options, self.timeout = name, results, think, spawn_options, timeout
        self.http = httpx.AsyncClient(base_url=hub_url, timeout=timeout, follow_redirects=False, verify=TLS_CONTEXT)

    async def pause(self) -> None:
        if self.think > 0:
            await asyncio.sleep(random.expovariate(1 / self.think))

    def xsrf(self) -> dict[str, str]:
        token = self.http.cookies.get("_xsrf", path="/hub/")
        return {"X-XSRFToken": token} if token else {}

    async def timed(self, step: str, method: str, url: str, expect: tuple[int, ...], **kwargs) -> httpx.Response:
        began = time.perf_counter()
        response = await self.http.request(method, url, **kwargs)
        self.results.record(step, time.perf_counter() - began)
        if response.status_code not in expect:
            raise StepError(step, f"HTTP {response.status_code}: {response.text[:200]}")
        return response

    async def run(self) -> None:
        try:
            await self.scenario()
        except StepError as exc:
            self.results.errors.append(f"{self.name} {exc.step}: {exc.detail}")
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            self.results.errors.append(f"{self.name}: {type(exc).__name__}: {exc}")
        finally:
            await self.http.aclose()

    async def scenario(self) -> None:
        # 1. log in: the form (for its XSRF token), then the credentials
        began = time.perf_counter()
        page = await self.http.get("/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text)
        if page.status_code != 200 or not xsrf:
            raise StepError("login", f"no login form (HTTP {page.status_code})")
        response = await self.http.post("/hub/login", data={"username": self.name, "password": PASSWORD,
                                                            "_xsrf": xsrf.group(1)})
        self.results.record("login", time.perf_counter() - began)
        if response.status_code != 302 or "jupyterhub-session-id" not in self.http.cookies:
            raise StepError("login", f"HTTP {response.status_code}: {response.text[:200]}")
        await self.pause()

        # 2-3. start her instance and follow its progress until ready
        began = time.perf_counter()
        await self.timed("spawn_request", "POST", f"/hub/api/users/{self.name}/server", (201, 202),
                         json=self.options, headers=self.xsrf())
        await self.follow_progress()
        self.results.record("spawn_ready", time.perf_counter() - began)
        await self.pause()

        # 4. her instance, through the proxy
        response = await self.timed("lab_api", "GET", f"/user/{self.name}/api/status", (200,))
        answer = response.json()
        if answer.get("user") != self.name:
            raise StepError("lab_api", f"reached the instance of {answer.get('user')!r}, not hers")
        self.results.reached.add(self.name)
        await self.pause()

        # 5. stop it, and wait until the hub says it has stopped
        began = time.perf_counter()
        await self.timed("stop_request", "DELETE", f"/hub/api/users/{self.name}/server", (202, 204),
                         headers=self.xsrf())
        deadline = time.monotonic() + self.timeout
        while True:
            model = (await self.timed("user_model", "GET", f"/hub/api/users/{self.name}", (200,),
                                      headers=self.xsrf())).json()
            if not model.get("servers", {}).get(""):
                break
            if time.monotonic() > deadline:
                raise StepError("stopped", f"still has a server after {self.timeout:g} s")
            await asyncio.sleep(0.25)
        self.results.record("stopped", time.perf_counter() - began)

    async def follow_progress(self) -> None:
        url = f"/hub/api/users/{self.name}/server/progress"
        async with self.http.stream("GET", url, headers=self.xsrf()) as stream:
            if stream.status_code != 200:
                raise StepError("spawn_ready", f"progress stream HTTP {stream.status_code}")
            async for line in stream.aiter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    if event.get("failed"):
                        raise StepError("spawn_ready", f"spawn failed: {event.get('message')}")
                    if event.get("ready"):
                        return
        raise StepError("spawn_ready", "progress stream ended before the instance was ready")


class StepError(Exception):
    def __init__(self, step: str, detail: str):
        super().__init__(f"{step}: {detail}")
        self.step, self.detail = step, detail


async def drive(hub_url: str, hub_name: str, names: list[str], concurrency: int, think: float,
                timeout: float) -> Results:
    results = Results(hub_name)
    options = {"experiment": EXPERIMENT, "flavour": "small"} if hub_name == "visa-hub" else {}
    queue: asyncio.Queue[str] = asyncio.Queue()
    for name in names:
        queue.put_nowait(name)

    async def worker() -> None:
        while not queue.empty():
            name = queue.get_nowait()
            await Person(hub_url, name, results, think, options, timeout).run()

    began = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, len(names)))))
    results.wall = time.monotonic() - began
    return results


# ------------------------------------------------------------------------------------------- the hubs


@contextlib.contextmanager
def database(use_postgres: bool) -> Iterator[str | None]:
    if not use_postgres:
        yield None
        return
    from peers_postgres import postgres_server

    with postgres_server() as url:
        yield url


@contextlib.contextmanager
def running_hub(name: str, workdir: Path, names: list[str], db_url: str | None,
                extra_env: dict[str, str] | None = None) -> Iterator[HubProcess]:
    env = {"VISA_BENCH_SINGLEUSER_CMD": json.dumps(STANDIN), "VISA_LOG_LEVEL": "WARN",
           "VISA_USER_OFFICE_FILE": str(people_file(workdir / "people.yaml", names)), **(extra_env or {})}
    if db_url:
        env["VISA_DB_URL"] = db_url
    hub = HubProcess(workdir / name, config_file=CONFIGS[name], extra_env=env)
    try:
        yield hub.start(timeout=120)
    finally:
        hub.stop()
        hub.kill_instances()


def run_hub(name: str, workdir: Path, names: list[str], concurrency: int, think: float, timeout: float,
            use_postgres: bool = False, extra_env: dict[str, str] | None = None) -> Results:
    """Start one hub, drive every person through it, stop it; the results."""
    extra_env = dict(extra_env or {})
    token = extra_env.setdefault("VISA_BENCH_SERVICE_TOKEN", secrets.token_hex(16))
    with database(use_postgres) as db_url, running_hub(name, workdir, names, db_url, extra_env) as hub:
        sampler = ProcessSampler(hub.proc.pid)
        print(f"{name}: started; quiet {sampler.settle():.1f} s later", flush=True)
        results = Results(name)
        driver_cpu = time.process_time()
        with sampler.measure(results):
            measured = asyncio.run(drive(hub.url, name, names, concurrency, think, timeout))
        measured.resources = {**results.resources, "driver_cpu_s": time.process_time() - driver_cpu}
        measured.server_side = server_side_latency(hub.url, token)
        return measured


def server_side_latency(hub_url: str, token: str) -> dict[str, float]:
    """p50/p95/p99 of the hub's own request durations (JupyterHub's histogram, progress streams left out):
    what the hub took, without the time the requests waited for a CPU in the driver or the proxy."""
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(f"{hub_url}/hub/metrics", headers={"Authorization": f"token {token}"}, timeout=30)
    if response.status_code != 200:
        return {}
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(response.text):
        if family.name != "jupyterhub_request_duration_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and "Progress" not in sample.labels.get("handler", "") \
                    and "Metrics" not in sample.labels.get("handler", ""):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    if not buckets or not buckets.get(float("inf")):
        return {}
    total = buckets[float("inf")]
    bounds = sorted(buckets)

    def quantile(q: float) -> float:  # the upper bound of the bucket holding the q-th request
        return next(b for b in bounds if buckets[b] >= q * total)

    return {"count": total, "p50": quantile(0.5), "p95": quantile(0.95), "p99": quantile(0.99)}


# ------------------------------------------------------------------------------------------- report


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def report(all_results: list[Results], users: int, concurrency: int) -> str:
    lines = [f"hub load: {users} users, {concurrency} concurrent (latencies in ms)"]
    for results in all_results:
        r = results.resources
        lines.append(f"\n{results.hub}: {results.wall:.1f} s wall, {len(results.errors)} errors, "
                     f"{len(results.reached)}/{users} instances reached; hub CPU {r.get('hub_cpu_s', 0):.1f} s "
                     f"({r.get('hub_cpu_pct', 0):.0f} % of one core), peak RSS hub {r.get('hub_rss_mb', 0):.0f} MB, "
                     f"proxy {r.get('proxy_rss_mb', 0):.0f} MB (CPU {r.get('proxy_cpu_s', 0):.1f} s)")
        lines.append(f"  {'step':14s} {'count':>6s} {'p50':>8s} {'p95':>8s} {'p99':>8s} {'max':>8s}")
        for step, values in [*results.latencies.items(), ("hub API", results.hub_api())]:
            if values:
                lines.append(f"  {step:14s} {len(values):6d} {percentile(values, 50) * 1000:8.1f} "
                             f"{percentile(values, 95) * 1000:8.1f} {percentile(values, 99) * 1000:8.1f} "
                             f"{max(values) * 1000:8.1f}")
        if results.server_side:
            s = results.server_side
            lines.append(f"  hub's own request durations ({s['count']:.0f} requests, bucket upper bounds): "
                         f"p50 ≤ {s['p50'] * 1000:.0f} ms, p95 ≤ {s['p95'] * 1000:.0f} ms, "
                         f"p99 ≤ {s['p99'] * 1000:.0f} ms; "
                         f"the driver itself used {r.get('driver_cpu_s', 0):.0f} s of CPU")
        for error in results.errors[:10]:
            lines.append(f"  error: {error}")
        if len(results.errors) > 10:
            lines.append(f"  ... and {len(results.errors) - 10} more errors")
    by_hub = {r.hub: r for r in all_results}
    if {"visa-hub", "vanilla"} <= set(by_hub):
        ours, base = by_hub["visa-hub"], by_hub["vanilla"]
        lines.append("\nratios visa-hub / vanilla JupyterHub (same stand-in instances, same machine, same run):")
        for step, a, b in [*((s, ours.latencies[s], base.latencies[s]) for s in STEPS),
                           ("hub API", ours.hub_api(), base.hub_api())]:
            if a and b:
                lines.append(f"  {step:14s} p50 {_ratio(a, b, 50):5.2f}  p95 {_ratio(a, b, 95):5.2f}  "
                             f"p99 {_ratio(a, b, 99):5.2f}")
        lines.append(f"  hub CPU seconds {ours.resources['hub_cpu_s'] / max(base.resources['hub_cpu_s'], 1e-9):5.2f}  "
                     f"peak hub RSS {ours.resources['hub_rss_mb'] / max(base.resources['hub_rss_mb'], 1e-9):5.2f}")
        if ours.server_side and base.server_side:
            lines.append("  hub's own request durations (bucket bounds) " + "  ".join(
                f"{q} {ours.server_side[q] / base.server_side[q]:5.2f}" for q in ("p50", "p95", "p99")))
        p99, ratio = percentile(ours.hub_api(), 99), _ratio(ours.hub_api(), base.hub_api(), 99)
        verdict = "met" if p99 < 1.0 and ratio <= 1.2 and not ours.errors else "NOT met"
        lines.append(f"goal (hub API p99 ≤ 1.2 × vanilla and < 1 s, zero errors): {verdict} "
                     f"(p99 {p99 * 1000:.0f} ms, ratio {ratio:.2f}, {len(ours.errors)} errors)")
    return "\n".join(lines)


def _ratio(a: list[float], b: list[float], q: float) -> float:
    return percentile(a, q) / max(percentile(b, q), 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--think", type=float, default=0.5, help="mean seconds between a person's steps")
    parser.add_argument("--timeout", type=float, default=180, help="seconds one person's step may take")
    parser.add_argument("--hubs", nargs="+", default=["visa-hub", "vanilla"], choices=sorted(CONFIGS))
    parser.add_argument("--postgres", action="store_true", help="each hub on its own PostgreSQL (else SQLite)")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--workdir", default=None,
                        help="where the hubs' data (SQLite files) go; e.g. /dev/shm to take the disk out")
    args = parser.parse_args()
    random.seed(args.seed)

    names = usernames(args.users)
    print(f"load average at start: {load_average()} ({os.cpu_count()} cores); database: "
          f"{'PostgreSQL' if args.postgres else 'SQLite'}", flush=True)
    all_results = []
    with tempfile.TemporaryDirectory(prefix="visa-load-", dir=args.workdir) as tmp:
        for hub in args.hubs:
            results = run_hub(hub, Path(tmp), names, args.concurrency, args.think, args.timeout,
                              use_postgres=args.postgres)
            print(f"{hub}: done in {results.wall:.1f} s, load average {load_average()}", flush=True)
            all_results.append(results)
    print(report(all_results, args.users, args.concurrency))
    print(f"load average at end: {load_average()}")
    if any(r.errors for r in all_results):
        sys.exit(1)


if __name__ == "__main__":
    main()
