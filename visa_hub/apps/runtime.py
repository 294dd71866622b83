"""Command lines that run an app version's image: production ``apptainer`` and the local runtime.

Both take the same :class:`LaunchSpec` (image, command, binds, environment, GPU, working directory), so one
catalog and one launch path serve both. The command lines are built here and nowhere else (pure functions,
unit-tested); :class:`LocalRuntime` also mounts and unmounts.

The local runtime does what unprivileged apptainer does, with tools Debian packages: the SIF's squashfs
partition is mounted with ``squashfuse -o offset=N`` (or unpacked once with ``unsquashfs -o N`` where FUSE is
missing) and the program runs under ``bwrap`` in a fresh root built from the image's top-level entries (read-only)
with apptainer's default binds ($HOME, /tmp, the working directory, /proc, /sys, /dev, /etc/passwd with her
entry, /etc/hosts, /etc/resolv.conf), the site binds and a clean environment.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .images import SANDBOX, ImageFile

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Kept from the caller's environment even with --cleanenv (a desktop app needs its display).
PASSED_VARIABLES = ("DISPLAY", "XAUTHORITY", "TERM", "LANG", "COLORTERM")
ENV_SCRIPT = 'for f in /.singularity.d/env/*.sh; do [ -f "$f" ] && . "$f"; done; exec "$@"'


class RuntimeUnavailable(RuntimeError):
    """No way to run containers here; the message says what to install."""


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    writable: bool = False


@dataclass(frozen=True)
class LaunchSpec:
    """What to run, in which image, with which binds and environment."""

    image: ImageFile
    argv: tuple[str, ...] = ()  # the command, or with ``runscript`` the runscript's arguments
    runscript: bool = False  # run the image's runscript (``apptainer run``) instead of ``apptainer exec``
    binds: tuple[Mount, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)  # set inside the container, on top of a clean one
    gpu: bool = False
    workdir: str | None = None


@dataclass(frozen=True)
class Command:
    """A process to start: its argv and environment additions for the launcher process itself."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


# -- production: apptainer ------------------------------------------------------------------------------------
def apptainer_command(spec: LaunchSpec, apptainer: str = "apptainer") -> Command:
    """``apptainer exec|run --cleanenv [--nv] --bind ... [--pwd DIR] IMAGE [ARGS]``.

    The environment goes through ``APPTAINERENV_*`` variables (they survive ``--cleanenv`` and, unlike
    ``--env``, values may hold commas). $HOME, /tmp and the working directory are apptainer's default binds.
    """
    argv = [apptainer, "run" if spec.runscript else "exec", "--cleanenv"]
    if spec.gpu:
        argv.append("--nv")
    for mount in spec.binds:
        argv += ["--bind", f"{mount.source}:{mount.target}:{'rw' if mount.writable else 'ro'}"]
    if spec.workdir:
        argv += ["--pwd", spec.workdir]
    argv.append(str(spec.image.path))
    argv += list(spec.argv)
    env = {f"APPTAINERENV_{key}": value for key, value in sorted(spec.env.items())}
    return Command(argv, env)


# -- the local runtime: squashfuse/unsquashfs + bubblewrap ------------------------------------------------------
def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


# Mounted fresh in every container (not taken from the image).
TAKEN = {"proc", "sys", "dev", "tmp"}
# Like apptainer, the working directory is bound only when it is not a system directory.
SYSTEM_DIRS = {"", "bin", "boot", "dev", "etc", "lib", "lib32", "lib64", "libx32", "opt", "proc", "root", "run",
               "sbin", "sys", "usr", "var"}


def _bindable_workdir(path: str) -> bool:
    return path.startswith("/") and path.strip("/").split("/")[0] not in SYSTEM_DIRS


def _underlay(root: Path, relative: str, targets: list[str]) -> list[str]:
    """Lay the image's tree out read-only, the way apptainer's underlay does.

    A directory holding a bind target that the image lacks becomes a fresh directory of the container's own
    (tmpfs) root, with the image's entries bound into it one by one, so that the target can be created there.
    """
    argv: list[str] = []
    for name in sorted(os.listdir(root / relative)):
        inner = f"{relative}/{name}" if relative else name
        if not relative and name in TAKEN:
            continue
        path = root / inner
        if path.is_symlink():
            argv += ["--symlink", os.readlink(path), f"/{inner}"]
            continue
        needs = [t for t in targets if t == inner or t.startswith(inner + "/")]
        if needs and path.is_dir() and not all((root / t).exists() for t in needs):
            argv += ["--dir", f"/{inner}", *_underlay(root, inner, needs)]
        else:
            argv += ["--ro-bind", str(path), f"/{inner}"]
    return argv


def bwrap_command(spec: LaunchSpec, root: Path, *, home: str, passwd: Path | None = None,
                  group: Path | None = None, bwrap: str = "bwrap", devices: tuple[str, ...] = ()) -> Command:
    """The ``bwrap`` command line that runs ``spec`` in the image's file tree at ``root`` (mounted or unpacked)."""
    argv = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    mounts = [Mount(home, home, True)]
    workdir = spec.workdir if spec.workdir and _bindable_workdir(spec.workdir) else None
    if workdir and not any(_inside(workdir, p) for p in (home, "/tmp")):
        mounts.append(Mount(workdir, workdir, True))
    mounts += list(spec.binds)
    targets = [m.target.strip("/") for m in mounts if not _inside(m.target, "/tmp")]
    argv += _underlay(root, "", targets) if root.is_dir() else []
    argv += ["--proc", "/proc", "--dev", "/dev", "--ro-bind", "/sys", "/sys", "--bind", "/tmp", "/tmp"]
    for device in devices:  # GPU device nodes (apptainer --nv also brings the driver's libraries)
        argv += ["--dev-bind", device, device]
    etc = root / "etc"
    for name, source in (("passwd", passwd), ("group", group), ("hosts", Path("/etc/hosts")),
                         ("resolv.conf", Path("/etc/resolv.conf"))):
        if source is not None and source.exists() and (etc / name).exists():
            argv += ["--ro-bind", str(source), f"/etc/{name}"]
    for mount in mounts:
        argv += ["--bind" if mount.writable else "--ro-bind", mount.source, mount.target]
    argv += ["--remount-ro", "/", "--clearenv"]
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
    environment = {"PATH": DEFAULT_PATH, "HOME": home, "LANG": "C.UTF-8", "USER": user, "LOGNAME": user,
                   **dict(spec.env)}
    for key, value in sorted(environment.items()):
        argv += ["--setenv", key, value]
    argv += ["--chdir", workdir or home]
    command = ["/.singularity.d/runscript", *spec.argv] if spec.runscript else list(spec.argv)
    if not command:
        raise ValueError("nothing to run: no command and no runscript")
    if (root / ".singularity.d" / "env").is_dir() and (root / "bin" / "sh").exists():
        command = ["/bin/sh", "-c", ENV_SCRIPT, "visa-app", *command]  # like apptainer's action scripts
    elif spec.runscript and (root / "bin" / "sh").exists():
        command = ["/bin/sh", *command]
    return Command(argv + ["--", *command])


def passwd_with(entry_file: Path, image_file: Path, uid: int) -> str:
    """The image's /etc/passwd (or group) plus the host's line for ``uid``, as apptainer writes it."""
    lines = image_file.read_text().splitlines() if image_file.exists() else []
    host = next((line for line in entry_file.read_text().splitlines()
                 if line.count(":") >= 3 and line.split(":")[2] == str(uid)), None)
    if host and not any(line.split(":")[2:3] == [str(uid)] for line in lines):
        lines.append(host)
    return "\n".join(lines) + "\n"


def local_runtime_missing() -> str | None:
    """Why the local runtime cannot run here, or ``None``."""
    if not shutil.which("bwrap"):
        return "bubblewrap (bwrap) is not installed"
    if not shutil.which("squashfuse") and not shutil.which("unsquashfs"):
        return "neither squashfuse nor unsquashfs (squashfs-tools) is installed"
    return None


class LocalRuntime:
    """Mount the image, run ``bwrap`` as a child, forward signals, unmount when it ends."""

    def __init__(self, state_dir: Path, home: str):
        self.run_dir = state_dir / "runtime"
        self.home = home

    # -- the image's file tree --------------------------------------------------------------------------------
    def _cleanup_stale(self) -> None:
        """Unmount what a killed launcher left behind (mount points are named after the launcher's pid)."""
        for mountpoint in self.run_dir.glob("mnt-*"):
            pid = mountpoint.name.split("-")[1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                self._unmount(mountpoint)

    @staticmethod
    def _is_mounted(path: Path) -> bool:
        target = str(path.resolve())
        with contextlib.suppress(OSError):
            return any(line.split()[1] == target for line in Path("/proc/self/mounts").read_text().splitlines())
        return False

    def _unmount(self, mountpoint: Path) -> None:
        if self._is_mounted(mountpoint):
            tool = ["umount"] if os.geteuid() == 0 or not shutil.which("fusermount3") else ["fusermount3", "-u"]
            subprocess.run([*tool, str(mountpoint)], capture_output=True)
        with contextlib.suppress(OSError):
            mountpoint.rmdir()
        with contextlib.suppress(OSError):
            (mountpoint.parent / (mountpoint.name + ".passwd")).unlink()
            (mountpoint.parent / (mountpoint.name + ".group")).unlink()

    def _mount(self, image: ImageFile) -> tuple[Path, Path | None]:
        """The image's root: (path, mount point to undo or None)."""
        if image.kind == SANDBOX:
            return image.path, None
        assert image.partition is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if shutil.which("squashfuse") and Path("/dev/fuse").exists():
            mountpoint = self.run_dir / f"mnt-{os.getpid()}-{secrets.token_hex(4)}"
            mountpoint.mkdir()
            result = subprocess.run(["squashfuse", "-o", f"offset={image.partition.offset}", str(image.path),
                                     str(mountpoint)], capture_output=True, text=True)
            if result.returncode == 0:
                for _ in range(50):
                    if self._is_mounted(mountpoint):
                        return mountpoint, mountpoint
                    time.sleep(0.05)
            mountpoint.rmdir()
        return self._unpack(image), None

    def _unpack(self, image: ImageFile) -> Path:
        """Unpack the partition once (keyed by file identity) when FUSE is not available."""
        assert image.partition is not None
        info = image.path.stat()
        target = self.run_dir / f"unpacked-{info.st_dev}-{info.st_ino}-{info.st_mtime_ns}"
        if not target.exists():
            partial = target.with_name(target.name + f".partial-{os.getpid()}")
            result = subprocess.run(["unsquashfs", "-no-xattrs", "-quiet", "-o", str(image.partition.offset),
                                     "-d", str(partial), str(image.path)], capture_output=True, text=True)
            if result.returncode != 0:
                shutil.rmtree(partial, ignore_errors=True)
                raise RuntimeUnavailable(f"cannot unpack {image.path}: {result.stderr.strip()[-400:]}")
            with contextlib.suppress(OSError):
                partial.rename(target)
            shutil.rmtree(partial, ignore_errors=True)
        return target

    # -- running ----------------------------------------------------------------------------------------------
    def run(self, spec: LaunchSpec, extra_env: Mapping[str, str] | None = None) -> int:
        """Run to completion; returns the program's exit status."""
        missing = local_runtime_missing()
        if missing:
            raise RuntimeUnavailable(f"cannot run containers here: apptainer is not installed and {missing}")
        self._cleanup_stale()
        root, mountpoint = self._mount(spec.image)
        files: list[Path] = []
        try:
            stem = mountpoint or self.run_dir / f"run-{os.getpid()}-{secrets.token_hex(4)}"
            self.run_dir.mkdir(parents=True, exist_ok=True)
            passwd, group = Path(f"{stem}.passwd"), Path(f"{stem}.group")
            passwd.write_text(passwd_with(Path("/etc/passwd"), root / "etc" / "passwd", os.getuid()))
            group.write_text(passwd_with(Path("/etc/group"), root / "etc" / "group", os.getgid()))
            files += [passwd, group]
            devices = tuple(str(p) for p in sorted(Path("/dev").glob("nvidia*"))) if spec.gpu else ()
            command = bwrap_command(spec, root, home=self.home, passwd=passwd, group=group, devices=devices)
            return _supervise(command.argv, {**os.environ, **(extra_env or {})})
        finally:
            if mountpoint is not None:
                self._unmount(mountpoint)
            for path in files:
                with contextlib.suppress(OSError):
                    path.unlink()


def _supervise(argv: list[str], env: Mapping[str, str]) -> int:
    """Run ``argv`` as a child; SIGTERM/SIGHUP are passed on, SIGINT reaches it through its process group."""
    child = subprocess.Popen(argv, env=dict(env))

    def forward(signum, _frame):
        with contextlib.suppress(ProcessLookupError):
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        while True:
            try:
                return _status(child.wait())
            except InterruptedError:
                continue
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _status(code: int) -> int:
    return 128 - code if code < 0 else code


def exec_command(command: Command) -> None:
    """Replace this process with ``command`` (apptainer handles signals and cleanup itself)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command.argv[0], command.argv, {**os.environ, **command.env})
