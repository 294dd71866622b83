"""What another unix user can read of her Slurm instance in her (0755) home: nothing that names her session.

The Slurm peer of tests/peers_slurm.py (accounting, ``PrivateData=jobs``, the hub as the service user
``visahub``); alice's instance is a job running as her on the node, writing its log, Dask configuration and
provenance record into her real home. bob, another user of the node, walks that home afterwards.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from test_home_isolation import bob_finds
from test_slurm_isolation import LOKI, hubs, live_job, login, server_token, site, slurm, spawn  # noqa: F401

from hubtest import wait_until

pytestmark = pytest.mark.integration

TITLE = "Self-assembly of lipid nanodiscs under shear"  # LOKI-2026-042 in the demo User Office


def test_isolation_bob_reads_nothing_of_alices_slurm_instance_in_her_home(hubs, slurm):  # noqa: F811
    began = time.time() - 1
    hub = hubs()
    alice = login(hub, "alice")
    spawn(alice)
    job_id = live_job(slurm, "alice")
    token = server_token(job_id)
    assert alice.lab().status_code == 200
    home = Path("~alice").expanduser()
    log = home / f"visa-instance-{job_id}.log"
    # the job's log names her session (the provenance record copied to the hub): the check below can fail
    wait_until(lambda: LOKI in log.read_text(errors="replace"), 60, "the job's log to name the experiment")
    assert bob_finds(home, began, LOKI, TITLE, token, "PRIVATE KEY") == {"names": [], "files": []}
    alice.stop_server()
