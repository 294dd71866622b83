"""The instance-side extension in a real Jupyter Server: session API, auth, and the prebuilt labextension.

Starts ``jupyter server`` subprocesses from this environment, so it checks what ``pip install`` put in place
(the server extension enabled through ``etc/jupyter``, the labextension in ``share/jupyter/labextensions``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.integration

LABEXTENSION = "@visa-hub/labextension"
BASE_URL = "/user/alice/"
LIFETIME = dt.timedelta(hours=12)


@dataclass
class Server:
    """A running ``jupyter server``: where it is and the token that opens it."""

    url: str  # including the base URL, ends with "/"
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, *, token: bool = True) -> httpx.Response:
        headers = {"Authorization": f"token {self.token}"} if token else {}
        return httpx.get(self.url + path, headers=headers, timeout=10, follow_redirects=False)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _session(now: dt.datetime) -> dict:
    """A session as the spawner writes it (``SessionPlan.summary()``)."""
    return {
        "username": "alice",
        "experiment": {
            "code": "LOKI-2026-042",
            "title": "Lipid membranes under shear",
            "instrument": "LoKI",
            "starts_at": (now - dt.timedelta(days=1)).isoformat(),
            "ends_at": (now + dt.timedelta(days=2)).isoformat(),
            "proposal_pk": 1042,
            "local_contact": "carl",
            "role": "principal-investigator",
        },
        "instrument": "LoKI",
        "flavour": {"name": "large", "cpus": 16, "memory_gb": 64, "gpus": 0},
        "image": "ess-analysis-2026.10",
        "lifetime_hours": 12,
        "starts_at": now.isoformat(),
        "expires_at": (now + LIFETIME).isoformat(),
    }


def _launch(tmp: Path, extra_env: dict[str, str]) -> Server:
    """Start ``jupyter server`` under ``BASE_URL`` with a fresh token; :func:`_wait_until_up` waits for it."""
    token, port = secrets.token_hex(16), _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "VISA_", "JUPYTER_"))}
    # Keep the user's own Jupyter config out; the environment's (sys.prefix) config is what we test.
    env |= {"JUPYTER_CONFIG_DIR": str(tmp / "config"), "JUPYTER_DATA_DIR": str(tmp / "data"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"), **extra_env}
    cmd = [
        sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.token={token}", f"--ServerApp.base_url={BASE_URL}", f"--ServerApp.root_dir={tmp}",
    ]
    with (tmp / "server.log").open("wb") as log:
        process = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return Server(f"http://127.0.0.1:{port}{BASE_URL}", token, process, tmp / "server.log")


def _wait_until_up(server: Server, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"jupyter server exited early:\n{server.log.read_text()}")
        try:
            if server.get("api/status").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"jupyter server not up after {timeout:g} s:\n{server.log.read_text()}")


def _stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Two servers, started side by side: ``visa`` as the spawner starts an instance, ``plain`` outside visa-hub."""
    now = dt.datetime.now(dt.UTC)
    started = {
        "visa": _launch(tmp_path_factory.mktemp("visa"), {
            "VISA_SESSION": json.dumps(_session(now)),
            "VISA_EXPERIMENT": "LOKI-2026-042",
            "VISA_INSTRUMENT": "LoKI",
            "VISA_EXPIRES_AT": (now + LIFETIME).isoformat(),
            "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_USER": "alice",
            "JUPYTERHUB_SERVICE_PREFIX": BASE_URL,
        }),
        "plain": _launch(tmp_path_factory.mktemp("plain"), {}),
    }
    try:
        for server in started.values():
            _wait_until_up(server)
        yield started
    finally:
        for server in started.values():
            _stop(server)


@pytest.fixture
def visa_server(servers: dict[str, Server]) -> Server:
    return servers["visa"]


@pytest.fixture
def plain_server(servers: dict[str, Server]) -> Server:
    return servers["plain"]


def test_session_api_returns_the_session(visa_server: Server) -> None:
    response = visa_server.get("visa/api/session")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["experiment"]["code"] == "LOKI-2026-042"
    assert body["instrument"] == "LoKI"
    assert body["flavour"]["name"] == "large"
    assert LIFETIME.total_seconds() - 120 < body["seconds_left"] <= LIFETIME.total_seconds()
    assert body["hub_prefix"] == "/hub/"
    assert body["spawn_url"] == "/hub/spawn"
    assert response.headers["Cache-Control"] == "no-store"


def test_session_api_needs_a_token(visa_server: Server) -> None:
    response = visa_server.get("visa/api/session", token=False)
    assert response.status_code in (401, 403)
    assert "LOKI" not in response.text


def test_session_api_outside_visa_hub_is_404_with_a_message(plain_server: Server) -> None:
    response = plain_server.get("visa/api/session")
    assert response.status_code == 404
    assert "VISA_SESSION" in response.json()["message"]


def test_lab_page_loads_the_prebuilt_labextension(visa_server: Server) -> None:
    page = visa_server.get("lab")
    assert page.status_code == 200, page.text[:500]
    match = re.search(r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page.text, re.S)
    assert match, "no page config in /lab"
    extensions = {ext["name"]: ext for ext in json.loads(match.group(1)).get("federated_extensions", [])}
    assert LABEXTENSION in extensions, (
        f"{LABEXTENSION} is not installed in {sys.prefix}/share/jupyter/labextensions: run `pip install -e .` "
        f"(it builds labextension/ into visa_hub/labextension)"
    )
    remote_entry = visa_server.get(f"lab/extensions/{LABEXTENSION}/{extensions[LABEXTENSION]['load']}")
    assert remote_entry.status_code == 200
    assert "@visa-hub/labextension" in remote_entry.text
