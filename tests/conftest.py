"""Shared fixtures: integration requirements, the real hub process, PostgreSQL, the browser."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from hubtest import HubProcess

REQUIRE_INTEGRATION = os.environ.get("VISA_REQUIRE_INTEGRATION") == "1"


def missing_peer(reason: str) -> None:
    """Skip a test whose real peer is missing; under VISA_REQUIRE_INTEGRATION=1 (CI) that is a failure."""
    if REQUIRE_INTEGRATION:
        pytest.fail(f"required integration peer missing: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def start_hub(tmp_path: Path):
    """Factory: start real ``jupyterhub -f jupyterhub_config.py`` processes; all are stopped afterwards."""
    started: list[HubProcess] = []

    def start(data_dir: Path | None = None, **env: str) -> HubProcess:
        if not (Path(HubProcess.config_file).parent / "node_modules/.bin/configurable-http-proxy").exists() \
                and not shutil.which("configurable-http-proxy"):
            missing_peer("configurable-http-proxy not installed (run `npm install`)")
        hub = HubProcess(data_dir or tmp_path / "data", extra_env=env)
        started.append(hub)
        return hub.start()

    yield start
    for hub in started:
        hub.stop()
        hub.kill_instances()


@pytest.fixture(scope="session")
def postgres_url():
    from peers_postgres import postgres_bin, postgres_server

    if postgres_bin() is None:
        missing_peer("PostgreSQL server not installed (apt-get install postgresql)")
    with postgres_server() as url:
        yield url
