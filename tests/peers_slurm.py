"""A private single-node Slurm cluster with accounting for tests, laid out as a site runs it.

``slurm_cluster()`` starts, under one temporary directory and on free loopback ports, everything Debian's
packages bring: its own munged (own socket, the system key), a private MariaDB (``mariadbd --no-defaults``),
slurmdbd, slurmctld and slurmd, all children of the test process. Accounting is enforced
(``AccountingStorageEnforce=associations,limits,qos``) and ``PrivateData=jobs`` hides jobs from other users, in
slurm.conf and slurmdbd.conf alike; job scripts and environments are stored (``AccountingStoreFlags``), so tests
can check what a site's database would keep. At the end every job is cancelled and what was started is stopped.

The hub runs as a non-root service user (``visahub``), as batchspawner deployments do: the fixture writes a
sudoers drop-in that lets it run ``sbatch``/``squeue``/``scancel`` as other users (not root), and bootstraps what a
Slurm administrator does once per site (see docs/slurm.md): the parent account of visa-hub's experiment accounts,
the hub user's association in it, and the hub user as that account's coordinator. The experiment accounts
themselves are made by visa-hub's own ``visa-hub slurm-sync`` (:meth:`SlurmCluster.sync`), by default from the demo
User Office and catalog, so ``--account=LOKI-2026-042`` works for alice and bob as soon as the cluster is up.

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

from hubtest import HubProcess, free_port

PROGRAMS = ("munged", "munge", "unmunge", "mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "slurmctld",
            "slurmd", "sbatch", "squeue", "scancel", "sinfo", "sacct", "sacctmgr", "scontrol", "sudo", "visudo")
CLUSTER_NAME = "visa-test"
PARENT_ACCOUNT = "visa"  # the parent of the experiment accounts (SlurmSync.parent_account)
HUB_USER = "visahub"  # the hub's service user in the Slurm tests
DB_PASSWORD = "slurmdb-test-only"  # a private loopback database that lives as long as the cluster
SLURM_COMMANDS = ("sbatch", "squeue", "scancel")  # what the hub user may run as another user

# A hub on this cluster: the Slurm backend, debug logging (batchspawner logs its environment at debug level: we
# must not), fast polls, and the cluster's munged for the API token handover.
HUB_CONFIG = """
from visa_hub.hubconfig import configure

c = get_config()  # noqa: F821
configure(c)
c.JupyterHub.spawner_class = "visa-slurm"
c.JupyterHub.log_level = "DEBUG"
c.SlurmSpawner.req_partition = {partition!r}
c.SlurmSpawner.poll_interval = 2
c.SlurmSpawner.queue_cache_seconds = 0.5
c.SlurmSpawner.controller_grace_seconds = 5
c.SlurmTokenHandover.munge_socket = {munge_socket!r}
c.Spawner.start_timeout = 90
"""


def _program(name: str) -> str | None:
    return shutil.which(name) or next((str(Path(d, name)) for d in ("/usr/sbin", "/usr/bin")
                                       if Path(d, name).exists()), None)


def slurm_missing() -> str | None:
    """Why the Slurm peer cannot run here, or ``None``."""
    for name in PROGRAMS:
        if not _program(name):
            return (f"{name} not found (run scripts/install-slurm.sh: Debian slurm-wlm, slurmdbd, mariadb-server, "
                    "munge, sudo)")
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
    """A running single-node cluster with accounting; use its :attr:`env` for Slurm's client commands."""

    root: Path
    partition: str
    node: str
    cpus: int
    memory_mb: int
    hub_user: str = HUB_USER
    extra_partitions: dict[str, str] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    sudoers: Path | None = None
    started_in: float = 0.0  # seconds from nothing to an idle node with accounts (measured by slurm_cluster)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munge.sock"

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def run(self, *cmd: str, user: str | None = None, check: bool = True, input: str | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
        """A command as root, or as ``user`` (``sudo -u``), with this cluster's ``SLURM_CONF``; run from /."""
        prefix = ["sudo", "-u", user, f"SLURM_CONF={self.conf}", "--"] if user else []
        return subprocess.run([*prefix, *cmd], env={**os.environ, **self.env}, capture_output=True, text=True,
                              check=check, timeout=timeout, input=input, cwd="/")

    def sacctmgr(self, *args: str, user: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
        return self.run("sacctmgr", "--immediate", *args, user=user, check=check)

    def jobs(self, fields: str = "%i|%u|%a|%P|%T|%C|%m|%l|%j|%r") -> list[list[str]]:
        """Every job squeue knows (any state, any user: run as root), one list of fields per job."""
        out = self.run("squeue", "-h", "-t", "all", "-o", fields).stdout
        return [line.split("|") for line in out.splitlines() if line.strip()]

    def live_jobs(self, user: str | None = None) -> list[list[str]]:
        """Jobs pending, running or completing (optionally of one user)."""
        return [j for j in self.jobs() if j[4] in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING")
                and (user is None or j[1] == user)]

    def associations(self) -> set[tuple[str, str]]:
        """(account, user) of every user association below the parent account (account names in lower case)."""
        out = self.run("sacctmgr", "-nP", "show", "associations", "format=account,user,parentname").stdout
        rows = [line.split("|") for line in out.splitlines() if line.strip()]
        accounts = {a for a, u, parent in rows if not u and parent == PARENT_ACCOUNT}
        return {(a, u) for a, u, _ in rows if u and a in accounts}

    def sync(self, catalog: Path | None = None, user_office: Path | None = None, *args: str,
             check: bool = True) -> subprocess.CompletedProcess:
        """Run ``visa-hub slurm-sync`` as the hub user (demo catalog and User Office unless given)."""
        env = {"SLURM_CONF": str(self.conf), "HOME": pwd.getpwnam(self.hub_user).pw_dir}
        if catalog:
            env["VISA_CATALOG"] = str(catalog)
        if user_office:
            env["VISA_USER_OFFICE_FILE"] = str(user_office)
        command = [str(Path(sys.executable).with_name("visa-hub")), "slurm-sync", *args]
        result = subprocess.run(["sudo", "-u", self.hub_user, "env", *[f"{k}={v}" for k, v in env.items()],
                                 *command], capture_output=True, text=True, timeout=120, cwd="/")
        if check and result.returncode:
            raise RuntimeError(f"visa-hub slurm-sync failed ({result.returncode}):\n{result.stderr[-3000:]}")
        return result

    def hub(self, partition: str | None = None, keep_servers: bool = False, extra_config: str = "",
            **env: str) -> HubProcess:
        """A (not yet started) hub using this cluster, run as the hub's service user from its own data directory
        (outside pytest's root-only temporary directory). Delete ``hub.data_dir`` when done."""
        data = Path(tempfile.mkdtemp(prefix="visa-hub-slurm-"))
        data.chmod(0o755)
        config = data / "hub_config.py"
        config.write_text(HUB_CONFIG.format(partition=partition or self.partition,
                                            munge_socket=str(self.munge_socket)) + extra_config)
        return HubProcess(data, config_file=config, run_as=self.hub_user,
                          extra_env={**self.env, "VISA_KEEP_SERVERS": "1" if keep_servers else "0", **env})

    # -- the daemons -------------------------------------------------------------------------------
    def _start(self, name: str, *cmd: str, user: str | None = None) -> subprocess.Popen:
        log = (self.root / "log" / f"{name}.out").open("ab")
        self.processes[name] = subprocess.Popen(
            list(cmd), env={**os.environ, **self.env}, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, user=user, group=user, extra_groups=[] if user else None,
        )
        return self.processes[name]

    def start_controller(self) -> None:
        self._start("slurmctld", _program("slurmctld"), "-D", "-f", str(self.conf))

    def stop_controller(self) -> None:
        """Stop slurmctld (for fault tests); jobs keep running on the node."""
        self._stop("slurmctld")

    def _stop(self, name: str, timeout: float = 15, sig: int = signal.SIGTERM) -> None:
        proc = self.processes.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def _wait(self, what: str, ready, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.processes.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log_tail(name)}")
            if ready():
                return
            time.sleep(0.1)
        raise TimeoutError(f"{what} not ready after {timeout:g} s:\n" +
                           "\n".join(self.log_tail(n, 15) for n in self.processes))

    def wait_idle(self, timeout: float = 30) -> None:
        def idle() -> bool:
            result = self.run("sinfo", "-h", "-n", self.node, "-o", "%t", check=False)
            return result.stdout.strip().startswith(("idle", "mix"))

        self._wait(f"Slurm node {self.node}", idle, timeout)

    def cancel_all(self, timeout: float = 30) -> None:
        """Cancel every job and wait until none is left running."""
        self.run("scancel", f"--partition={','.join([self.partition, *self.extra_partitions])}", check=False)
        deadline = time.monotonic() + timeout
        while self.live_jobs() and time.monotonic() < deadline:
            time.sleep(0.3)

    def log_tail(self, name: str, lines: int = 30) -> str:
        text = ""
        for path in (self.root / "log" / f"{name}.log", self.root / "log" / f"{name}.out"):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")
        return f"--- {name}\n" + "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            if "slurmctld" in self.processes:
                self.cancel_all()
        self._stop("slurmd")
        self._stop_stray_steps()
        self._stop("slurmctld")
        self._stop("slurmdbd", timeout=5)
        self._stop("mariadbd", sig=signal.SIGKILL)  # its data is thrown away: no need to flush
        self._stop("munged")
        if self.sudoers:
            self.sudoers.unlink(missing_ok=True)

    def _stop_stray_steps(self) -> None:
        """slurmstepd processes of this cluster that outlived slurmd (their environment names our slurm.conf)."""
        marker = f"SLURM_CONF={self.conf}".encode()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                if (proc / "comm").read_text().strip() == "slurmstepd" and \
                        marker in (proc / "environ").read_bytes().split(b"\0"):
                    os.kill(int(proc.name), signal.SIGKILL)


def _slurm_conf(cluster: SlurmCluster) -> str:
    root, node, ports = cluster.root, cluster.node, cluster.ports
    partitions = [f"PartitionName={cluster.partition} Nodes={node} Default=YES MaxTime=INFINITE State=UP"]
    partitions += [f"PartitionName={name} Nodes={node} Default=NO {options} State=UP"
                   for name, options in cluster.extra_partitions.items()]
    return "\n".join([
        f"ClusterName={CLUSTER_NAME}",
        f"SlurmctldHost={node}(127.0.0.1)",
        f"SlurmctldPort={ports['slurmctld']}",
        f"SlurmdPort={ports['slurmd']}",
        "AuthType=auth/munge",
        f"AuthInfo=socket={cluster.munge_socket}",
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
        # accounting as a site runs it: associations and limits enforced, jobs private to their owners
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=localhost",
        f"AccountingStoragePort={ports['slurmdbd']}",
        f"AccountingStoragePass={cluster.munge_socket}",
        "AccountingStorageEnforce=associations,limits,qos",
        "AccountingStoreFlags=job_script,job_env",
        "PrivateData=jobs",
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


def _slurmdbd_conf(cluster: SlurmCluster) -> str:
    root = cluster.root
    return "\n".join([
        "AuthType=auth/munge",
        f"AuthInfo=socket={cluster.munge_socket}",
        "DbdHost=localhost",
        "DbdAddr=127.0.0.1",
        f"DbdPort={cluster.ports['slurmdbd']}",
        "SlurmUser=root",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={cluster.ports['mariadb']}",
        "StorageUser=slurm",
        f"StoragePass={DB_PASSWORD}",
        "StorageLoc=slurm_acct_db",
        "PrivateData=jobs",
        f"PidFile={root}/run/slurmdbd.pid",
        f"LogFile={root}/log/slurmdbd.log",
        "DebugLevel=info",
        "",
    ])


def _start_munged(cluster: SlurmCluster) -> None:
    """A munged of our own (own socket, Debian's key): no other test's munged is touched."""
    directory = cluster.munge_socket.parent
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)  # munged refuses a socket directory that others cannot search
    shutil.chown(directory, "munge", "munge")
    cluster._start("munged", _program("munged"), "--foreground", f"--socket={cluster.munge_socket}",
                   f"--pid-file={directory}/munged.pid", f"--log-file={directory}/munged.log",
                   f"--seed-file={directory}/munged.seed", user="munge")

    def answers() -> bool:
        cred = subprocess.run(["munge", "-n", "-S", str(cluster.munge_socket)], capture_output=True)
        return cred.returncode == 0 and subprocess.run(
            ["unmunge", "-S", str(cluster.munge_socket)], input=cred.stdout, capture_output=True).returncode == 0

    cluster._wait("munged (is /etc/munge/munge.key readable by munge?)", answers, 10)


def _start_mariadb(cluster: SlurmCluster) -> None:
    """A private MariaDB on a loopback port, with Slurm's database and user."""
    data, sock = cluster.root / "db" / "data", cluster.root / "db" / "mysql.sock"
    subprocess.run([_program("mariadb-install-db"), "--no-defaults", "--user=root", f"--datadir={data}",
                    "--skip-test-db", "--auth-root-authentication-method=socket"],
                   check=True, capture_output=True, stdin=subprocess.DEVNULL)
    cluster._start("mariadbd", _program("mariadbd"), "--no-defaults", "--user=root", f"--datadir={data}",
                   f"--socket={sock}", f"--port={cluster.ports['mariadb']}", "--bind-address=127.0.0.1",
                   f"--pid-file={cluster.root}/db/mariadbd.pid", "--skip-name-resolve",
                   "--innodb-buffer-pool-size=64M", "--innodb-log-file-size=16M", "--innodb-lock-wait-timeout=900")

    def sql(statement: str) -> bool:
        return subprocess.run([_program("mariadb"), "--no-defaults", "-S", str(sock), "-uroot", "-e", statement],
                              capture_output=True, stdin=subprocess.DEVNULL).returncode == 0

    cluster._wait("mariadbd", lambda: sql("SELECT 1"), 30)
    if not sql("CREATE DATABASE slurm_acct_db; "
               f"CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{DB_PASSWORD}'; "
               "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"):
        raise RuntimeError("could not create Slurm's database in the private MariaDB")


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _allow_hub(cluster: SlurmCluster) -> None:
    """The sudoers drop-in a site writes for the hub's service user: Slurm commands as any user but root."""
    commands = ", ".join(_program(c) for c in SLURM_COMMANDS)
    hub = cluster.hub_user
    rules = (f'Defaults:{hub} !requiretty, env_keep += "SLURM_CONF"\n'
             f"{hub} ALL=(ALL,!root) NOPASSWD:SETENV: {commands}\n")
    path = Path("/etc/sudoers.d") / f"visa-test-{cluster.root.name.replace('.', '_')}"
    draft = cluster.root / "sudoers"
    draft.write_text(rules)
    subprocess.run([_program("visudo"), "-cf", str(draft)], check=True, capture_output=True)
    path.write_text(rules)
    path.chmod(0o440)
    cluster.sudoers = path


def _bootstrap_accounting(cluster: SlurmCluster) -> None:
    """What a Slurm administrator does once for visa-hub (docs/slurm.md): the parent account, the hub user in it
    (without the right to run jobs of its own) and as its coordinator."""
    hub = cluster.hub_user
    cluster.sacctmgr("add", "account", PARENT_ACCOUNT, "Description=visa-hub experiments", "Organization=visa-hub")
    cluster.sacctmgr("add", "user", hub, f"account={PARENT_ACCOUNT}", "MaxSubmitJobs=0")
    cluster.sacctmgr("add", "coordinator", f"account={PARENT_ACCOUNT}", f"names={hub}")


@contextlib.contextmanager
def slurm_cluster(
    partition: str = "ess",
    cpus: int = 16,
    memory_mb: int = 65536,
    extra_partitions: dict[str, str] | None = None,
    hub_user: str = HUB_USER,
    sync: bool = True,
) -> Iterator[SlurmCluster]:
    """Start munged, MariaDB, slurmdbd, slurmctld and slurmd; stop what was started at the end.

    ``extra_partitions`` maps partition names to extra partition options, e.g. ``{"short": "MaxTime=00:10:00"}``.
    ``sync``: run ``visa-hub slurm-sync`` with the demo catalog and User Office once the node is up.
    """
    reason = slurm_missing()
    if reason:
        raise FileNotFoundError(reason)
    began = time.monotonic()
    ensure_user(hub_user)
    root = Path(tempfile.mkdtemp(prefix="visa-slurm-"))
    root.chmod(0o755)  # users' sbatch/squeue read slurm.conf
    for sub in ("etc", "state", "spool", "run", "log", "db"):
        (root / sub).mkdir()
    cluster = SlurmCluster(root=root, partition=partition, node=socket.gethostname().split(".")[0], cpus=cpus,
                           memory_mb=memory_mb, hub_user=hub_user, extra_partitions=dict(extra_partitions or {}),
                           ports={name: free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mariadb")})
    cluster.conf.write_text(_slurm_conf(cluster))
    cluster.conf.chmod(0o644)
    dbd_conf = root / "etc" / "slurmdbd.conf"
    dbd_conf.touch(mode=0o600)
    dbd_conf.write_text(_slurmdbd_conf(cluster))
    try:
        _start_munged(cluster)
        _start_mariadb(cluster)
        cluster._start("slurmdbd", _program("slurmdbd"), "-D")  # reads slurmdbd.conf next to SLURM_CONF
        cluster._wait("slurmdbd", lambda: _port_open(cluster.ports["slurmdbd"]), 30)
        cluster.sacctmgr("add", "cluster", CLUSTER_NAME)  # before slurmctld registers with slurmdbd
        cluster.start_controller()
        cluster._start("slurmd", _program("slurmd"), "-D", "-f", str(cluster.conf))
        _allow_hub(cluster)
        _bootstrap_accounting(cluster)  # while the node comes up
        cluster.wait_idle()
        if sync:
            cluster.sync()
        cluster.started_in = time.monotonic() - began
        print(f"Slurm peer with accounting up in {cluster.started_in:.1f} s ({root})")
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
