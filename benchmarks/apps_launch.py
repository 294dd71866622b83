"""What visa-app adds to running a command in an app image, against the bare local runtime, in the same run.

Baseline: a Python process that mounts the SIF's partition with squashfuse, runs ``true`` under bwrap (the same
command line visa-app builds) and unmounts. visa-app: ``visa-app exec reduce true`` (catalog read, image check
with the digest cache, provenance record, the same runtime). Also the first launch of an image nobody hashed yet
(digest computed). Rounds alternate so both see the same load. Prints medians and the ratio.

    .venv/bin/python benchmarks/apps_launch.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from visa_hub.testing import app_images


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="visa-apps-bench-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        digest = app_images.build_image(app_images.RECIPES / "reduce-1.0.yaml", work / "reduce.sif", work / "cache")
        size = (work / "reduce.sif").stat().st_size >> 20
        print(f"image built in {time.perf_counter() - started:.1f} s ({size} MiB)")
        (work / "catalog.yaml").write_text(yaml.safe_dump({"apps": [{"name": "reduce", "versions": [
            {"version": "1.0", "image": str(work / "reduce.sif"), "digest": digest}]}]}))
        home = work / "home"
        home.mkdir()
        env = {**os.environ, "HOME": str(home), "VISA_APPS_CATALOG": str(work / "catalog.yaml"),
               "VISA_APPS_RUNTIME": "local"}
        visa_app = [sys.executable, "-m", "visa_hub.apps.cli", "exec", "reduce", "true"]

        def run_visa_app() -> None:
            subprocess.run(visa_app, env=env, check=True, cwd=home)

        bare_script = ("import sys; from pathlib import Path; from visa_hub.apps.images import open_image; "
                       "from visa_hub.apps.runtime import LaunchSpec, LocalRuntime; "
                       f"image = open_image({str(work / 'reduce.sif')!r}, 'reduce'); "
                       f"sys.exit(LocalRuntime(Path({str(work / 'bare')!r}), {str(home)!r}).run("
                       f"LaunchSpec(image, ('true',), workdir={str(home)!r})))")

        def run_bare() -> None:  # a Python process too, so that interpreter start-up is on both sides
            subprocess.run([sys.executable, "-c", bare_script], env=env, check=True, cwd=home)

        first = timed(run_visa_app)  # hashes the image once
        bare, ours = [], []
        for _ in range(args.rounds):
            bare.append(timed(run_bare))
            ours.append(timed(run_visa_app))
        b, o = statistics.median(bare), statistics.median(ours)
        print(f"bare runtime (python + squashfuse + bwrap + unmount): median {b * 1000:.0f} ms")
        print(f"visa-app exec (catalog, digest cache, provenance, same runtime): median {o * 1000:.0f} ms")
        print(f"ratio visa-app / bare runtime: {o / b:.2f}")
        print(f"first visa-app launch of the image (digest computed): {first * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
