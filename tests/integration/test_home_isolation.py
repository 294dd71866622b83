"""What another unix user can read in her home while her instance runs: nothing that names her session.

Sites create homes 0755 (Debian's useradd does), so everything an instance writes into her home must protect
itself. A real Jupyter Server with visa-hub's extension runs as the unix user alice, with the environment a
spawner gives her instance; it writes what an instance writes at start and on use (the session's provenance
record, its Dask configuration and TLS credentials, the worker log directory, her keyboard choice). Then bob, a
distinct unix user on the same machine, walks her home: no file he can read, and no name he can list, may carry
her experiment's code or title, the server's token or a private key.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_server_process import BASE_URL, launch_jupyter_server
from visa_hub.catalog import load_catalog
from visa_hub.demo import DEMO_CATALOG
from visa_hub.people import Experiment, Person
from visa_hub.policy import SpawnRequest, plan_session

pytestmark = pytest.mark.integration

EXPERIMENT, TITLE = "LOKI-2026-042", "Shear-aligned lipid nanodiscs, confidential run"

#: Run as bob: every name he can list and every file he can read under a directory that holds a marker (only
#: entries changed since a time, if given: homes shared with other tests keep what those left behind).
BOB_LOOKS = r"""
import json, os, sys
top, since, markers = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
found = {"names": [], "files": []}
def recent(path):
    try:
        return os.lstat(path).st_mtime >= since
    except OSError:
        return False
for directory, dirs, files in os.walk(top, onerror=lambda error: None):
    for name in dirs + files:
        if any(m in name for m in markers) and recent(os.path.join(directory, name)):
            found["names"].append(os.path.join(directory, name))
    for name in files:
        path = os.path.join(directory, name)
        if not recent(path):
            continue
        try:
            with open(path, "rb") as file:
                text = file.read(1 << 22).decode(errors="replace")
        except OSError:
            continue
        if any(m in text for m in markers):
            found["files"].append(path)
print(json.dumps(found))
"""


def instance_environ(home: Path) -> dict[str, str]:
    """The environment a spawner gives alice's instance ``loki`` of her LoKI experiment."""
    now = dt.datetime.now(dt.UTC)
    member = Experiment(EXPERIMENT, TITLE, "LoKI", now - dt.timedelta(days=1), now + dt.timedelta(days=3))
    plan = plan_session(Person("alice", "Alice", experiments=(member,)), SpawnRequest(EXPERIMENT),
                        load_catalog(DEMO_CATALOG), now)
    return {**plan.environment, "HOME": str(home), "USER": "alice", "LOGNAME": "alice", "JUPYTERHUB_USER": "alice",
            "JUPYTERHUB_SERVER_NAME": "loki", "JUPYTERHUB_BASE_URL": "/", "JUPYTERHUB_SERVICE_PREFIX": BASE_URL}


def bob_finds(top: Path, since: float, *markers: str) -> dict[str, list[str]]:
    """What bob (a distinct unix user) can see under ``top`` that holds one of ``markers``."""
    looked = subprocess.run(["sudo", "-u", "bob", sys.executable, "-c", BOB_LOOKS, str(top), str(since), *markers],
                            capture_output=True, text=True, timeout=120, cwd="/")
    assert looked.returncode == 0, looked.stderr
    return json.loads(looked.stdout)


def traversable(path: Path) -> None:
    """Let other users walk down to ``path`` (pytest makes its temporary directories 0700)."""
    for parent in (path, *path.parents):
        if parent == Path("/"):
            break
        if parent.stat().st_uid == os.geteuid():
            parent.chmod(parent.stat().st_mode | 0o011)


def test_isolation_bob_reads_nothing_of_alices_session_in_her_home(tmp_path: Path) -> None:
    from peers_slurm import check_usable_by, ensure_user

    for user in ("alice", "bob"):
        ensure_user(user)
    problem = check_usable_by("bob")
    if problem:
        pytest.fail(problem, pytrace=False)
    alice = ensure_user("alice")
    home, server_dir = tmp_path / "home" / "alice", tmp_path / "server"
    for directory, mode in ((home, 0o755), (server_dir, 0o700)):  # a site's default home; the server's own files
        directory.mkdir(parents=True)
        shutil.chown(directory, alice.pw_uid, alice.pw_gid)
        directory.chmod(mode)
    traversable(home)

    server = launch_jupyter_server(server_dir, root=home, env=instance_environ(home), user="alice")
    try:
        server.wait_until_up(90)
        headers = {"Authorization": f"token {server.token}"}
        import httpx

        assert httpx.get(server.url + "visa/api/session", headers=headers).json()["experiment"]["code"] == EXPERIMENT
        chosen = httpx.put(server.url + "visa/api/desktop/keyboard", headers=headers, json={"layout": "de"})
        assert chosen.status_code == 200, chosen.text
        records = httpx.get(server.url + "visa/api/apps/records", headers=headers).json()["records"]
        assert [r["experiment"] for r in records] == [EXPERIMENT]  # the session's provenance record exists

        # what the instance wrote is there (so that the check below can fail)
        written = {p.relative_to(home).as_posix() for p in home.rglob("*")}
        for expected in (".local/share/visa-hub/provenance", ".config/dask/instances/loki/visa-hub.yaml",
                         ".config/visa-hub/desktop.json", "dask-worker-logs"):
            assert expected in written, sorted(written)
        assert any(name.startswith(".visa/dask/instances/loki/session-") for name in written), sorted(written)

        assert bob_finds(home, 0, EXPERIMENT, TITLE, server.token, "PRIVATE KEY") == {"names": [], "files": []}
    finally:
        server.stop()
