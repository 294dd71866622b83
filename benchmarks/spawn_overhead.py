"""Click-to-Lab-ready time: visa-hub's demo hub versus vanilla JupyterHub, measured in the same run.

For each hub: log in, then repeatedly start a server (visa-hub: submit the spawn form; vanilla: the spawn
URL) and time until JupyterLab's page is served through the proxy; stop it; repeat. Rounds alternate
between the hubs so both see the same machine load. Prints medians and the ratio (goal ≤ 1.10).

    .venv/bin/python benchmarks/spawn_overhead.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hubtest import HubProcess, UserSession  # noqa: E402

HERE = Path(__file__).resolve().parent


def lab_is_served(session: UserSession) -> bool:
    response = session.lab()
    return response.url.path == f"/user/{session.username}/lab" and response.status_code == 200


def time_to_lab(session: UserSession, start) -> float:
    began = time.perf_counter()
    start()
    deadline = began + 120
    while not lab_is_served(session):
        if time.perf_counter() > deadline:
            raise TimeoutError(f"no Lab for {session.username} after 120 s:\n{session.hub.log_tail()}")
        time.sleep(0.05)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="visa-bench-") as tmp:
        ours = HubProcess(Path(tmp) / "visa").start()
        vanilla = HubProcess(Path(tmp) / "vanilla", config_file=HERE / "vanilla_jupyterhub_config.py").start()
        try:
            alice_ours, alice_vanilla = UserSession(ours, "alice"), UserSession(vanilla, "alice")
            alice_ours.login()
            alice_vanilla.login()
            starts = {
                "visa-hub": (alice_ours, lambda: alice_ours.submit_spawn_form(experiment="LOKI-2026-042")),
                "vanilla": (alice_vanilla, lambda: alice_vanilla.http.get("/hub/spawn")),
            }
            times: dict[str, list[float]] = {name: [] for name in starts}
            for round_ in range(args.rounds + 1):  # round 0 warms caches (Python imports, disk)
                for name, (session, start) in starts.items():
                    elapsed = time_to_lab(session, start)
                    session.stop_server()
                    if round_:
                        times[name].append(elapsed)
        finally:
            for hub in (ours, vanilla):
                hub.stop()
                hub.kill_instances()

    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"click-to-Lab-ready over {args.rounds} rounds (median, min–max):")
    for name, values in times.items():
        print(f"  {name:9s} {medians[name]:6.2f} s  ({min(values):.2f}–{max(values):.2f} s)")
    ratio = medians["visa-hub"] / medians["vanilla"]
    print(f"ratio visa-hub / vanilla JupyterHub (SimpleLocalProcessSpawner): {ratio:.3f}  (goal ≤ 1.10)")


if __name__ == "__main__":
    main()
