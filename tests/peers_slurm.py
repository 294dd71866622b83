"""A private single-node Slurm cluster for tests: Debian's slurm-wlm and munge, started and stopped here.

``slurm_cluster()`` writes a slurm.conf into a temporary directory (private ports, spool, state and logs),
starts munged (unless one already answers), slurmctld and slurmd in the foreground as children of the test
process, waits until the node is idle, and at the end cancels every job and stops what it started. Clients
find the cluster through ``SLURM_CONF`` (see :attr:`SlurmCluster.env`).

The node is declared larger than the machine (``SlurmdParameters=config_overrides``) so that a JupyterLab job
and several Dask worker jobs fit on a 2-core test machine; the Slurm arithmetic (cores, memory, limits) is real.
Jobs run as ordinary users (``sudo -u``), so :func:`ensure_user` creates them and :func:`check_usable_by`
explains when the Python environment is not readable by them.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from hubtest import free_port

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo", "sudo")


def slurm_missing() -> str | None:
    """Why the Slurm peer cannot run here, or ``None``."""
    for name in DAEMONS:
        if not (shutil.which(name) or Path("/usr/sbin", name).exists()):
            return f"{name} not found (run scripts/install-slurm.sh: Debian slurm-wlm, munge, sudo)"
    if os.geteuid() != 0:
        return "the Slurm test peer starts slurmd, which must run as root"
    return None


def ensure_user(name: str) -> pwd.struct_passwd:
    """The system account ``name`` (created with a home directory if missing): jobs run as this user."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def _unreadable_component(path: Path, user: pwd.struct_passwd) -> Path | None:
    """The first directory from / down to ``path`` that ``user`` cannot traverse (mode bits only)."""
    groups = {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem} | {user.pw_gid}
    current = Path("/")
    for part in path.resolve().parts[1:]:
        current = current / part
        st = current.stat()
        if st.st_uid == user.pw_uid:
            ok = st.st_mode & 0o100
        elif st.st_gid in groups:
            ok = st.st_mode & 0o010
        else:
            ok = st.st_mode & 0o001
        if current.is_dir() and not ok:
            return current
    return None


def check_usable_by(user: str, python: str = sys.executable, modules: tuple[str, ...] = ()) -> str | None:
    """Why ``user`` cannot run this Python environment with ``modules``, or ``None`` when she can."""
    account = ensure_user(user)
    blocked = _unreadable_component(Path(python).parent, account)
    if blocked:
        return (f"{user} cannot reach {python}: {blocked} is not searchable by other users "
                f"(chmod o+x {blocked}, or create the venv from /usr/bin/python3 in a readable directory)")
    code = "import " + ", ".join(("visa_hub", *modules))
    result = subprocess.run(["sudo", "-u", user, "--", python, "-c", code], capture_output=True, text=True,
                            cwd="/")
    if result.returncode:
        return f"{user} cannot import {', '.join(('visa_hub', *modules))} with {python}: {result.stderr.strip()}"
    return None


@dataclass
class SlurmCluster:
    """A running single-node cluster; use its :attr:`env` for Slurm's client commands."""

    root: Path
    partition: str
    node: str
    cpus: int
    memory_mb: int
    extra_partitions: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    started_munged: int | None = None

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        prefix = ["sudo", "-u", user, f"SLURM_CONF={self.conf}", "--"] if user else []
        return subprocess.run([*prefix, *cmd], env={**os.environ, **self.env}, capture_output=True, text=True,
                              check=check, timeout=60)

    def jobs(self, fields: str = "%i|%u|%a|%P|%T|%C|%m|%l|%j|%r") -> list[list[str]]:
        """Every job squeue knows (any state), one list of fields per job."""
        out = self.run("squeue", "-h", "-t", "all", "-o", fields).stdout
        return [line.split("|") for line in out.splitlines() if line.strip()]

    def live_jobs(self, user: str | None = None) -> list[list[str]]:
        """Jobs pending, running or completing (optionally of one user)."""
        return [j for j in self.jobs() if j[4] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")
                and (user is None or j[1] == user)]

    # -- the daemons -------------------------------------------------------------------------------
    def _start(self, name: str, *cmd: str) -> None:
        log = (self.root / "log" / f"{name}.out").open("ab")
        self.processes[name] = subprocess.Popen(
            list(cmd), env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def start_controller(self) -> None:
        self._start("slurmctld", "/usr/sbin/slurmctld", "-D", "-f", str(self.conf))

    def stop_controller(self) -> None:
        """Stop slurmctld (for fault tests); jobs keep running on the node."""
        self._stop("slurmctld")

    def _stop(self, name: str, timeout: float = 15) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def wait_idle(self, timeout: float = 30) -> None:
        deadline, state = time.monotonic() + timeout, ""
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            result = self.run("sinfo", "-h", "-n", self.node, "-o", "%t", check=False)
            state = result.stdout.strip() or result.stderr.strip()
            if state.startswith("idle") or state.startswith("mix"):
                return
            time.sleep(0.2)
        raise TimeoutError(f"Slurm node {self.node} not idle after {timeout:g} s (last: {state!r}):\n"
                           f"{self.log_tail('slurmctld')}\n{self.log_tail('slurmd')}")

    def cancel_all(self, timeout: float = 30) -> None:
        """Cancel every job and wait until none is left running."""
        self.run("scancel", f"--partition={','.join([self.partition, *self.extra_partitions])}",
                 check=False)
        deadline = time.monotonic() + timeout
        while self.live_jobs() and time.monotonic() < deadline:
            time.sleep(0.3)

    def log_tail(self, name: str, lines: int = 30) -> str:
        text = ""
        for path in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if "slurmctld" in self.processes:
                self.cancel_all()
        self._stop("slurmd")
        self._stop("slurmctld")
        if self.started_munged:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.started_munged, signal.SIGTERM)


def _munge_answers() -> bool:
    try:
        cred = subprocess.run(["munge", "-n"], capture_output=True, timeout=5)
        return cred.returncode == 0 and subprocess.run(
            ["unmunge"], input=cred.stdout, capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _start_munged() -> int | None:
    """Start munged as the munge user unless one answers already; the pid of the one we started."""
    if _munge_answers():
        return None
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True, capture_output=True)
    deadline = time.monotonic() + 10
    while not _munge_answers():
        if time.monotonic() > deadline:
            raise RuntimeError("munged started but does not answer (is /etc/munge/munge.key readable by munge?)")
        time.sleep(0.1)
    with contextlib.suppress(OSError, ValueError):
        return int((run_dir / "munged.pid").read_text())
    return None


def _slurm_conf(cluster: SlurmCluster) -> str:
    root, node = cluster.root, cluster.node
    partitions = [f"PartitionName={cluster.partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP"]
    partitions += [f"PartitionName={name} Nodes={node} Default=NO {options} State=UP"
                   for name, options in cluster.extra_partitions.items()]
    return "\n".join([
        "ClusterName=visa-test",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={free_port()}",
        f"SlurmdPort={free_port()}",
        "AuthType=auth/munge",
        "CryptoType=crypto/munge",
        "SlurmUser=root",
        "SlurmdUser=root",
        "MpiDefault=none",
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "SchedulerType=sched/backfill",
        "SchedulerParameters=sched_interval=2",
        "ReturnToService=2",
        "JobAcctGatherType=jobacct_gather/none",
        "AccountingStorageType=accounting_storage/none",
        "SlurmdParameters=config_overrides",
        "DefMemPerCPU=1024",
        "KillWait=3",
        "MinJobAge=60",
        "InactiveLimit=0",
        "MessageTimeout=5",
        f"StateSaveLocation={root}/state",
        f"SlurmdSpoolDir={root}/spool",
        f"SlurmctldPidFile={root}/run/slurmctld.pid",
        f"SlurmdPidFile={root}/run/slurmd.pid",
        f"SlurmctldLogFile={root}/log/slurmctld.log",
        f"SlurmdLogFile={root}/log/slurmd.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cluster.cpus} RealMemory={cluster.memory_mb} State=UNKNOWN",
        *partitions,
        "",
    ])


@contextlib.contextmanager
def slurm_cluster(
    partition: str = "ess",
    cpus: int = 16,
    memory_mb: int = 65536,
    extra_partitions: dict[str, str] | None = None,
) -> Iterator[SlurmCluster]:
    """Start munged, slurmctld and slurmd with a generated slurm.conf; stop what was started at the end.

    ``extra_partitions`` maps partition names to extra partition options, e.g. ``{"short": "MaxTime=00:10:00"}``.
    """
    reason = slurm_missing()
    if reason:
        raise FileNotFoundError(reason)
    root = Path(tempfile.mkdtemp(prefix="visa-slurm-"))
    root.chmod(0o755)  # users' sbatch/squeue read slurm.conf
    for sub in ("state", "spool", "run", "log"):
        (root / sub).mkdir()
    cluster = SlurmCluster(root=root, partition=partition, node=socket.gethostname().split(".")[0], cpus=cpus,
                           memory_mb=memory_mb, extra_partitions=dict(extra_partitions or {}))
    cluster.conf.write_text(_slurm_conf(cluster))
    cluster.conf.chmod(0o644)
    try:
        cluster.started_munged = _start_munged()
        cluster.start_controller()
        cluster._start("slurmd", "/usr/sbin/slurmd", "-D", "-f", str(cluster.conf))
        cluster.wait_idle()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
