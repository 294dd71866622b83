"""In a real browser: a guest's Desktop tab (noVNC, view only) through the two-way view-only filter.

The server's authorizer answers asynchronously and denies ``write`` on the desktop, as a sharing policy does for a
guest. JupyterLab's Desktop tab then opens the view-only websocket: noVNC negotiates its usual encodings (Tight,
ZRLE, cursor, ...), the filter follows every frame Xvnc sends, and the desktop is drawn and kept up to date.
(That a guest receives no clipboard is checked on the wire in tests/integration/test_desktop_server.py: noVNC in
view-only mode would hide it anyway.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import missing_peer

from jupyter_server_process import launch_jupyter_server

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TESTS = Path(__file__).resolve().parents[1]
DESKTOP = ".visa-desktop"
CANVAS = ".visa-desktop .visa-desktop-screen canvas"
PIXELS = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 0;
  for (let i = 0; i < data.length; i += 4) hash = (hash * 31 + data[i] + data[i + 1] * 7 + data[i + 2] * 13) | 0;
  return hash;
}"""
COLOURS = """canvas => {
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4 * 97) colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return colours.size;
}"""


def _desktop_env(runtime: Path) -> dict[str, str] | None:
    for log in runtime.glob("visa-desktop-*/desktop.log"):
        for line in log.read_text().splitlines():
            if "Xvnc on display :" in line:
                display = line.split("display :")[1].split(",")[0]
                return {**os.environ, "DISPLAY": f":{display}", "XAUTHORITY": str(log.parent / "Xauthority")}
    return None


def test_isolation_guest_desktop_tab_is_drawn_through_the_view_only_filter(page, tmp_path):
    for program in ("Xvnc", "openbox", "xterm", "xdotool"):
        if shutil.which(program) is None:
            missing_peer(f"{program} not installed (scripts/install-desktop.sh)")
    root, runtime = tmp_path / "home", tmp_path / "rt"
    root.mkdir()
    runtime.mkdir()
    server = launch_jupyter_server(
        tmp_path, root=root, env={"PYTHONPATH": str(TESTS)},
        args=[f"--VisaDesktop.runtime_dir={runtime}",
              "--ServerApp.authorizer_class=desktop_authorizers.AsyncViewOnlyAuthorizer"],
    ).wait_until_up(30)
    try:
        page.goto(f"{server.url}lab?token={server.token}")
        page.wait_for_selector(".jp-Launcher", timeout=60_000)
        page.locator(".jp-LauncherCard", has_text="Desktop").click()
        page.wait_for_selector(f"{DESKTOP}[data-state=connected]", timeout=30_000)
        assert page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Desktop (view only)").count() == 1

        # the desktop (panel, terminal, text) is drawn from the frames the filter let through
        deadline, colours = time.monotonic() + 30, 0
        while colours <= 20 and time.monotonic() < deadline:
            colours = page.eval_on_selector(CANVAS, COLOURS)
            time.sleep(0.25)
        assert colours > 20, f"the guest's canvas shows {colours} colours"
        page.screenshot(path=str(tmp_path / "guest-desktop.png"))

        # the owner works on the desktop (typed by xdotool on its display): the guest sees it change
        before = page.eval_on_selector(CANVAS, PIXELS)
        subprocess.run(["xdotool", "type", "--delay", "30", "echo the owner types, the guest watches"],
                       env=_desktop_env(runtime), check=True, timeout=30)
        deadline = time.monotonic() + 20
        while page.eval_on_selector(CANVAS, PIXELS) == before and time.monotonic() < deadline:
            time.sleep(0.25)
        assert page.eval_on_selector(CANVAS, PIXELS) != before, "the guest's desktop stopped updating"
        assert page.get_attribute(DESKTOP, "data-state") == "connected"
        assert "view-only connection closed" not in server.log.read_text()
    finally:
        server.stop()
