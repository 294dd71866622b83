"""A real JupyterHub process started with visa-hub's jupyterhub_config.py, and a user's HTTP session.

Used by the end-to-end tests, the browser tests and the benchmarks: nothing here is mocked.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
JUPYTERHUB = Path(sys.executable).with_name("jupyterhub")
DEMO_PASSWORD = "visa-demo"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, interval: float = 0.2):
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what} (last error: {last_error})")


def processes_under(directory: Path) -> list[int]:
    """Pids of processes whose working directory is inside ``directory`` (the instances of a data dir)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            continue
        if cwd == directory or directory in cwd.parents:
            pids.append(int(proc.name))
    return pids


def process_environ(pid: int) -> dict[str, str]:
    """A process's environment ({} if it is gone or not ours to read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def instance_processes(directory: Path, server_name: str) -> list[int]:
    """Pids of the instance (JupyterHub server name ``server_name``, "" = default) running under ``directory``."""
    return [pid for pid in processes_under(directory)
            if process_environ(pid).get("JUPYTERHUB_SERVER_NAME") == server_name]


@dataclass
class HubProcess:
    """``jupyterhub -f jupyterhub_config.py`` with its own ports and data directory."""

    data_dir: Path
    config_file: Path = REPO / "jupyterhub_config.py"
    extra_env: dict[str, str] = field(default_factory=dict)
    run_as: str | None = None  # unix user the hub runs as (a service user); None: the test's own user
    port: int = field(default_factory=free_port)
    api_port: int = field(default_factory=free_port)
    proxy_api_port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.data_dir / "hub.log"

    def env(self) -> dict[str, str]:
        account = pwd.getpwnam(self.run_as) if self.run_as else None
        return {
            **os.environ,
            **({"HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name} if account else {}),
            "VISA_DATA_DIR": str(self.data_dir),
            "VISA_HUB_PORT": str(self.port),
            "VISA_HUB_API_PORT": str(self.api_port),
            "VISA_PROXY_API_PORT": str(self.proxy_api_port),
            "VISA_KEEP_SERVERS": "0",
            **self.extra_env,
        }

    def start(self, timeout: float = 60) -> HubProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_file.open("ab")
        if self.run_as:  # the data directory (and the config in it) belongs to the service user
            for path in (self.data_dir, *self.data_dir.rglob("*")):
                shutil.chown(path, self.run_as, pwd.getpwnam(self.run_as).pw_gid)
        self.proc = subprocess.Popen(
            [str(JUPYTERHUB), "-f", str(self.config_file)],
            cwd=REPO, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            user=self.run_as, group=pwd.getpwnam(self.run_as).pw_gid if self.run_as else None,
            extra_groups=[] if self.run_as else None,
        )

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"jupyterhub exited with {self.proc.returncode}:\n{self.log_tail()}")
            return httpx.get(f"{self.url}/hub/api/", timeout=2).status_code == 200

        wait_until(ready, timeout, f"the hub on {self.url}")
        return self

    def stop(self, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def restart(self) -> HubProcess:
        """Stop and start again on the same ports and data (instances started with VISA_KEEP_SERVERS=1 stay)."""
        self.stop()
        return self.start()

    def kill_instances(self) -> None:
        for pid in processes_under(self.data_dir):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")


class UserSession:
    """One person's browser-like HTTP session with the hub (cookies, XSRF), driven with httpx."""

    def __init__(self, hub: HubProcess, username: str):
        self.hub, self.username = hub, username
        self.http = httpx.Client(base_url=hub.url, follow_redirects=True, timeout=30)

    def close(self) -> None:
        self.http.close()

    def login(self, password: str = DEMO_PASSWORD) -> httpx.Response:
        page = self.http.get("/hub/login")
        xsrf = re.search(r'name="_xsrf" value="([^"]+)"', page.text).group(1)
        return self.http.post(
            "/hub/login", data={"username": self.username, "password": password, "_xsrf": xsrf}
        )

    def spawn_form(self) -> httpx.Response:
        return self.http.get("/hub/spawn")

    def submit_spawn_form(self, **fields: str) -> httpx.Response:
        form = self.spawn_form()
        action = re.search(r'<form[^>]*id="spawn_form"[^>]*action="([^"]+)"', form.text, re.S)
        if not action:
            raise AssertionError(f"no spawn form on {form.url}:\n{form.text[:2000]}")
        return self.http.post(action.group(1).replace("&amp;", "&"), data=fields)

    def server_model(self) -> dict:
        user = self.http.get(f"/hub/api/users/{self.username}", headers=self._hub_xsrf()).json()
        return user.get("servers", {}).get("", {})

    def wait_ready(self, timeout: float = 90) -> dict:
        def ready():
            model = self.server_model()
            if not model:
                raise RuntimeError(f"{self.username} has no server (spawn failed?):\n{self.hub.log_tail()}")
            return model if model.get("ready") else None

        return wait_until(ready, timeout, f"{self.username}'s server to be ready", interval=0.25)

    def progress_messages(self, timeout: float = 90) -> list[str]:
        """Follow the hub's progress event stream for her server until it is ready; the messages shown."""
        messages = []
        url = f"/hub/api/users/{self.username}/server/progress"
        with self.http.stream("GET", url, headers=self._hub_xsrf(), timeout=timeout) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:"):
                    event = json.loads(line[5:])
                    messages.append(event.get("message", ""))
                    if event.get("ready") or event.get("failed"):
                        break
        return messages

    def lab(self) -> httpx.Response:
        return self.http.get(f"/user/{self.username}/lab")

    def _hub_xsrf(self) -> dict[str, str]:
        token = self.http.cookies.get("_xsrf", path="/hub/")
        return {"X-XSRFToken": token} if token else {}

    def _server_xsrf(self) -> dict[str, str]:
        token = self.http.cookies.get("_xsrf", path=f"/user/{self.username}/")
        return {"X-XSRFToken": token} if token else {}

    def put_file(self, path: str, content: str) -> httpx.Response:
        return self.http.put(
            f"/user/{self.username}/api/contents/{path}",
            json={"type": "file", "format": "text", "content": content},
            headers=self._server_xsrf(),
        )

    def get_file(self, path: str) -> httpx.Response:
        return self.http.get(f"/user/{self.username}/api/contents/{path}", headers=self._server_xsrf())

    def stop_server(self, timeout: float = 60) -> None:
        response = self.http.delete(f"/hub/api/users/{self.username}/server", headers=self._hub_xsrf())
        assert response.status_code in (202, 204), response.text
        wait_until(lambda: not self.server_model(), timeout, f"{self.username}'s server to stop")
