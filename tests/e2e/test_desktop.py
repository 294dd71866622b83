"""In a real browser: the Desktop tab inside JupyterLab shows a real desktop the user can work in.

Log in, start an instance, open the Desktop from the launcher, see a desktop (not a blank canvas), type a
command into its terminal and find the file in Lab's file browser, resize the window and see the remote screen
follow, and move text between the desktop's clipboard and the browser.
"""

from __future__ import annotations

import shutil
import time

import pytest
from conftest import missing_peer

from hubpages import start_default_instance

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CANVAS = ".visa-desktop .visa-desktop-screen canvas"

#: Distinct colours and the share of near-white (terminal background) pixels in a sample of the canvas.
CANVAS_STATS = """canvas => {
  const ctx = canvas.getContext('2d');
  const {width, height} = canvas;
  const data = ctx.getImageData(0, 0, width, height).data;
  const colours = new Set();
  let white = 0, n = 0;
  for (let i = 0; i < data.length; i += 4 * 97) {
    colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
    if (data[i] > 245 && data[i + 1] > 245 && data[i + 2] > 245) white++;
    n++;
  }
  return {width, height, colours: colours.size, white: white / n};
}"""


def _log_in_and_open_lab(page, hub) -> None:
    start_default_instance(page, hub)
    page.wait_for_selector(".jp-Launcher", timeout=60_000)


def _wait_canvas(page, predicate, what: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    stats = None
    while time.monotonic() < deadline:
        stats = page.eval_on_selector(CANVAS, CANVAS_STATS)
        if predicate(stats):
            return stats
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}; canvas: {stats}")


def _type_in_terminal(page, command: str) -> None:
    """Click into the terminal window (the white area of the desktop) and type a command line."""
    box = page.locator(CANVAS).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.keyboard.type(command, delay=15)
    page.keyboard.press("Enter")


def _file_in_browser(page, name: str, timeout: float = 30) -> None:
    """Wait for ``name`` in Lab's file browser, refreshing it as a user would."""
    deadline = time.monotonic() + timeout
    item = page.locator(".jp-DirListing-item", has_text=name)
    while time.monotonic() < deadline:
        if item.count():
            return
        page.locator(".jp-FileBrowser [data-command='filebrowser:refresh']").first.click()
        time.sleep(1)
    raise AssertionError(f"{name} did not appear in the file browser")


def test_desktop_tab_in_lab(start_hub, page, tmp_path):
    for program in ("Xvnc", "openbox", "xterm", "xclip"):
        if shutil.which(program) is None:
            missing_peer(f"{program} not installed (scripts/install-desktop.sh)")
    hub = start_hub()
    _log_in_and_open_lab(page, hub)

    # the launcher offers the Desktop; it opens as a tab in Lab's main area and connects
    started = time.monotonic()
    page.locator(".jp-LauncherCard", has_text="Desktop").click()
    page.wait_for_selector(".visa-desktop[data-state=connected]", timeout=30_000)
    assert page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Desktop").count() == 1

    # a real desktop: many colours (panel, icons, text), and its terminal window (white) is up
    stats = _wait_canvas(page, lambda s: s["colours"] > 20 and s["white"] > 0.05, "the desktop and its terminal")
    first_frame = time.monotonic() - started
    page.screenshot(path=str(tmp_path / "desktop.png"))
    assert first_frame < 20, f"the desktop took {first_frame:.1f} s"

    # the desktop shares the home: a file written in its terminal shows up in Lab's file browser
    _type_in_terminal(page, "echo written on the desktop > from-desktop.txt")
    _file_in_browser(page, "from-desktop.txt")
    contents = page.request.get(f"{hub.url}/user/alice/api/contents/from-desktop.txt").json()
    assert contents["content"].strip() == "written on the desktop"

    # resizing the browser window resizes the remote screen to the tab
    before = stats["width"], stats["height"]
    page.set_viewport_size({"width": 1000, "height": 700})
    after = _wait_canvas(page, lambda s: s["width"] < before[0] and s["height"] < before[1], "the remote resize")
    screen = page.eval_on_selector(".visa-desktop-screen", "e => [e.clientWidth, e.clientHeight]")
    assert abs(after["width"] - screen[0]) <= 2 and abs(after["height"] - screen[1]) <= 2, (after, screen)

    # clipboard, desktop → browser: copy on the desktop, read it in the tab's clipboard bar
    _type_in_terminal(page, "printf clip-4711 | xclip -selection clipboard")
    page.click(".visa-desktop-clipboard-toggle")
    clipboard = page.locator(".visa-desktop-clipboard textarea")
    clipboard.wait_for()
    deadline = time.monotonic() + 15
    while clipboard.input_value() != "clip-4711" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert clipboard.input_value() == "clip-4711"

    # clipboard, browser → desktop: send text, paste it on the desktop into a file
    clipboard.fill("from-the-browser-42")
    page.click(".visa-desktop-clipboard-send")
    _type_in_terminal(page, "xclip -o -selection clipboard > pasted.txt")
    _file_in_browser(page, "pasted.txt")
    pasted = page.request.get(f"{hub.url}/user/alice/api/contents/pasted.txt").json()
    assert pasted["content"] == "from-the-browser-42"

    # Reconnect in the toolbar connects again; a second Desktop tab (new launcher) shows the same desktop
    page.click(".jp-MainAreaWidget .visa-desktop-reconnect")
    page.wait_for_selector(".visa-desktop[data-state=connected]", timeout=30_000)
    page.click("#jp-main-dock-panel .lm-TabBar-addButton")
    page.locator(".jp-LauncherCard", has_text="Desktop").click()
    page.wait_for_function(
        "document.querySelectorAll('.visa-desktop[data-state=connected]').length === 2", timeout=30_000)
    page.screenshot(path=str(tmp_path / "desktop-second-tab.png"))
