"""Inactivity stops, with real instances: nothing happens → a warning, then the stop; Lab use or desktop input
after the warning → the warning goes away and the instance keeps running.

Instances live 10 minutes here, but stop after 60 s without activity, with a warning 30 s before. Activity is
what JupyterHub knows (proxy traffic, the server's own reports) plus desktop input, which the instance's server
extension reads from the X server (here typed with xdotool straight into the desktop: no web traffic at all).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import websocket
from conftest import missing_peer

from hubtest import UserSession, wait_until
from lifetime_support import EXPERIMENT, ServiceClient, lifetime_hub, login, smtp  # noqa: F401

pytestmark = pytest.mark.integration

IDLE_LIFETIMES = {
    "users": {"default": "10m", "max": "10m", "inactivity": "60s"},
    "staff": {"default": "10m", "max": "10m", "inactivity": "60s"},
    "warnings": ["1m"],
    "inactivity_warning": "30s",
}


def _start(hub, user: str) -> UserSession:
    session = login(hub, user)
    response = session.submit_spawn_form(experiment=EXPERIMENT, flavour="small")
    assert response.status_code == 200, response.text[:1000]
    session.wait_ready()
    return session


def _desktop_env(home: Path) -> dict[str, str]:
    """DISPLAY and XAUTHORITY of the desktop whose session runs in ``home``."""
    for spec_path in Path("/tmp").glob("visa-desktop-*/launch.json"):
        try:
            spec = json.loads(spec_path.read_text())
        except (OSError, ValueError):
            continue
        log = Path(spec["log"])
        if spec.get("cwd") != str(home) or not log.exists():
            continue
        for line in log.read_text().splitlines():
            if "Xvnc on display :" in line:
                display = line.split("display :")[1].split(",")[0]
                return {**os.environ, "DISPLAY": f":{display}", "XAUTHORITY": spec["xauthority"]}
    return {}


def _inactivity_warning(service: ServiceClient, user: str) -> dict | None:
    return next((w for w in service.instance(user)["warnings"] if w["kind"] == "inactivity"), None)


def test_lifetime_inactivity_stop_warned_first_and_activity_keeps_instances(lifetime_hub, smtp):  # noqa: F811
    for tool in ("Xvnc", "xdotool"):
        if shutil.which(tool) is None:
            missing_peer(f"{tool} not installed (scripts/install-desktop.sh)")
    hub = lifetime_hub(IDLE_LIFETIMES)
    bob, alice, carl = _start(hub, "bob"), _start(hub, "alice"), _start(hub, "carl")

    # carl's desktop runs (a first connection starts it); afterwards no web traffic reaches his instance
    assert carl.lab().status_code == 200
    cookies = "Cookie: " + "; ".join(f"{c.name}={c.value}" for c in carl.http.cookies.jar)
    ws = websocket.create_connection(hub.url.replace("http://", "ws://") + "/user/carl/visa-desktop/",
                                     header=[cookies], origin=hub.url, subprotocols=["binary"], timeout=30)
    assert ws.recv().startswith(b"RFB 003.")
    ws.close()
    env = wait_until(lambda: _desktop_env(hub.data_dir / "homes" / "carl"), 30, "carl's desktop")

    services = {name: ServiceClient(s) for name, s in (("bob", bob), ("alice", alice), ("carl", carl))}
    warnings = {}
    for name, service in services.items():
        service.wait_instance(name)
        warnings[name] = wait_until(lambda s=service, n=name: _inactivity_warning(s, n), 90,
                                    f"{name}'s inactivity warning")
    mails = wait_until(lambda: smtp.received("bob@example.org", "is idle"), 30, "bob's inactivity e-mail")
    assert "stops" in mails[0].get_content()

    # alice comes back in Lab, carl types on his desktop: their warnings go away
    assert alice.lab().status_code == 200
    assert alice.put_file("still-here.txt", "yes").status_code in (200, 201)
    subprocess.run(["xdotool", "mousemove", "200", "200", "type", "hello"], env=env, check=True, timeout=30)
    for name in ("alice", "carl"):
        wait_until(lambda n=name: _inactivity_warning(services[n], n) is None, 30,
                   f"{name}'s inactivity warning to go away")

    # bob did nothing: stopped, after the warning; alice and carl outlive their old deadlines
    wait_until(lambda: not bob.server_model(), 90, "bob's idle instance to stop")
    wait_until(lambda: services["bob"].get("api/instances")["instances"] == [], 15,
               "the service to see bob's instance ended")
    stopped = wait_until(lambda: smtp.received("bob@example.org", "has stopped"), 30, "bob's 'stopped' e-mail")
    assert "nobody used it" in stopped[0].get_content()
    latest = max(dt_deadline(warnings["alice"]), dt_deadline(warnings["carl"]))
    while time.time() < latest + 10:
        time.sleep(1)
    assert alice.server_model().get("ready") and carl.server_model().get("ready")
    assert len(smtp.received("bob@example.org", "is idle")) == 1, "warned once"


def dt_deadline(warning: dict) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(warning["deadline"]).timestamp()
