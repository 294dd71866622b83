"""The Desktop tab's workstation API in a real Jupyter Server with a real desktop (Xvnc, openbox, tint2).

An application directory configured for the instance feeds the applications API (and so the Lab launcher);
starting one runs it on the desktop's display; the keyboard API switches the X server's layout and refuses
names XKB does not know; the folder API tells where ``~/Desktop`` is for uploads and downloads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from conftest import missing_peer

from hubtest import wait_until
from jupyter_server_process import JupyterServer, launch_jupyter_server

pytestmark = pytest.mark.integration

API = "visa/api/desktop/"


def _call(server: JupyterServer, method: str, path: str, body: dict | None = None) -> httpx.Response:
    return httpx.request(method, server.url + API + path, json=body, timeout=20,
                         headers={"Authorization": f"token {server.token}"})


def _display_env(runtime: Path) -> dict[str, str]:
    private = next(runtime.glob("visa-desktop-*"))
    display = wait_until(lambda: (private / "display").exists() and (private / "display").read_text().strip(),
                         30, "the desktop's display")
    return {**os.environ, "DISPLAY": display, "XAUTHORITY": str(private / "Xauthority")}


def test_dashboard_desktop_api_applications_keyboard_folder(tmp_path: Path) -> None:
    for program in ("Xvnc", "setxkbmap"):
        if shutil.which(program) is None:
            missing_peer(f"{program} not installed (scripts/install-desktop.sh)")
    home, runtime, apps = tmp_path / "home", tmp_path / "rt", tmp_path / "apps"
    for directory in (home, runtime, apps):
        directory.mkdir()
    marker = home / "started-from-lab.txt"
    (apps / "beamline-sim.desktop").write_text(
        "[Desktop Entry]\nName=Beamline simulation\nComment=Runs on the desktop\n"
        f"Exec=sh -c 'echo \"$DISPLAY\" > {marker}'\nX-VisaHub-Lab=true\nX-VisaHub-Section=Simulation\n")
    own = home / ".local/share/visa-hub/applications"  # her own entries, e.g. written by an app installer
    own.mkdir(parents=True)
    (own / "notes.desktop").write_text("[Desktop Entry]\nName=My notes\nExec=l3afpad notes.txt\n")
    server = launch_jupyter_server(tmp_path, root=home, env={"HOME": str(home)}, args=[
        f"--VisaDesktop.runtime_dir={runtime}", f"--VisaDesktop.application_dirs={apps}"])
    try:
        server.wait_until_up(60)

        # the configured directory's entry is listed (for the Lab launcher), before the desktop runs
        listed = _call(server, "GET", "applications").json()["applications"]
        sim = next(a for a in listed if a["id"] == "beamline-sim")
        assert (sim["name"], sim["lab"], sim["section"]) == ("Beamline simulation", True, "Simulation")
        assert {"visa-terminal", "visa-files", "visa-editor", "notes"} <= {a["id"] for a in listed}
        refused = _call(server, "POST", "applications/beamline-sim")
        assert refused.status_code == 409 and "open the Desktop tab" in refused.json()["message"]
        assert _call(server, "POST", "applications/no-such-app").status_code == 404

        # her desktop folder, for uploads and downloads through the contents API
        assert _call(server, "GET", "folder").json() == {"path": "Desktop", "message": None}

        # a connection starts the desktop (as the Desktop tab's does)
        import websocket

        ws = websocket.create_connection(server.ws_url("visa-desktop/"), subprotocols=["binary"], timeout=30,
                                         header=[f"Authorization: token {server.token}"])
        try:
            assert ws.recv()[:4] == b"RFB "
            env = _display_env(runtime)

            started = _call(server, "POST", "applications/beamline-sim")
            assert started.status_code == 202, started.text
            assert wait_until(lambda: marker.exists() and marker.read_text().strip(), 20, "the application") \
                == env["DISPLAY"]

            keyboard = _call(server, "GET", "keyboard").json()
            assert keyboard["running"] and keyboard["layout"] == "us"
            assert {"us", "de", "fr"} <= {layout["name"] for layout in keyboard["layouts"]}
            assert _call(server, "PUT", "keyboard", {"layout": "fr"}).json() == {"layout": "fr", "applied": True}
            query = subprocess.run(["setxkbmap", "-query"], env=env, capture_output=True, text=True).stdout
            assert "layout:     fr" in query
            assert _call(server, "GET", "keyboard").json()["layout"] == "fr"
            bad = _call(server, "PUT", "keyboard", {"layout": "-display :0"})
            assert bad.status_code == 400 and "Unknown keyboard layout" in bad.json()["message"]
            assert json.loads((home / ".config/visa-hub/desktop.json").read_text())["keyboard_layout"] == "fr"
            assert (home / "Desktop").is_dir()
        finally:
            ws.close()
    finally:
        server.stop()
        time.sleep(0.5)
