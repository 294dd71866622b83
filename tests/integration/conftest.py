"""Fixtures of the integration tests that several modules share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hubtest import HubProcess
from openstack_support import Cloud, start_cloud


@pytest.fixture
def cloud(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cloud]:
    """The OpenStack simulator seeded like the demo catalog; ``@pytest.mark.cloud_boot_delay(s)`` sets its boot time."""
    marker = request.node.get_closest_marker("cloud_boot_delay")
    cloud = start_cloud(tmp_path, boot_delay=marker.args[0] if marker else 0.3)
    yield cloud
    cloud.thread.stop()


@pytest.fixture
def hubs() -> Iterator[list[HubProcess]]:
    """Hub processes a test starts itself (with its own config file); all are stopped afterwards."""
    started: list[HubProcess] = []
    yield started
    for hub in started:
        hub.stop()
