"""Start one desktop: Xvnc on a private unix socket, then the session (window manager, panel, terminal).

Run by jupyter-server-proxy on first use as ``python -m visa_hub.singleuser.desktop.launch SPEC.json``
(see :class:`~visa_hub.singleuser.desktop.config.LaunchSpec`). It stays in the foreground for as long as Xvnc
runs and takes the whole desktop down when it is stopped (SIGTERM) or when Xvnc exits; its children also get
SIGTERM should the launcher itself be killed (``PR_SET_PDEATHSIG``).

Xvnc listens on the unix socket only (``-rfbport -1``, mode 0600, in a 0700 directory) and its X display
requires the cookie in the private Xauthority file, so no other local user can reach either.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

from . import keyboard
from .applications import load_applications
from .config import PACKAGE_DIR, LaunchSpec, read_spec
from .sessionfiles import (
    SessionFiles,
    bin_dir_of,
    seed_desktop_icons_config,
    session_environment,
    write_session_files,
)
from .xauth import new_cookie, xauthority_entry

SESSION_DIR = PACKAGE_DIR / "session"
PR_SET_PDEATHSIG = 1
#: The file beside the socket that holds the display (":1") while the desktop runs (the desktop API reads it).
DISPLAY_FILE = "display"


def display_file(spec: LaunchSpec) -> Path:
    """Where a running desktop keeps its display name."""
    return Path(spec.socket).parent / DISPLAY_FILE


class LaunchError(RuntimeError):
    """The desktop could not start; the message says why."""


class Stop(Exception):
    """Raised by the signal handler to unwind the launcher."""


def _die_with_parent() -> None:
    """In a child before exec: receive SIGTERM when the launcher dies, however it dies."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def xvnc_command(spec: LaunchSpec, displayfd: int) -> list[str]:
    """The Xvnc command line: unix socket only, shared connections, no TCP anywhere."""
    return [
        spec.xvnc, "-displayfd", str(displayfd), "-auth", spec.xauthority,
        "-rfbunixpath", spec.socket, "-rfbunixmode", "0600", "-rfbport", "-1",
        "-SecurityTypes", "None", "-AlwaysShared",
        "-geometry", spec.geometry, "-depth", str(spec.depth), "-desktop", spec.desktop_name,
        "-nolisten", "tcp", *spec.xvnc_args,
    ]


class Desktop:
    """The running processes of one desktop."""

    def __init__(self, spec: LaunchSpec, log: IO[bytes]):
        self.spec, self.log = spec, log
        self.xvnc: subprocess.Popen[bytes] | None = None
        self.session: list[subprocess.Popen[bytes]] = []
        self.display: int | None = None

    def say(self, message: str) -> None:
        self.log.write(f"[visa-desktop] {message}\n".encode())
        self.log.flush()

    def start_xvnc(self) -> int:
        """Start Xvnc and return its display number once it accepts connections."""
        cookie = new_cookie()
        _write_private(Path(self.spec.xauthority), xauthority_entry(None, cookie))
        read_end, write_end = os.pipe()
        try:
            self.xvnc = subprocess.Popen(
                xvnc_command(self.spec, write_end), pass_fds=(write_end,), stdin=subprocess.DEVNULL,
                stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            raise LaunchError(f"cannot run {self.spec.xvnc}: {exc.strerror}") from None
        finally:
            os.close(write_end)
        try:
            self.display = self._read_display(read_end)
        finally:
            os.close(read_end)
        _write_private(Path(self.spec.xauthority), xauthority_entry(self.display, cookie))
        self._wait_for_socket()
        _write_private(display_file(self.spec), f":{self.display}\n".encode())
        self.say(f"Xvnc on display :{self.display}, socket {self.spec.socket}")
        return self.display

    def _read_display(self, fd: int) -> int:
        deadline = time.monotonic() + self.spec.startup_timeout
        data = b""
        while not data.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LaunchError(f"Xvnc did not start within {self.spec.startup_timeout:g} s")
            ready, _, _ = select.select([fd], [], [], min(left, 0.5))
            if ready:
                chunk = os.read(fd, 64)
                if not chunk:
                    break
                data += chunk
            elif self.xvnc.poll() is not None:
                break
        if not data.strip().isdigit():
            self.xvnc.wait(timeout=5)
            raise LaunchError(f"Xvnc exited with status {self.xvnc.returncode} before it was ready")
        return int(data)

    def _wait_for_socket(self) -> None:
        deadline = time.monotonic() + self.spec.startup_timeout
        while not os.path.exists(self.spec.socket):
            if self.xvnc.poll() is not None or time.monotonic() > deadline:
                raise LaunchError(f"Xvnc did not create its socket {self.spec.socket}")
            time.sleep(0.05)

    def session_env(self) -> dict[str, str]:
        return session_environment(os.environ, f":{self.display}", self.spec.xauthority,
                                   bin_dir_of(Path(self.spec.socket).parent), self.spec.application_dirs)

    def spawn(self, cmd: list[str], env: dict[str, str] | None = None, wait: bool = False) -> None:
        """Start one session program; a missing program is logged, not fatal (the desktop still shows)."""
        if not cmd:
            return
        try:
            proc = subprocess.Popen(
                cmd, cwd=self.spec.cwd, env=env or self.session_env(), stdin=subprocess.DEVNULL,
                stdout=self.log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent, start_new_session=True,
            )
        except OSError as exc:
            self.say(f"cannot start {cmd[0]}: {exc.strerror}")
            return
        if wait:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.session.append(proc)

    def prepare_session(self) -> SessionFiles:
        """Write the session's configuration (panel, menus, window manager, terminal)."""
        apps, problems = load_applications(self.spec.application_dirs or [SESSION_DIR / "applications"])
        for problem in problems:
            self.say(f"application menu: {problem}")
        files = write_session_files(Path(self.spec.socket).parent, apps, sys.executable)
        return files

    def apply_keyboard_layout(self) -> None:
        """The configured layout, else her last choice; a failure is logged (the desktop still works)."""
        home = Path(os.environ.get("HOME") or Path.home())
        layout = self.spec.keyboard_layout or keyboard.load_preference(home)
        if not layout:
            return
        try:
            keyboard.set_layout(layout, self.session_env())
            self.say(f"keyboard layout {layout}")
        except keyboard.KeyboardError as exc:
            self.say(f"keyboard layout {layout}: {exc}")

    def start_session(self) -> None:
        files = self.prepare_session()
        home = Path(os.environ.get("HOME") or Path.home())
        with contextlib.suppress(OSError):  # her desktop folder: uploads from the browser land there
            (home / "Desktop").mkdir(exist_ok=True)
        with contextlib.suppress(OSError):  # the desktop icons' look, until she changes it herself
            seed_desktop_icons_config(home)
        self.spawn(["xrdb", "-merge", str(SESSION_DIR / "Xresources")], wait=True)
        self.apply_keyboard_layout()
        if self.spec.background:
            self.spawn(["xsetroot", "-solid", self.spec.background], wait=True)
        self.spawn(_with_config(self.spec.window_manager, "openbox", "--config-file", files.openbox_rc))
        self.spawn(self.spec.desktop_icons)
        self.spawn(_with_config(self.spec.panel, "tint2", "-c", files.tint2rc))
        for cmd in self.spec.autostart:
            self.spawn(cmd)

    def run(self) -> int:
        """Wait while Xvnc runs; reap session programs that exit. Xvnc's exit status is the launcher's."""
        while self.xvnc.poll() is None:
            for proc in self.session:
                proc.poll()
            time.sleep(0.5)
        self.say(f"Xvnc exited with status {self.xvnc.returncode}")
        return self.xvnc.returncode or 0

    def stop(self) -> None:
        """Terminate the session, then Xvnc; kill what is still there after a grace period."""
        procs = [p for p in self.session if p.poll() is None]
        if self.xvnc and self.xvnc.poll() is None:
            procs.append(self.xvnc)
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
        deadline = time.monotonic() + 3
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for path in (self.spec.socket, display_file(self.spec)):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)


def _with_config(cmd: list[str], program: str, option: str, path: Path | None) -> list[str]:
    """``cmd`` with visa-hub's generated config file when it runs ``program`` and names no config of its own."""
    if not cmd or path is None or Path(cmd[0]).name != program or any(a.startswith(option) for a in cmd[1:]):
        return list(cmd)
    return [cmd[0], option, str(path), *cmd[1:]]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m visa_hub.singleuser.desktop.launch SPEC.json", file=sys.stderr)
        return 2
    spec = read_spec(Path(argv[0]))
    _die_with_parent()  # the desktop goes when the Jupyter server goes, even if it is killed outright

    def stop(signum: int, _frame: object) -> None:
        raise Stop(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    with open(spec.log, "ab", buffering=0) as log:
        desktop = Desktop(spec, log)
        try:
            desktop.start_xvnc()
            desktop.start_session()
            return desktop.run()
        except LaunchError as exc:
            desktop.say(f"ERROR: {exc}")
            print(f"visa-desktop: {exc}", file=sys.stderr)
            return 1
        except Stop:
            desktop.say("stopping")
            return 0
        finally:
            desktop.stop()


if __name__ == "__main__":
    sys.exit(main())
