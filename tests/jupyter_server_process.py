"""A real ``jupyter server`` from this environment under ``/user/alice/``, as a spawner would start one.

Used by the tests of our Jupyter Server extension (session API, desktop): the user's own Jupyter config is kept
out, so what is tested is what ``pip install`` put into this environment.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hubtest import free_port

BASE_URL = "/user/alice/"


@dataclass
class JupyterServer:
    """A running ``jupyter server``: where it is and the token that opens it."""

    url: str  # including the base URL, ends with "/"
    token: str
    process: subprocess.Popen[bytes]
    root: Path
    log: Path

    def get(self, path: str, *, token: bool = True) -> httpx.Response:
        headers = {"Authorization": f"token {self.token}"} if token else {}
        return httpx.get(self.url + path, headers=headers, timeout=10, follow_redirects=False)

    def ws_url(self, path: str) -> str:
        return self.url.replace("http://", "ws://") + path

    def wait_until_up(self, timeout: float = 30) -> JupyterServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"jupyter server exited early:\n{self.log.read_text()}")
            if not self._listening():  # the port may have been taken by someone else's server meanwhile
                time.sleep(0.2)
                continue
            try:
                if self.get("api/status").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"jupyter server not up after {timeout:g} s:\n{self.log.read_text()}")

    def _listening(self) -> bool:
        """Our process says it serves our URL (another program answering on a reused free port is not us)."""
        try:
            return f"{self.url.split('/user/')[0]}" in self.log.read_text(errors="replace")
        except OSError:
            return False

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def launch_jupyter_server(
    tmp: Path, *, root: Path | None = None, env: Mapping[str, str] | None = None, args: Iterable[str] = (),
    user: str | None = None,
) -> JupyterServer:
    """Start ``jupyter server`` with a fresh token (not waiting: see :meth:`JupyterServer.wait_until_up`);
    as the unix account ``user`` if given (``tmp`` must then be hers to write)."""
    token, port, root = secrets.token_hex(16), free_port(), root or tmp
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "VISA_", "JUPYTER_"))}
    clean |= {"JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
              "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), **(env or {})}
    cmd = [
        sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}", f"--ServerApp.base_url={BASE_URL}", f"--ServerApp.root_dir={root}", *args,
    ]
    log = tmp / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, env=clean, stdout=out, stderr=subprocess.STDOUT, cwd=root, user=user,
                                   group=user and pwd.getpwnam(user).pw_gid, extra_groups=[] if user else None)
    return JupyterServer(f"http://127.0.0.1:{port}{BASE_URL}", token, process, root, log)


def execute_code(channels_url: str, token: str, code: str, username: str = "alice",
                 timeout: float = 120) -> list[tuple[str, dict]]:
    """Run ``code`` over a kernel's ``.../channels`` websocket, as Lab does: the (type, content) of the messages it
    answered with, until the kernel is idle again. A kernel error fails with its traceback."""
    import websocket

    ws = websocket.create_connection(channels_url, header=[f"Authorization: token {token}"], timeout=timeout)
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": username, "session": msg_id,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        answers, deadline = [], time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "error":
                raise AssertionError(f"kernel error: {content['ename']}: {content['evalue']}\n"
                                     + "\n".join(content.get("traceback", []))[-3000:])
            if kind == "status" and content["execution_state"] == "idle":
                return answers
            answers.append((kind, content))
        raise TimeoutError(f"no answer from the kernel at {channels_url} in {timeout} s")
    finally:
        ws.close()
