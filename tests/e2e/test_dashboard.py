"""The instance dashboard in a real browser: several instances per person, their cards, progress, quota, stop.

Screenshots of every page a user meets go to build/screenshots/ (login, dashboard, form, progress, Lab,
desktop, error page); axe-core checks the hub's pages for serious and critical accessibility problems.
To see a transient state (a start in progress) for as long as the test needs, the instance's real JupyterLab
process is paused (SIGSTOP) right after it starts and resumed (SIGCONT) afterwards.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time

import pytest
from screenshots import save_screenshot

from hubpages import log_in, open_new_instance_form
from hubtest import instance_processes, wait_until
from pagecheck import axe_violations

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

LAB = re.compile(r".*/user/alice/(?P<name>[a-z0-9-]+)/lab.*")
TIME_LEFT = re.compile(r"^(2[34]) h \d+ min left$")


class Paused:
    """Pause an instance's JupyterLab process as soon as it exists; resume it on ``resume()`` (or at exit)."""

    def __init__(self, hub, server_name: str):
        self.hub, self.server_name = hub, server_name
        self.pids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Paused:
        self._thread.start()
        return self

    def _watch(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            pids = instance_processes(self.hub.data_dir, self.server_name)
            if pids:
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGSTOP)
                self.pids = pids
                return
            time.sleep(0.02)

    def wait_paused(self, timeout: float = 60) -> None:
        wait_until(lambda: self.pids, timeout, f"the JupyterLab process of {self.server_name}")

    def resume(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.pids = []

    def __exit__(self, *exc) -> None:
        self.resume()


def card(page, server_name: str):
    return page.locator(f"li.visa-card[data-server='{server_name}']")


def assert_accessible(page, what: str) -> None:
    problems = axe_violations(page)
    assert not problems, f"axe-core on the {what}:\n" + "\n".join(problems)


def test_dashboard_two_instances_quota_stop_and_pages(start_hub, browser):
    hub = start_hub()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        _walk_through(hub, context, page)
    finally:
        save_screenshot(page, "dashboard-test-last-page")
        context.close()


def _walk_through(hub, context, page) -> None:
    # -- login: visa-hub's page, no JupyterHub logo, no warning banner
    page.goto(f"{hub.url}/hub/login")
    assert page.title() == "Log in · visa-hub"
    assert page.locator(".announcement").count() == 0
    assert page.get_attribute("#jupyterhub-logo img", "alt") == "visa-hub: your instances"
    logo = page.request.get(f"{hub.url}/hub/logo")
    assert logo.headers["content-type"].startswith("image/svg+xml") and b"visa-hub" in logo.body()
    save_screenshot(page, "login")
    assert_accessible(page, "login page")

    # -- someone the service refuses gets the reason on the login page, readable
    page.fill("#username_input", "erik")
    page.fill("#password_input", "visa-demo")
    page.click("#login_submit")
    assert "not a member of any experiment in the User Office" in page.locator(".login_error[role=alert]").inner_text()
    assert_accessible(page, "login page with a refusal")

    # -- she lands on her dashboard: no instance yet, her two open experiments offered
    log_in(page, hub, "alice")
    page.wait_for_selector("#visa-empty:not([hidden])")
    assert "You have no instance yet" in page.inner_text("#visa-empty")
    assert page.locator("#visa-empty-experiments a").all_inner_texts()[0].startswith("LOKI-2026-042")
    assert "0 of 2 instances" in page.inner_text("#visa-quota-line")
    save_screenshot(page, "dashboard-empty")
    assert_accessible(page, "empty dashboard")

    # -- the form: LoKI's default flavour chosen, the instance named after the experiment
    open_new_instance_form(page, hub)
    assert page.input_value("#flavour") == "medium"
    assert page.inner_text("#instance-name") == "loki-2026-042"
    save_screenshot(page, "form")
    assert_accessible(page, "spawn form")

    # -- start LOKI; while its JupyterLab is held, the progress page shows the named steps and the log
    with Paused(hub, "loki-2026-042") as paused:
        page.click("#spawn_form button[type=submit]")
        page.wait_for_selector("#visa-progress")
        paused.wait_paused()
        page.wait_for_function("document.querySelectorAll('#progress-log li').length >= 4")
        log = page.inner_text("#progress-log")
        assert "Experiment LOKI-2026-042 on LoKI: medium (4 CPU, 16 GB)" in log
        assert "Starting JupyterLab for experiment LOKI-2026-042" in log
        assert page.locator("#progress-log").is_visible()  # shown, not folded away
        steps = page.locator("#visa-steps li")
        assert steps.evaluate_all("items => items.map(i => i.dataset.status)")[:2] == ["done", "done"]
        assert page.get_attribute("#visa-steps li[data-step=start]", "data-status") == "current"
        save_screenshot(page, "progress")
        assert_accessible(page, "progress page")
    page.wait_for_url(LAB, timeout=90_000)
    page.wait_for_selector(".jp-Launcher", timeout=60_000)
    assert LAB.match(page.url)["name"] == "loki-2026-042"
    save_screenshot(page, "lab")

    # -- a second tab holds the dashboard while ODIN starts: each card its own state, progress and time left
    dashboard = context.new_page()
    dashboard.goto(f"{hub.url}/hub/home")
    card(dashboard, "loki-2026-042").locator(".visa-state[data-state=running]").wait_for()
    open_new_instance_form(page, hub)
    page.check("input[name=experiment][value='ODIN-2026-007']")
    assert page.input_value("#flavour") == "large"  # ODIN's default
    assert page.inner_text("#instance-name") == "odin-2026-007"
    with Paused(hub, "odin-2026-007") as paused:
        page.click("#spawn_form button[type=submit]")
        paused.wait_paused()
        odin = card(dashboard, "odin-2026-007")
        odin.locator(".visa-state[data-state=starting]").wait_for(timeout=30_000)
        dashboard.wait_for_function(
            """() => {
                 const bar = document.querySelector("li[data-server='odin-2026-007'] .progress-bar");
                 return bar && Number(bar.getAttribute('aria-valuenow')) >= 50;
               }""")
        assert "JupyterLab" in odin.locator(".visa-card__message").inner_text()
        assert TIME_LEFT.match(card(dashboard, "loki-2026-042").locator(".visa-time-left").inner_text())
        save_screenshot(dashboard, "dashboard-starting")
    page.wait_for_url(LAB, timeout=90_000)
    assert LAB.match(page.url)["name"] == "odin-2026-007"
    odin.locator(".visa-state[data-state=running]").wait_for(timeout=60_000)

    # -- both running, each card with its experiment, flavour, image title and time left
    loki = card(dashboard, "loki-2026-042")
    for item, code, flavour in ((loki, "LOKI-2026-042", "medium (4 CPU, 16 GB)"),
                                (odin, "ODIN-2026-007", "large (16 CPU, 64 GB)")):
        text = item.inner_text()
        assert code in text and flavour in text, text
        assert "ESS analysis (scipp, mantid, 2026.10)" in text
        assert "alice (owner)" in text
        assert TIME_LEFT.match(item.locator(".visa-time-left").inner_text()), text
    assert "2 of 2 instances · 20 of 32 CPUs · 80 of 192 GB" in dashboard.inner_text("#visa-quota-line")
    save_screenshot(dashboard, "dashboard")
    assert_accessible(dashboard, "dashboard with two instances")

    # -- dark mode, as JupyterHub's theme toggle does it; still readable
    dashboard.click("#dark-theme-toggle")
    assert dashboard.get_attribute("html", "data-bs-theme") == "dark"
    background = loki.evaluate("node => getComputedStyle(node).backgroundColor")
    assert background in ("rgb(33, 37, 41)", "rgb(33, 37, 41, 1)"), background
    save_screenshot(dashboard, "dashboard-dark")
    assert_accessible(dashboard, "dashboard in dark mode")
    dashboard.click("#dark-theme-toggle")

    # -- each Lab straight from its card
    with dashboard.expect_navigation():
        loki.get_by_role("link", name="Open Lab").click()
    assert LAB.match(dashboard.url)["name"] == "loki-2026-042"
    dashboard.wait_for_selector(".jp-Launcher", timeout=60_000)
    dashboard.goto(f"{hub.url}/hub/home")
    with dashboard.expect_navigation():
        card(dashboard, "odin-2026-007").get_by_role("link", name="Open Lab").click()
    assert LAB.match(dashboard.url)["name"] == "odin-2026-007"
    dashboard.wait_for_selector(".jp-Launcher", timeout=60_000)

    # -- a third instance is beyond her quota: refused, the quota named, nothing started
    open_new_instance_form(page, hub)
    assert "the most your quota allows" in page.inner_text("#visa-quota")
    page.click("#spawn_form button[type=submit]")
    error = page.locator(".spawn-error-msg")
    error.wait_for()
    assert 'your quota ("users" in the site catalog) allows 2 at a time' in error.inner_text()
    assert "loki-2026-042, odin-2026-007" in error.inner_text()
    assert page.locator("input[name=experiment]:checked").get_attribute("value") == "LOKI-2026-042"
    assert len(instance_processes(hub.data_dir, "loki-2026-042-2")) == 0

    # -- stop ODIN from its card, with the keyboard; LOKI keeps running
    dashboard.goto(f"{hub.url}/hub/home")
    odin = card(dashboard, "odin-2026-007")
    odin.locator(".visa-state[data-state=running]").wait_for()
    odin.locator("button[data-action=stop]").focus()
    dashboard.keyboard.press("Enter")
    confirm = odin.locator(".visa-confirm button[data-action=confirm]")
    confirm.wait_for()
    assert dashboard.evaluate("document.activeElement.dataset.action") == "confirm"
    dashboard.keyboard.press("Escape")  # changed her mind: nothing happens
    assert odin.locator(".visa-confirm").is_hidden()
    assert dashboard.evaluate("document.activeElement.dataset.action") == "lab"
    odin.locator("button[data-action=stop]").focus()
    dashboard.keyboard.press("Enter")
    confirm.wait_for()
    dashboard.keyboard.press("Enter")
    odin.locator(".visa-state[data-state=stopped]").wait_for(timeout=60_000)
    assert "ODIN-2026-007" in odin.inner_text()  # the stopped instance keeps its card ...
    assert odin.locator("button[data-action=start]").is_visible()  # ... to start again with the same settings
    wait_until(lambda: not instance_processes(hub.data_dir, "odin-2026-007"), 30, "ODIN's processes to end")
    assert card(dashboard, "loki-2026-042").locator(".visa-state[data-state=running]").is_visible()
    assert instance_processes(hub.data_dir, "loki-2026-042")
    contents = dashboard.request.get(f"{hub.url}/user/alice/loki-2026-042/api/contents")
    assert contents.status == 200 and contents.json()["type"] == "directory"
    assert "1 of 2 instances" in dashboard.inner_text("#visa-quota-line")
    save_screenshot(dashboard, "dashboard-stopped")

    # -- bob, in his own browser, sees his dashboard: none of alice's instances, and hers is not his to open
    bob_context = context.browser.new_context(viewport={"width": 1280, "height": 900}, reduced_motion="reduce")
    try:
        bob = bob_context.new_page()
        log_in(bob, hub, "bob")
        bob.wait_for_selector("#visa-empty:not([hidden])")
        assert bob.locator("li.visa-card").count() == 0
        assert "ODIN" not in bob.inner_text("#visa-dashboard")  # not his experiment
        assert bob.goto(f"{hub.url}/user/alice/loki-2026-042/lab").status == 403
    finally:
        bob_context.close()

    # -- an error page speaks of instances
    response = page.goto(f"{hub.url}/hub/spawn-pending/alice/no-such-instance")
    assert response.status == 404
    assert page.inner_text("h1") == "No such page or instance"
    save_screenshot(page, "error")
    assert_accessible(page, "error page")

    # -- the Desktop of the instance that kept running, straight from its card
    dashboard.goto(f"{hub.url}/hub/home")
    open_desktop = card(dashboard, "loki-2026-042").get_by_role("link", name="Open Desktop")
    assert open_desktop.get_attribute("href") == "/user/alice/loki-2026-042/lab?visa-open=desktop"
    with dashboard.expect_navigation():
        open_desktop.click()
    assert "/user/alice/loki-2026-042/lab" in dashboard.url, dashboard.url  # (Lab then drops ?visa-open)
    dashboard.wait_for_selector(".visa-desktop[data-state=connected]", timeout=60_000)
    dashboard.wait_for_function(  # the session has drawn (panel, menu), not just the background
        """() => {
             const canvas = document.querySelector('.visa-desktop .visa-desktop-screen canvas');
             if (!canvas || !canvas.width) return false;
             const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
             const colours = new Set();
             for (let i = 0; i < data.length; i += 4 * 97) {
               colours.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
             }
             return colours.size > 8;
           }""", timeout=60_000)
    save_screenshot(dashboard, "desktop-from-dashboard")
