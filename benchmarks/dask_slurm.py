"""Time from ``scale(4)`` to four Dask workers on Slurm: visa-hub's profile versus plain dask-jobqueue.

All run in the same session on the same single-node Slurm cluster (tests/peers_slurm.py), as the same user,
with the same resources per job (the demo catalog's LoKI default profile: 2 cores, 4 GiB, partition ess, account
= the experiment). visa-hub: ``SLURMCluster()`` with the instance configuration :mod:`visa_hub.dask.instance`
writes (TLS with the session's credentials, dashboard preload, walltime cut at the expiry); plain:
``SLURMCluster(cores=..., memory=..., ...)`` with no visa-hub configuration at all; plain + TLS: the same with
``security=Security(...)`` on a session's credentials files, to show what TLS alone costs. Rounds alternate
between the three; prints medians and the ratios to plain (goal ≤ 1.10). Needs root (it starts slurmd).

    .venv/bin/python benchmarks/dask_slurm.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from peers_slurm import check_usable_by, ensure_user, slurm_cluster  # noqa: E402
from visa_hub.catalog import load_catalog  # noqa: E402
from visa_hub.demo import DEMO_CATALOG  # noqa: E402
from visa_hub.people import Experiment, Person  # noqa: E402
from visa_hub.policy import SpawnRequest, plan_session  # noqa: E402

USER, EXPERIMENT = "alice", "LOKI-2026-042"

ROUNDS = """
import json, sys, time
from dask_jobqueue import SLURMCluster
from distributed import Client
from distributed.security import Security

kwargs = json.loads(sys.argv[1])
files = kwargs.pop("tls_files", None)
if files:
    kwargs["security"] = Security(require_encryption=True, tls_ca_file=files["ca"], **{
        f"tls_{role}_{kind}": files[kind] for role in ("client", "scheduler", "worker") for kind in ("cert", "key")})
times = []
for _ in range(int(sys.argv[2])):
    cluster = SLURMCluster(**kwargs)
    client = Client(cluster)
    began = time.perf_counter()
    cluster.scale(4)
    client.wait_for_workers(4, timeout=180)
    times.append(time.perf_counter() - began)
    client.close()
    cluster.close()
    time.sleep(1)  # let Slurm clean up the jobs before the next round
print(json.dumps(times))
"""


def run_as_user(env: dict[str, str], kwargs: dict, rounds: int) -> list[float]:
    result = subprocess.run(
        ["sudo", "-u", USER, "env", "-i", *[f"{k}={v}" for k, v in env.items()], sys.executable, "-c",
         textwrap.dedent(ROUNDS), json.dumps(kwargs), str(rounds)],
        capture_output=True, text=True, timeout=600, cwd=env["HOME"],
    )
    if result.returncode:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="measurements per variant (alternating)")
    args = parser.parse_args()

    account = ensure_user(USER)
    problem = check_usable_by(USER, modules=("dask_jobqueue", "distributed"))
    if problem:
        print(problem, file=sys.stderr)
        return 2
    now = dt.datetime.now(dt.UTC)
    experiment = Experiment(EXPERIMENT, "benchmark", "LoKI", now, now + dt.timedelta(days=1))
    plan = plan_session(Person(USER, "Alice", experiments=(experiment,)), SpawnRequest(EXPERIMENT),
                        load_catalog(DEMO_CATALOG), now)
    profile = plan.default_dask_profile
    assert profile is not None
    plain_kwargs = {"cores": profile.cores, "memory": f"{profile.memory_gb:g}GiB", "processes": profile.processes,
                    "queue": profile.partition, "account": EXPERIMENT, "walltime": profile.walltime}

    scratch = Path(tempfile.mkdtemp(prefix="visa-bench-", dir=account.pw_dir))
    shutil.chown(scratch, USER)
    homes = {name: scratch / name for name in ("visa", "plain", "tls")}
    for home in homes.values():
        home.mkdir()
        shutil.chown(home, USER)
    base = {"USER": USER, "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"}
    try:
        with slurm_cluster(partition=profile.partition) as slurm:
            visa_env = {**base, **slurm.env, **plan.environment, "HOME": str(homes["visa"]),
                        "JUPYTERHUB_USER": USER, "JUPYTERHUB_SERVICE_PREFIX": f"/user/{USER}/"}
            plain_env = {**base, **slurm.env, "HOME": str(homes["plain"])}
            tls_env = {**plain_env, "HOME": str(homes["tls"])}
            subprocess.run(["sudo", "-u", USER, "env", "-i", *[f"{k}={v}" for k, v in visa_env.items()],
                            sys.executable, "-m", "visa_hub.dask.instance"], check=True, capture_output=True)
            made = subprocess.run(
                ["sudo", "-u", USER, "env", "-i", *[f"{k}={v}" for k, v in tls_env.items()], sys.executable, "-c",
                 "import json, pathlib; from visa_hub.dask.credentials import write_session_credentials as w; "
                 "c = w(pathlib.Path.home(), 'bench'); "
                 "print(json.dumps({'ca': str(c.ca_file), 'cert': str(c.cert_file), 'key': str(c.key_file)}))"],
                check=True, capture_output=True, text=True)
            tls_kwargs = {**plain_kwargs, "tls_files": json.loads(made.stdout)}
            visa, plain, tls = [], [], []
            for _ in range(args.rounds):  # alternate so that all see the same machine state
                visa += run_as_user(visa_env, {}, 1)
                plain += run_as_user(plain_env, plain_kwargs, 1)
                tls += run_as_user(tls_env, tls_kwargs, 1)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    v, p, t = statistics.median(visa), statistics.median(plain), statistics.median(tls)
    print(f"profile {profile.label}, {args.rounds} rounds each, scale(4) → 4 workers")
    print(f"visa-hub profile (SLURMCluster() + instance config): median {v:.2f} s  {[round(x, 2) for x in visa]}")
    print(f"plain dask-jobqueue (same resources):                median {p:.2f} s  {[round(x, 2) for x in plain]}")
    print(f"plain dask-jobqueue + TLS (session credentials):     median {t:.2f} s  {[round(x, 2) for x in tls]}")
    print(f"ratio visa-hub / plain {v / p:.2f} (goal ≤ 1.10); plain + TLS / plain {t / p:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
