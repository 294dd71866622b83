"""Real test peers for visa-hub: processes the tests talk to over loopback HTTP.

- :mod:`peers.oidc_realm`: a Keycloak-like OIDC realm (npm ``oidc-provider``),
  started with :func:`peers.oidc_realm.keycloak_realm`.
- :mod:`peers.useroffice_graphql`: a User Office GraphQL server (subset of the
  ``user-office-core`` schema), started with :func:`peers.useroffice_graphql.user_office`.

Every peer runs as a subprocess on a free loopback port, prints one JSON line
``{"ready": true, ...}`` to stdout once it listens, and is stopped when its context
manager exits; peers also exit when their stdin closes, so none outlives a killed test run.
This module holds the process handling they share.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

PEERS_DIR = Path(__file__).resolve().parent


class PeerError(RuntimeError):
    """A test peer could not be started or misbehaved."""


@dataclass
class PeerProcess:
    """A running peer: its process, what it announced on start, and where its output goes."""

    name: str
    process: subprocess.Popen
    ready: dict
    log_dir: Path

    @property
    def stdout_path(self) -> Path:
        return self.log_dir / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.log_dir / "stderr.log"

    def stderr(self) -> str:
        return _read_text(self.stderr_path)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def _ready_line(path: Path) -> dict | None:
    for line in _read_text(path).splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("ready"):
            return message
    return None


@contextlib.contextmanager
def run_peer(
    name: str,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 30.0,
    keep_logs: bool = False,
) -> Iterator[PeerProcess]:
    """Start ``argv``, wait for its ``{"ready": true}`` line, yield it, and stop it afterwards.

    stdout and stderr go to files (never a pipe that could fill up and block the peer).
    If the peer exits or stays silent for ``timeout`` seconds, :class:`PeerError` says so and
    shows the end of its stderr.
    """
    log_dir = Path(tempfile.mkdtemp(prefix=f"visa-hub-peer-{name}-"))
    stdout_path = log_dir / "stdout.log"
    stderr_path = log_dir / "stderr.log"
    with open(stdout_path, "wb") as stdout, open(stderr_path, "wb") as stderr:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.PIPE,  # peers exit when it closes, even if this process is killed
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # Ctrl-C in pytest does not hit the peer first
        )
    peer = None
    try:
        deadline = time.monotonic() + timeout
        ready = None
        while ready is None:
            ready = _ready_line(stdout_path)
            if ready is not None:
                break
            if process.poll() is not None:
                raise PeerError(
                    f"test peer {name!r} exited with status {process.returncode} before it was ready.\n"
                    f"command: {' '.join(argv)}\n"
                    f"stderr (last lines):\n{_tail(_read_text(stderr_path))}"
                )
            if time.monotonic() > deadline:
                raise PeerError(
                    f"test peer {name!r} was not ready after {timeout:.0f} s.\n"
                    f"command: {' '.join(argv)}\n"
                    f"stderr (last lines):\n{_tail(_read_text(stderr_path))}"
                )
            time.sleep(0.05)
        peer = PeerProcess(name=name, process=process, ready=ready, log_dir=log_dir)
        yield peer
    finally:
        _stop(process)
        if not keep_logs and os.environ.get("VISA_HUB_KEEP_PEER_LOGS") != "1":
            shutil.rmtree(log_dir, ignore_errors=True)


def _stop(process: subprocess.Popen, grace: float = 5.0) -> None:
    if process.stdin is not None:
        process.stdin.close()
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=grace)
