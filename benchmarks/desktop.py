"""Desktop benchmark: our Desktop tab versus jupyter-remote-desktop-proxy, on the same Xvnc, in one run.

    python benchmarks/desktop.py [--runs 3] [--steps 200] [--moves-per-s 50] [--together] [--json out.json]

One Jupyter Server runs visa-hub's extension and jupyter-remote-desktop-proxy (installed with pip into
``~/.cache/visa-hub/bench-jrdp`` on first use, outside the project's environment). Its websocket entry is
pointed at *our* Xvnc's socket, so both clients show the very same desktop through jupyter-server-proxy.
Debian's Chromium (Playwright, headless, software rendering) measures, for each path:

- first frame: from opening the Desktop (our Lab tab / jrdp's page) to a canvas that shows the desktop;
- fps: framebuffer updates the RFB client drew on its visible canvas per second while the terminal window
  moves along a fixed path at a fixed pace (--moves-per-s; one Xlib process, so the workload does not depend
  on the machine's load). Every update is a new picture of the desktop; both clients are counted by the same
  probe (see PROBE), which reads no pixels;
- presented_fps: animation frames per second in which the page showed at least one new update. This is
  bounded by the browser's compositor (software rendering costs grow steeply with the canvas size), so it is
  reported for both but is mostly a property of the machine; animation_frames_per_s and long_tasks_share
  tell whether a page itself was busy.

Fairness: both pages run in the same browser and their canvases (hence, through noVNC's resizeSession, the
remote screen) are made the same size (--natural-size leaves jrdp's page at the full viewport, where its
screen is larger than the Lab tab's). A page is measured only once it has settled (no long task for 1.5 s:
JupyterLab keeps booting plugins for a while after its first frame). By default each client is measured
alone (the other page closed), ours then jrdp in every run; --together connects both and counts them over
the very same moves at the same time, so machine load hits both alike, but they then compete for the CPU.

Goal: fps ratio (ours / jrdp) >= 1.0 and our first frame < 2 s. Needs scripts/install-desktop.sh and chromium.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

import httpx

JRDP = "jupyter-remote-desktop-proxy==3.0.1"
JRDP_DIR = Path.home() / ".cache" / "visa-hub" / "bench-jrdp"
CHROMIUM = os.environ.get("VISA_CHROMIUM", "/usr/bin/chromium")
OURS = ".visa-desktop .visa-desktop-screen canvas"
THEIRS = "canvas"
#: A canvas "shows the desktop" when a sample has this many colours (background, panel, icons, terminal).
MIN_COLOURS = 12
#: Both pages get at least this long after their first frame before the fps run (see settle()).
SETTLE_S = 3.0

SAMPLE = """sel => { const c = document.querySelector(sel); if (!c || !c.width) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const s = new Set();
  for (let i = 0; i < d.length; i += 4 * 101) s.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); return s.size; }"""

#: Installed in every page before its own scripts, so both clients are measured by the very same code. It hooks
#: the two canvas calls noVNC's Display makes (the same in jrdp's noVNC and in ours) and reads no pixels:
#: - a CopyRect rectangle is ``copyImage`` -> ``drawImage(backbuffer onto itself)``; moving a window makes the
#:   X server copy it, so Xvnc sends (at least) one CopyRect whenever the window stands somewhere new;
#: - ``flip`` copies the damaged part of the back buffer onto the visible canvas once per FramebufferUpdate
#:   that changed something -> ``updates``. An update that carries a CopyRect shows the window at a new place
#:   -> ``moves``: frames of the motion the client received and drew (fps). Counting plain updates instead
#:   would reward a server that splits one change over several FramebufferUpdates (seen here: more updates
#:   than moves for one client under load);
#: - ``frames``: animation frames in which the page showed at least one new window position (presented_fps);
#:   ``ticks``: all animation frames; ``busy_ms``: long tasks (> 50 ms) on the page's main thread;
#: - bytes/messages: what the RFB websocket delivered (noVNC reads it through ``onmessage``).
PROBE = """(() => {
  const probe = window.__visaProbe = {moves: 0, updates: 0, copies: 0, frames: 0, ticks: 0, busy_ms: 0, bytes: 0,
                                      messages: 0, counting: false, last_busy: 0};
  let copied = false, dirty = false;
  const drawImage = CanvasRenderingContext2D.prototype.drawImage;
  CanvasRenderingContext2D.prototype.drawImage = function (source, ...rest) {
    if (probe.counting && source instanceof HTMLCanvasElement) {
      if (source === this.canvas) {
        probe.copies++; copied = true;
      } else if (this.canvas.isConnected) {
        probe.updates++;
        if (copied) { probe.moves++; copied = false; dirty = true; }
      }
    }
    return drawImage.call(this, source, ...rest);
  };
  const tick = () => {
    if (probe.counting) { probe.ticks++; if (dirty) probe.frames++; }
    dirty = false; requestAnimationFrame(tick);
  };
  new PerformanceObserver(list => {
    for (const task of list.getEntries()) {
      probe.last_busy = Math.max(probe.last_busy, task.startTime + task.duration);
      if (probe.counting) probe.busy_ms += task.duration;
    }
  }).observe({type: 'longtask'});
  requestAnimationFrame(tick);
  const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage');
  Object.defineProperty(WebSocket.prototype, 'onmessage', {...onmessage, set(handler) {
    const rfb = /visa-desktop|desktop-websockify/.test(this.url) && typeof handler === 'function';
    onmessage.set.call(this, !rfb ? handler : function (event) {
      if (probe.counting) { probe.messages++; probe.bytes += event.data.byteLength ?? event.data.size ?? 0; }
      return handler.call(this, event);
    });
  }});
})();"""
START_COUNTING = """() => { const p = window.__visaProbe;
  Object.assign(p, {moves: 0, updates: 0, copies: 0, frames: 0, ticks: 0, busy_ms: 0, bytes: 0, messages: 0});
  p.counting = true; }"""
STOP_COUNTING = """sel => { const p = window.__visaProbe; p.counting = false; const c = document.querySelector(sel);
  return {...p, canvas: c ? `${c.width}x${c.height}` : null}; }"""
#: A page is settled once its main thread had no long task (> 50 ms) for this long.
IDLE = """() => performance.now() - window.__visaProbe.last_busy > 1500"""
CANVAS_SIZE = """sel => { const c = document.querySelector(sel); return c ? [c.width, c.height] : null; }"""
#: The window's path: the same moves, at the same pace, for both clients. One process talks Xlib (ctypes) and
#: waits for each move to reach the X server (XSync). The previous workload, one xdotool process per move,
#: cost a fork each and its pace followed the machine's load (21-47 moves/s seen); an ``xdotool -`` script
#: showed no intermediate positions at all.
MOVE_STEPS = 200
MOVE_PAUSE_S = 0.02
MOVER = """import ctypes, ctypes.util, sys, time
x = ctypes.CDLL(ctypes.util.find_library("X11"))
x.XOpenDisplay.restype = ctypes.c_void_p
x.XOpenDisplay.argtypes = [ctypes.c_char_p]
x.XMoveWindow.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_int, ctypes.c_int]
x.XSync.argtypes = [ctypes.c_void_p, ctypes.c_int]
x.XCloseDisplay.argtypes = [ctypes.c_void_p]
display = x.XOpenDisplay(None)
if not display:
    sys.exit("cannot open the X display")
window, steps, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
t0 = time.monotonic()
for i in range(steps):
    x.XMoveWindow(display, window, 40 + (i * 12) % 500, 60 + (i * 5) % 200)
    x.XSync(display, 0)
    time.sleep(max(0.0, t0 + (i + 1) * pause - time.monotonic()))
x.XCloseDisplay(display)
"""


def ensure_jrdp() -> Path:
    if not (JRDP_DIR / "jupyter_remote_desktop_proxy").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(JRDP_DIR), JRDP],
                       check=True)
    return JRDP_DIR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(work: Path, token: str, port: int) -> subprocess.Popen[bytes]:
    config = work / "config"
    config.mkdir()
    shared = work / "shared.sock"  # a symlink to our Xvnc's socket, made once our desktop runs
    (config / "jupyter_server_config.json").write_text(json.dumps({
        "ServerApp": {"jpserver_extensions": {"jupyter_remote_desktop_proxy": True}},
        "ServerProxy": {"servers": {"desktop-websockify": {
            "command": [], "unix_socket": str(shared), "raw_socket_proxy": True,
            "launcher_entry": {"enabled": False}}}},
    }))
    (work / "home").mkdir()
    (work / "rt").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "VISA_", "JUPYTER_"))}
    env |= {"JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(work / "runtime"),
            "PYTHONPATH": str(ensure_jrdp())}
    log = (work / "server.log").open("wb")
    return subprocess.Popen([
        sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", f"--ServerApp.token={token}", f"--ServerApp.root_dir={work / 'home'}",
        f"--VisaDesktop.runtime_dir={work / 'rt'}",
    ], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work / "home")


def wait_until(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(what)


def x_env(work: Path) -> dict[str, str]:
    (log,) = (work / "rt").glob("visa-desktop-*/desktop.log")
    line = next(line for line in log.read_text().splitlines() if "Xvnc on display :" in line)
    display = line.split("display :")[1].split(",")[0]
    return {**os.environ, "DISPLAY": f":{display}", "XAUTHORITY": str(log.parent / "Xauthority")}


def first_frame(page, selector: str, start) -> float:
    t0 = time.monotonic()
    start()
    wait_until(lambda: page.evaluate(SAMPLE, selector) >= MIN_COLOURS, 30, "first frame")
    return time.monotonic() - t0


def settle(page) -> None:
    """Give the page SETTLE_S, then wait (up to 30 s) until its main thread is idle: JupyterLab keeps booting
    plugins for a while after its first frame, more so on a loaded machine, and must not be measured then."""
    time.sleep(SETTLE_S)
    try:
        wait_until(lambda: page.evaluate(IDLE), 30, "an idle page")
    except TimeoutError:
        print("warning: the page did not become idle; measuring anyway", file=sys.stderr)


def match_canvas(page, selector: str, size: list[int]) -> None:
    """Resize the browser until the page's canvas (and so, through noVNC's resizeSession, the remote screen)
    is ``size``: both clients then draw exactly the same framebuffer."""
    for _ in range(3):
        current = wait_until(lambda: page.evaluate(CANVAS_SIZE, selector), 10, "the canvas")
        if current == size:
            return
        viewport = page.viewport_size
        page.set_viewport_size({"width": viewport["width"] + size[0] - current[0],
                                "height": viewport["height"] + size[1] - current[1]})
        try:
            wait_until(lambda: page.evaluate(CANVAS_SIZE, selector) == size, 5, "the resized canvas")
            return
        except TimeoutError:
            pass
    raise TimeoutError(f"could not give the canvas the size {size}")


def fps(pages: dict[str, tuple], env: dict[str, str], steps: int, pause: float = MOVE_PAUSE_S) -> dict[str, dict]:
    """Move the terminal along the fixed path once; count what each client received and drew meanwhile.

    ``pages`` maps a name to (page, canvas selector). Measured together, the clients see the same moves at the
    same moments under the same machine load (a CI run may share the machine), but compete for the CPU.
    """
    window = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "xterm"], env=env,
                            capture_output=True, text=True).stdout.split()[0]
    for page, _ in pages.values():
        page.evaluate(START_COUNTING)
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", MOVER, window, str(steps), str(pause)], env=env, check=True)
    time.sleep(0.2)  # the last updates in flight
    elapsed = time.monotonic() - t0
    results = {}
    for name, (page, selector) in pages.items():
        seen = page.evaluate(STOP_COUNTING, selector)
        results[name] = {
            "fps": seen["moves"] / elapsed, "presented_fps": seen["frames"] / elapsed,
            "updates_per_s": seen["updates"] / elapsed, "copyrects_per_s": seen["copies"] / elapsed,
            "kib_per_s": seen["bytes"] / 1024 / elapsed, "ws_messages_per_s": seen["messages"] / elapsed,
            "animation_frames_per_s": seen["ticks"] / elapsed, "long_tasks_share": seen["busy_ms"] / 1000 / elapsed,
            "workload_moves_per_s": steps / elapsed, "canvas": seen["canvas"]}
    return results


SIDES = ("ours", "jrdp")
VIEWPORT = {"width": 1280, "height": 900}
#: Height of jrdp's top bar above its canvas (match_canvas corrects it if it changes).
JRDP_BAR = 36


def record(into: dict[str, list], seen: dict) -> None:
    for key, value in seen.items():
        into.setdefault(key, []).append(value)


def run(runs: int, steps: int, pause: float = MOVE_PAUSE_S, natural: bool = False, apart: bool = True) -> dict:
    from playwright.sync_api import sync_playwright

    token, port = secrets.token_hex(16), free_port()
    base = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory(prefix="visa-bench-") as tmp:
        work = Path(tmp)
        server = start_server(work, token, port)
        try:
            wait_until(lambda: httpx.get(base + "api/status", headers={"Authorization": f"token {token}"})
                       .status_code == 200, 60, "the server")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                     args=["--no-sandbox", "--disable-gpu"])
                page = browser.new_page(viewport=VIEWPORT)
                page.add_init_script(PROBE)
                page.goto(f"{base}lab?token={token}&reset")
                page.wait_for_selector(".jp-Launcher", timeout=90_000)

                def open_ours():
                    page.locator(".jp-LauncherCard[data-category=Other]", has_text="Desktop").click()

                cold = first_frame(page, OURS, open_ours)
                (private,) = (work / "rt").glob("visa-desktop-*")
                (work / "shared.sock").symlink_to(private / "vnc.sock")
                env = x_env(work)
                wait_until(lambda: subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "xterm"],
                                                  env=env, capture_output=True).stdout, 20, "the terminal")
                results: dict[str, dict[str, list]] = {name: {"first_frame_s": [], "fps": []} for name in SIDES}
                for _ in range(runs):
                    # ours: a fresh Lab page (jrdp's page is closed), open a Desktop from the launcher
                    page.goto(f"{base}lab?token={token}&reset")
                    page.wait_for_selector(".jp-Launcher", timeout=90_000)
                    results["ours"]["first_frame_s"].append(first_frame(page, OURS, open_ours))
                    size = page.evaluate(CANVAS_SIZE, OURS)
                    if apart:
                        settle(page)
                        record(results["ours"], fps({"ours": (page, OURS)}, env, steps, pause)["ours"])
                        page.goto("about:blank")  # closes our connection
                    # jupyter-remote-desktop-proxy: its own page, on the same Xvnc, with a canvas the size of ours
                    theirs = browser.new_page(viewport=VIEWPORT if natural else
                                              {"width": size[0], "height": size[1] + JRDP_BAR})
                    theirs.add_init_script(PROBE)
                    results["jrdp"]["first_frame_s"].append(
                        first_frame(theirs, THEIRS, partial(theirs.goto, f"{base}desktop/?token={token}")))
                    if not natural:
                        match_canvas(theirs, THEIRS, size)
                    settle(theirs)
                    if apart:
                        record(results["jrdp"], fps({"jrdp": (theirs, THEIRS)}, env, steps, pause)["jrdp"])
                    else:
                        settle(page)
                        both = {"ours": (page, OURS), "jrdp": (theirs, THEIRS)}
                        for name, seen in fps(both, env, steps, pause).items():
                            record(results[name], seen)
                    theirs.close()
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)
    summary = {name: {k: round(statistics.median(v), 3) if isinstance(v[0], float) else v[-1]
                      for k, v in r.items()} for name, r in results.items()}
    summary["ours"]["cold_start_first_frame_s"] = round(cold, 3)
    summary["fps_ratio"] = round(summary["ours"]["fps"] / summary["jrdp"]["fps"], 3)
    summary["presented_fps_ratio"] = round(summary["ours"]["presented_fps"] / summary["jrdp"]["presented_fps"], 3)
    pairs = zip(results["ours"]["fps"], results["jrdp"]["fps"], strict=True)
    summary["fps_ratio_per_run"] = [round(ours / theirs, 3) for ours, theirs in pairs]
    summary["runs"] = results
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions (medians are reported)")
    parser.add_argument("--steps", type=int, default=MOVE_STEPS, help="window moves per fps run")
    parser.add_argument("--moves-per-s", type=float, default=1 / MOVE_PAUSE_S,
                        help="pace of the window's moves (the most frames per second either client can show)")
    parser.add_argument("--natural-size", action="store_true",
                        help="leave jrdp's page at the full viewport (its remote screen is then larger than ours, "
                             "and the browser's cost of showing a canvas grows with its size)")
    parser.add_argument("--together", action="store_true",
                        help="measure both clients at once, on the same moves under the same machine load (they then "
                             "compete for the CPU; default: each alone, one right after the other)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    summary = run(args.runs, args.steps, 1 / args.moves_per_s, natural=args.natural_size, apart=not args.together)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    ok = summary["fps_ratio"] >= 1.0 and summary["ours"]["first_frame_s"] < 2.0
    print("goal (fps ratio >= 1.0, first frame < 2 s):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
