"""Ctrl-C on the demo stops its instances: nothing of the demo keeps running after the hub is gone.

The hub is started the way ``scripts/demo.sh`` starts it (``scripts/demo-hub.sh``, with the demo's own default
for ``VISA_KEEP_SERVERS``), alice starts two instances and opens a desktop in one, then the terminal's Ctrl-C
(SIGINT to the hub's process group) stops it all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import websocket
from conftest import missing_peer

from hubtest import REPO, HubProcess, UserSession, process_environ, processes_under, wait_until

pytestmark = pytest.mark.integration

DEMO_HUB = REPO / "scripts" / "demo-hub.sh"


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def demo_processes(hub: HubProcess) -> list[str]:
    """Processes the demo started: instances, desktops (in its data dir, or talking to its hub's API), proxy."""
    api, proxy = f"127.0.0.1:{hub.api_port}", f"--api-port {hub.proxy_api_port} "
    found = set(processes_under(hub.data_dir))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        pid = int(proc.name)
        if api in process_environ(pid).get("JUPYTERHUB_API_URL", "") or proxy in _command(pid) + " ":
            found.add(pid)
    return [f"{pid}: {command}" for pid in sorted(found) if (command := _command(pid))]


def start_demo_hub(hub: HubProcess) -> subprocess.Popen:
    env = {k: v for k, v in hub.env().items() if k != "VISA_KEEP_SERVERS"}  # the demo's own default
    env.update({"VISA_DATA_DIR": str(hub.data_dir)})
    hub.data_dir.mkdir(parents=True, exist_ok=True)
    log = hub.log_file.open("ab")
    # a terminal's Ctrl-C goes to its foreground process group: the script (exec'd into jupyterhub) and its proxy
    return subprocess.Popen([str(DEMO_HUB)], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def test_ctrl_c_on_the_demo_stops_its_instances(tmp_path):
    if not (REPO / ".venv" / "bin" / "jupyterhub").exists():
        missing_peer("the demo's virtualenv is missing (scripts/install.sh)")
    if shutil.which("Xvnc") is None:
        missing_peer("Xvnc not installed (scripts/install-desktop.sh)")
    hub = HubProcess(tmp_path / "data")
    proc = start_demo_hub(hub)
    alice = UserSession(hub, "alice")
    try:
        wait_until(lambda: proc.poll() is None and
                   alice.http.get("/hub/api/", timeout=2).status_code == 200, 60, "the demo hub")
        assert "Ctrl-C stops the hub and its instances" in hub.log_text()
        alice.login()
        for name, code in (("loki-2026-042", "LOKI-2026-042"), ("odin-2026-007", "ODIN-2026-007")):
            started = alice.http.post(f"/hub/api/users/alice/servers/{name}", json={"experiment": code},
                                      headers=alice._hub_xsrf())
            assert started.status_code in (201, 202), started.text

        def both_ready():
            servers = alice.http.get("/hub/api/users/alice", headers=alice._hub_xsrf()).json()["servers"]
            return len(servers) == 2 and all(s["ready"] for s in servers.values())

        wait_until(both_ready, 90, "alice's two instances")
        assert alice.http.get("/user/alice/loki-2026-042/lab").status_code == 200  # her cookie for the instance
        cookies = "; ".join(f"{c.name}={c.value}" for c in alice.http.cookies.jar)
        desktop = websocket.create_connection(
            hub.url.replace("http://", "ws://") + "/user/alice/loki-2026-042/visa-desktop/",
            header=[f"Cookie: {cookies}"], origin=hub.url, subprotocols=["binary"], timeout=30)
        assert desktop.recv().startswith(b"RFB 003.")  # Xvnc and its session run
        desktop.close()
        running = demo_processes(hub)
        assert any("Xvnc" in p for p in running) and sum("jupyterhub-singleuser" in p for p in running) == 2, running
        assert any("configurable-http-proxy" in p for p in running), running

        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        proc.wait(60)
        try:
            wait_until(lambda: not demo_processes(hub), 30, "the demo's processes to end")
        except TimeoutError:
            pytest.fail("Ctrl-C left these processes of the demo running:\n" + "\n".join(demo_processes(hub)))
    finally:
        alice.close()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        hub.kill_instances()
        for line in demo_processes(hub):  # whatever a failed run left (the proxy, desktops in /tmp)
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(line.split(":")[0]), signal.SIGKILL)
