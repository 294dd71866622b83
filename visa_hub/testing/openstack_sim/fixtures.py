"""pytest fixtures for the OpenStack simulator. Import them into a test module or conftest:

    from visa_hub.testing.openstack_sim.fixtures import openstack_conn, openstack_sim  # noqa: F401

``openstack_sim`` is a running :class:`SimulatorThread` (fresh per test, work dir
under ``tmp_path``, boot delay 0.3 s); ``openstack_conn`` an openstacksdk
connection to it with the password credentials.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .thread import SimulatorThread


@pytest.fixture
def openstack_sim(tmp_path: Path) -> Iterator[SimulatorThread]:
    """A simulator on a free loopback port, stopped (with all its server processes) after the test."""
    with SimulatorThread(workdir=tmp_path / "openstack-sim", boot_delay=0.3) as sim_thread:
        yield sim_thread


@pytest.fixture
def openstack_conn(openstack_sim: SimulatorThread) -> Iterator[Any]:
    """An ``openstack.connection.Connection`` to :func:`openstack_sim`."""
    conn = openstack_sim.connect()
    yield conn
    conn.close()
