"""In a real browser: the Desktop is a workstation.

Lab opens on the Desktop tab (``?visa-open=desktop``); the desktop shows who she is (her hub name in the terminal's
prompt and window title, although the local demo runs instances as another unix user); the keyboard layout picked
in the toolbar is the X server's layout and is remembered; a file uploaded from the browser lands in
her desktop folder and a file made on the desktop can be downloaded; the Applications menu and the launcher bar
start programs. Screenshots go to build/screenshots/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import missing_peer
from screenshots import save_screenshot

from hubpages import start_default_instance
from hubtest import processes_under, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

PROGRAMS = ("Xvnc", "openbox", "tint2", "jgmenu", "pcmanfm", "l3afpad", "xterm", "setxkbmap", "xdotool")
CANVAS = ".visa-desktop .visa-desktop-screen canvas"
PANEL_HEIGHT = 36


def _desktop_x_env(data_dir: Path) -> dict[str, str]:
    """DISPLAY and XAUTHORITY of the desktop running under ``data_dir`` (read from its Xvnc command line)."""
    for pid in processes_under(data_dir):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if Path(argv[0]).name == "Xvnc":
            socket = Path(argv[argv.index("-rfbunixpath") + 1])
            display = (socket.parent / "display").read_text().strip()
            return {**os.environ, "DISPLAY": display, "XAUTHORITY": argv[argv.index("-auth") + 1]}
    raise AssertionError("no Xvnc runs for this hub")


def _x(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=10)
    return done.stdout


def _windows(env: dict[str, str], *query: str) -> list[str]:
    """Names of the visible windows xdotool finds with ``query`` (e.g. ``--class``, ``l3afpad``)."""
    ids = _x(env, "xdotool", "search", "--onlyvisible", *query).split()
    return [_x(env, "xdotool", "getwindowname", wid).strip() for wid in ids]


def _canvas_box(page) -> dict:
    return page.locator(CANVAS).bounding_box()


def _click_terminal(page, env) -> None:
    """Click into the terminal window (found by its title) so that keys go there."""
    wid = _x(env, "xdotool", "search", "--onlyvisible", "--name", "^alice@").split()[0]
    geometry = _x(env, "xdotool", "getwindowgeometry", wid)
    x, y = map(int, re.search(r"Position: (\d+),(\d+)", geometry).groups())
    box = _canvas_box(page)
    page.mouse.click(box["x"] + x + 40, box["y"] + y + 40)


def _type_line(page, env, text: str) -> None:
    _click_terminal(page, env)
    page.keyboard.type(text, delay=15)
    page.keyboard.press("Enter")


def _wait_file(path: Path, timeout: float = 20) -> str:
    return wait_until(lambda: path.exists() and path.read_text(), timeout, f"{path.name} on the desktop")


def test_dashboard_desktop_workstation(start_hub, page, tmp_path):
    for program in PROGRAMS:
        if shutil.which(program) is None:
            missing_peer(f"{program} not installed (scripts/install-desktop.sh)")
    hub = start_hub()
    home = hub.data_dir / "homes" / "alice"
    start_default_instance(page, hub)  # this test uses her default instance at /user/alice/

    # the dashboard's "Open Desktop": Lab with the Desktop tab in front, connected
    page.goto(f"{hub.url}/user/alice/lab?visa-open=desktop")
    page.wait_for_selector(".visa-desktop[data-state=connected]", timeout=60_000)
    assert page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current").inner_text().strip() == "Desktop"
    screen = page.locator(".visa-desktop-screen")
    wait_until(lambda: abs(_canvas_box(page)["height"] - screen.bounding_box()["height"]) <= 2, 30,
               "the remote screen to fit the tab")
    env = _desktop_x_env(hub.data_dir)

    # she is herself there: her hub name in the terminal's title and prompt (the demo runs as another unix user)
    titles = wait_until(lambda: _windows(env, "--name", "^alice@"), 30, "her terminal")
    assert re.fullmatch(r"alice@[^:]+: ~", titles[0]), titles
    _type_line(page, env, "printf '%s' \"${PS1@P}\" > prompt.txt")
    prompt = _wait_file(home / "prompt.txt")
    assert re.match(r"alice@[^:]+:~[#$] $", prompt), prompt

    # keyboard layout: the toolbar's choice becomes the X server's layout and is remembered for her next desktop
    picker = page.locator(".visa-desktop-keyboard select")
    wait_until(lambda: picker.locator("option[value=de]").count() == 1, 20, "the keyboard layouts")
    assert picker.input_value() == "us"
    picker.select_option("de")
    page.wait_for_selector(".visa-desktop-keyboard[data-layout=de]")
    assert re.search(r"^layout:\s+de$", _x(env, "setxkbmap", "-query"), re.M)
    saved = json.loads((home / ".config" / "visa-hub" / "desktop.json").read_text())
    assert saved["keyboard_layout"] == "de"
    picker.select_option("us")
    page.wait_for_selector(".visa-desktop-keyboard[data-layout=us]")
    assert re.search(r"^layout:\s+us$", _x(env, "setxkbmap", "-query"), re.M)
    # typing follows the browser's keyboard whatever the layout (noVNC sends key symbols)
    _type_line(page, env, "echo typed-yz > key.txt")
    assert _wait_file(home / "key.txt") == "typed-yz\n"

    # upload from the browser: into ~/Desktop, where the desktop shows it and its programs read it
    with page.expect_file_chooser() as chooser:
        page.click(".visa-desktop-upload")
    chooser.value.set_files(files=[{"name": "from-browser.txt", "mimeType": "text/plain",
                                    "buffer": b"uploaded from the browser\n"}])
    page.locator(".Toastify__toast", has_text="from-browser.txt").wait_for()
    assert (home / "Desktop" / "from-browser.txt").read_text() == "uploaded from the browser\n"
    _type_line(page, env, "cp ~/Desktop/from-browser.txt seen-on-desktop.txt")
    assert _wait_file(home / "seen-on-desktop.txt") == "uploaded from the browser\n"

    # download to the browser: a file made on the desktop, picked from the desktop folder
    _type_line(page, env, "echo made on the desktop > ~/Desktop/made-on-desktop.txt")
    _wait_file(home / "Desktop" / "made-on-desktop.txt")
    page.click(".visa-desktop-download")
    link = page.locator(".visa-desktop-download-link", has_text="made-on-desktop.txt")
    with page.expect_download() as download:
        link.click()
    assert Path(download.value.path()).read_text() == "made on the desktop\n"
    assert download.value.suggested_filename == "made-on-desktop.txt"
    page.keyboard.press("Escape")
    time.sleep(1)  # the desktop icons pick up the new files
    save_screenshot(page, "desktop")

    # the Applications menu (bottom left) starts the text editor; the launcher bar the file manager
    box = _canvas_box(page)
    page.mouse.click(box["x"] + 40, box["y"] + box["height"] - PANEL_HEIGHT / 2)
    wait_until(lambda: _windows(env, "--class", "jgmenu"), 20, "the application menu")
    save_screenshot(page, "desktop-menu")
    page.keyboard.type("editor", delay=30)
    page.keyboard.press("Enter")
    wait_until(lambda: _windows(env, "--class", "l3afpad"), 20, "the text editor")
    file_managers = len(_windows(env, "--class", "pcmanfm"))
    page.mouse.click(box["x"] + 163, box["y"] + box["height"] - PANEL_HEIGHT / 2)  # first launcher: Files
    wait_until(lambda: len(_windows(env, "--class", "pcmanfm")) > file_managers, 20, "the file manager")
    time.sleep(1)
    save_screenshot(page, "desktop-applications")
