"""The instance environment of simulated VMs: ``scripts/provision-instance.sh`` run once, then cached.

A VM image holds the instance environment at ``/opt/visa-instance`` (see ``containers/instance/``). The
OpenStack simulator's VMs get the same: this module provisions it with the project's own script, into a
cache directory that the sandbox of every simulated VM mounts at ``/opt/visa-instance``. Provisioning runs
in a bubblewrap sandbox where the cache directory *is* ``/opt/visa-instance`` (a virtualenv cannot be moved),
and otherwise sees the whole machine (package index, pip's cache, the checkout).

The cache is keyed by what decides the dependencies (``pyproject.toml``, the provisioning script); when only
visa-hub's own sources changed, the script runs again on the cached environment and reinstalls just visa-hub;
environments of older dependency sets are removed. Costs measured on the 2-core reference machine: 40–90 s from
nothing (up to 3 minutes while other work loads it), 15–55 s after a change to visa-hub's sources, under a
second when up to date (a hash of the sources).

    python -m visa_hub.testing.instance_env [--cache DIR]     prints the environment's path
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .openstack_sim.sandbox import BWRAP

REPO = Path(__file__).resolve().parents[2]
PREFIX = "/opt/visa-instance"  # the spawners' default instance_prefix
SCRIPT = "scripts/provision-instance.sh"
DEPENDENCY_FILES = ("pyproject.toml", SCRIPT)
SOURCE_DIRS = ("visa_hub", "jupyter-config")
NOT_IN_INSTANCES = ("visa_hub/testing",)  # installed too, never used by an instance: no reason to reprovision
STAMP = ".visa-hub-source"


class ProvisioningError(RuntimeError):
    """The provisioning script failed; the message ends with its output."""


def _files(repo: Path) -> Iterator[Path]:
    for name in DEPENDENCY_FILES:
        yield repo / name
    for directory in SOURCE_DIRS:
        for path in sorted((repo / directory).rglob("*")):
            relative = path.relative_to(repo).as_posix()
            if (path.is_file() and "__pycache__" not in path.parts and not path.name.endswith(".pyc")
                    and not relative.startswith(NOT_IN_INSTANCES)):
                yield path


def _digest(paths: Iterator[Path] | list[Path], repo: Path) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(path.relative_to(repo)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def ensure_instance_env(repo: Path = REPO, cache: Path | None = None,
                        log: Callable[[str], None] = print) -> Path:
    """The provisioned instance environment for the checkout ``repo`` (built or updated if needed)."""
    cache = cache or repo / ".cache" / "instance-env"
    dependencies = _digest([repo / name for name in DEPENDENCY_FILES], repo)[:16]
    environment = cache / dependencies
    sources = _digest(_files(repo), repo)
    stamp = environment / STAMP
    if stamp.exists() and stamp.read_text() == sources:
        return environment
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / f"{dependencies}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one provisioning at a time per environment
        if stamp.exists() and stamp.read_text() == sources:
            return environment
        environment.mkdir(exist_ok=True)
        stamp.unlink(missing_ok=True)
        started = time.monotonic()
        log(f"provisioning the instance environment for simulated VMs in {environment}")
        _provision(repo, environment)
        # building the wheel may have rebuilt the labextension inside the sources: stamp what was installed
        stamp.write_text(_digest(_files(repo), repo))
        log(f"instance environment ready after {time.monotonic() - started:.0f} s")
    _prune(cache, keep=dependencies)
    return environment


def _prune(cache: Path, keep: str) -> None:
    """Remove environments of older dependency sets (about 600 MB each) that no one is provisioning."""
    for lock_path in cache.glob("*.lock"):
        name = lock_path.name.removesuffix(".lock")
        if name == keep:
            continue
        with lock_path.open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(cache / name, ignore_errors=True)
        lock_path.unlink(missing_ok=True)


def _provision(repo: Path, environment: Path) -> None:
    """Run the provisioning script with ``environment`` mounted at the prefix instances use."""
    hidden_opt = [arg for entry in sorted(Path("/opt").iterdir()) if entry.name != Path(PREFIX).name
                  for arg in ("--bind", str(entry), str(entry))] if Path("/opt").is_dir() else []
    command = [BWRAP, "--dev-bind", "/", "/", "--tmpfs", "/opt", *hidden_opt, "--bind", str(environment), PREFIX,
               "--", str(repo / SCRIPT), PREFIX, str(repo)]
    result = subprocess.run(command, cwd=repo, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        output = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("WARNING: Location"))
        raise ProvisioningError(f"{SCRIPT} failed ({result.returncode}):\n{output[-4000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m visa_hub.testing.instance_env",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, help="cache directory (default: <checkout>/.cache/instance-env)")
    print(ensure_instance_env(cache=parser.parse_args().cache))


if __name__ == "__main__":
    main()
