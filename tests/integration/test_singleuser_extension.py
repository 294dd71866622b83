"""The instance-side extension in a real Jupyter Server: session API, auth, and the prebuilt labextension.

Starts ``jupyter server`` subprocesses from this environment, so it checks what ``pip install`` put in place
(the server extension enabled through ``etc/jupyter``, the labextension in ``share/jupyter/labextensions``).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from collections.abc import Iterator

import pytest

from jupyter_server_process import BASE_URL, JupyterServer, launch_jupyter_server

pytestmark = pytest.mark.integration

LABEXTENSION = "@visa-hub/labextension"
LIFETIME = dt.timedelta(hours=12)


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


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, JupyterServer]]:
    """Two servers, started side by side: ``visa`` as the spawner starts an instance, ``plain`` outside visa-hub."""
    now = dt.datetime.now(dt.UTC)
    started = {
        "visa": launch_jupyter_server(tmp_path_factory.mktemp("visa"), env={
            "VISA_SESSION": json.dumps(_session(now)),
            "VISA_EXPERIMENT": "LOKI-2026-042",
            "VISA_INSTRUMENT": "LoKI",
            "VISA_EXPIRES_AT": (now + LIFETIME).isoformat(),
            "JUPYTERHUB_BASE_URL": "/",
            "JUPYTERHUB_USER": "alice",
            "JUPYTERHUB_SERVICE_PREFIX": BASE_URL,
        }),
        "plain": launch_jupyter_server(tmp_path_factory.mktemp("plain")),
    }
    try:
        for server in started.values():
            server.wait_until_up(90)  # two servers side by side on a busy machine
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture
def visa_server(servers: dict[str, JupyterServer]) -> JupyterServer:
    return servers["visa"]


@pytest.fixture
def plain_server(servers: dict[str, JupyterServer]) -> JupyterServer:
    return servers["plain"]


def test_session_api_returns_the_session(visa_server: JupyterServer) -> None:
    response = visa_server.get("visa/api/session")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["experiment"]["code"] == "LOKI-2026-042"
    assert body["instrument"] == "LoKI"
    assert body["flavour"]["name"] == "large"
    assert LIFETIME.total_seconds() - 120 < body["seconds_left"] <= LIFETIME.total_seconds()
    assert body["hub_prefix"] == "/hub/"
    assert body["spawn_url"] == "/hub/spawn"
    # the hub's confirmation pages for this server (the default one: empty server name)
    assert body["relaunch_url"] == "/hub/visa/relaunch/alice/"
    assert body["stop_url"] == "/hub/visa/stop/alice/"
    assert response.headers["Cache-Control"] == "no-store"


def test_session_api_needs_a_token(visa_server: JupyterServer) -> None:
    response = visa_server.get("visa/api/session", token=False)
    assert response.status_code in (401, 403)
    assert "LOKI" not in response.text


def test_session_api_outside_visa_hub_is_404_with_a_message(plain_server: JupyterServer) -> None:
    response = plain_server.get("visa/api/session")
    assert response.status_code == 404
    assert "VISA_SESSION" in response.json()["message"]


def test_lab_page_loads_the_prebuilt_labextension(visa_server: JupyterServer) -> None:
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


def test_lab_never_asks_about_jupyter_news(visa_server: JupyterServer) -> None:
    """The wheel puts visa-hub's Lab defaults into the environment: every instance (Slurm jobs too) has them."""
    response = visa_server.get("lab/api/settings/@jupyterlab/apputils-extension:notification")
    assert response.status_code == 200, response.text[:300]
    properties = response.json()["schema"]["properties"]
    assert properties["fetchNews"]["default"] == "false"  # JupyterLab's default "none" asks in a toast
    assert properties["checkForUpdates"]["default"] is False
