"""Desktop benchmark: our Desktop tab versus jupyter-remote-desktop-proxy, on the same Xvnc, in one run.

    python benchmarks/desktop.py [--runs 5] [--seconds 4] [--json out.json]

One Jupyter Server runs visa-hub's extension and jupyter-remote-desktop-proxy (installed with pip into
``~/.cache/visa-hub/bench-jrdp`` on first use, outside the project's environment). Its websocket entry is
pointed at *our* Xvnc's socket, so both clients show the very same desktop through jupyter-server-proxy.
Debian's Chromium (Playwright) measures, for each path:

- first frame: from opening the Desktop (our Lab tab / jrdp's page) to a canvas that shows the desktop;
- fps: canvas updates per second seen in the browser while xdotool moves the terminal window across the screen.

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
import threading
import time
from pathlib import Path

import httpx

JRDP = "jupyter-remote-desktop-proxy==3.0.1"
JRDP_DIR = Path.home() / ".cache" / "visa-hub" / "bench-jrdp"
CHROMIUM = os.environ.get("VISA_CHROMIUM", "/usr/bin/chromium")
OURS = ".visa-desktop .visa-desktop-screen canvas"
THEIRS = "canvas"
#: A canvas "shows the desktop" when a sample has this many colours (background, panel, icons, terminal).
MIN_COLOURS = 12
#: Both pages get this long after their first frame before the fps run (JupyterLab finishes booting meanwhile).
SETTLE_S = 3.0

SAMPLE = """sel => { const c = document.querySelector(sel); if (!c || !c.width) return 0;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; const s = new Set();
  for (let i = 0; i < d.length; i += 4 * 101) s.add((d[i] << 16) | (d[i + 1] << 8) | d[i + 2]); return s.size; }"""
COUNT_FRAMES = """sel => { window.__frames = 0; window.__counting = true; let last = null;
  const tick = () => { const c = document.querySelector(sel);
    if (c && c.width) { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let h = 0;
      for (let i = 0; i < d.length; i += 4 * 53) h = (h * 31 + d[i] + d[i + 1] * 7) | 0;
      if (h !== last) { window.__frames++; last = h; } }
    if (window.__counting) requestAnimationFrame(tick); };
  requestAnimationFrame(tick); }"""


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


def move_window(env: dict[str, str], seconds: float, stop: threading.Event) -> None:
    window = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "xterm"], env=env,
                            capture_output=True, text=True).stdout.split()[0]
    t0, i = time.monotonic(), 0
    while time.monotonic() - t0 < seconds and not stop.is_set():
        x = 40 + (i * 12) % 500
        subprocess.run(["xdotool", "windowmove", window, str(x), str(60 + (i * 5) % 200)], env=env)
        i += 1
        time.sleep(0.01)


def fps(page, selector: str, env: dict[str, str], seconds: float) -> float:
    page.evaluate(COUNT_FRAMES, selector)
    stop = threading.Event()
    t0 = time.monotonic()
    move_window(env, seconds, stop)
    elapsed = time.monotonic() - t0
    frames = page.evaluate("() => { window.__counting = false; return window.__frames; }")
    return frames / elapsed


def run(runs: int, seconds: float) -> dict:
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
                page = browser.new_page(viewport={"width": 1280, "height": 900})
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
                results = {"ours": {"first_frame_s": [], "fps": []}, "jrdp": {"first_frame_s": [], "fps": []}}
                for _ in range(runs):
                    # ours: close the tab, open a new Desktop from the launcher
                    page.goto(f"{base}lab?token={token}&reset")
                    page.wait_for_selector(".jp-Launcher", timeout=90_000)
                    results["ours"]["first_frame_s"].append(first_frame(page, OURS, open_ours))
                    time.sleep(SETTLE_S)
                    results["ours"]["fps"].append(fps(page, OURS, env, seconds))
                    # jupyter-remote-desktop-proxy: its own page, same viewport, same Xvnc
                    results["jrdp"]["first_frame_s"].append(
                        first_frame(page, THEIRS, lambda: page.goto(f"{base}desktop/?token={token}")))
                    time.sleep(SETTLE_S)
                    results["jrdp"]["fps"].append(fps(page, THEIRS, env, seconds))
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=20)
    summary = {name: {k: round(statistics.median(v), 3) for k, v in r.items()} for name, r in results.items()}
    summary["ours"]["cold_start_first_frame_s"] = round(cold, 3)
    summary["fps_ratio"] = round(summary["ours"]["fps"] / summary["jrdp"]["fps"], 3)
    summary["runs"] = results
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="repetitions (medians are reported)")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long the window moves per fps run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    summary = run(args.runs, args.seconds)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    ok = summary["fps_ratio"] >= 1.0 and summary["ours"]["first_frame_s"] < 2.0
    print("goal (fps ratio >= 1.0, first frame < 2 s):", "met" if ok else "NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
