"""In a real browser: JupyterLab as visa-hub ships it, and the Session panel's stop and relaunch.

A fresh instance shows no "Jupyter news" prompt; the launcher has a VISA section (Desktop, Session); the Session
and Desktop tabs have icons; the Session panel shows the image's title and dates in the browser's locale;
"Relaunch with the same settings" restarts this very instance (new process, same server, same user_options)
after the hub's confirmation page; ``?visa-open=desktop`` opens Lab on the Desktop tab; Stop stops it; another
user cannot use the pages.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

import httpx
import pytest
from screenshots import save_screenshot

from hubpages import start_default_instance
from hubtest import UserSession, processes_under, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NEWS_PROMPT = "official Jupyter news"
TIMEZONE = "Europe/Stockholm"
IMAGE_TITLE = "ESS analysis (scipp, mantid, 2026.10)"


def _hub_api(page, hub, path: str) -> dict:
    """A hub REST call with the browser's own login (cookie + XSRF token), as the hub's pages make them."""
    xsrf = next(c["value"] for c in page.context.cookies() if c["name"] == "_xsrf" and c["path"] == "/hub/")
    response = page.request.get(f"{hub.url}/hub/api/{path}", headers={"X-XSRFToken": xsrf})
    assert response.ok, response.text()
    return response.json()


def _default_server(page, hub) -> dict:
    return _hub_api(page, hub, "users/alice").get("servers", {}).get("", {})


def _singleuser_pids(hub) -> set[int]:
    pids = set()
    for pid in processes_under(hub.data_dir):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"jupyterhub-singleuser" in f.read():
                    pids.add(pid)
        except OSError:
            pass
    return pids


def _wait_for_lab(page) -> None:
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=90_000)
    page.wait_for_selector(".jp-Launcher", timeout=60_000)
    page.locator(".visa-hub-status").wait_for(timeout=30_000)


def _tab(page, label: str):
    return page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text=label)


def _news_toasts(page) -> int:
    return page.locator(".Toastify__toast", has_text=NEWS_PROMPT).count()


def test_dashboard_lab_session_panel_relaunch_and_stop(start_hub, browser, tmp_path):
    hub = start_hub()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="de-DE", timezone_id=TIMEZONE)
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        start_default_instance(page, hub)  # this test uses her default instance at /user/alice/
        _wait_for_lab(page)

        # no news prompt once Lab has settled (JupyterLab asks a few seconds after start when nobody said no)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert _news_toasts(page) == 0, "JupyterLab asks about Jupyter news"
            time.sleep(0.5)
        setting = page.request.get(
            f"{hub.url}/user/alice/lab/api/settings/@jupyterlab/apputils-extension:notification").json()
        assert setting["schema"]["properties"]["fetchNews"]["default"] == "false"  # the instance config ships it

        # the launcher's VISA section: Desktop and Session
        section = page.locator(".jp-Launcher-section", has=page.locator(".jp-Launcher-sectionTitle",
                                                                          has_text=re.compile("^VISA$")))
        assert section.locator(".jp-LauncherCard", has_text="Desktop").count() == 1
        assert section.locator(".jp-LauncherCard", has_text="Session").count() == 1
        save_screenshot(page, "lab-launcher")

        # the Session panel: a tab with an icon, the image's title, dates in her browser's locale
        section.locator(".jp-LauncherCard", has_text="Session").click()
        panel = page.locator("#visa-hub-session")
        panel.wait_for()
        assert _tab(page, "Session").locator(".lm-TabBar-tabIcon svg").count() == 1
        assert panel.locator("[data-field=image]").inner_text() == IMAGE_TITLE
        session = page.request.get(f"{hub.url}/user/alice/visa/api/session").json()
        expires = dt.datetime.fromisoformat(session["expires_at"]).astimezone(ZoneInfo(TIMEZONE))
        expected = f"{expires:%d.%m.%Y}, {expires:%H:%M}"  # de-DE, dateStyle medium + timeStyle short
        assert panel.locator("[data-field=expires]").inner_text().startswith(expected), expected
        started = dt.datetime.fromisoformat(session["starts_at"]).astimezone(ZoneInfo(TIMEZONE))
        assert panel.locator("[data-field=started]").inner_text() == f"{started:%d.%m.%Y}, {started:%H:%M}"
        save_screenshot(page, "lab-session-panel")

        before = _default_server(page, hub)
        pids_before = _singleuser_pids(hub)
        assert before["ready"] and pids_before

        # another person cannot relaunch or stop her instance: 403, and it keeps running
        bob = UserSession(hub, "bob")
        try:
            bob.login()
            assert bob.http.get("/hub/visa/relaunch/alice/").status_code == 403
            assert bob.http.get("/hub/visa/stop/alice").status_code == 403
            xsrf = bob.http.cookies.get("_xsrf", path="/hub/")
            refused = bob.http.post("/hub/visa/stop/alice/", data={"_xsrf": xsrf})
            assert refused.status_code == 403, refused.text[:300]
        finally:
            bob.close()
        assert _default_server(page, hub)["ready"]

        # Relaunch: the hub asks first, then restarts this very instance with the same settings
        panel.locator("button.visa-hub-relaunch").click()
        page.wait_for_url(re.compile(r".*/hub/visa/relaunch/alice/$"))
        heading = page.locator("#visa-server-action h1").inner_text()
        assert heading == "Relaunch your instance for experiment LOKI-2026-042", heading
        assert "Your files stay" in page.locator("#visa-server-action").inner_text()
        settings = page.locator("#visa-action-settings").inner_text()
        assert "LOKI-2026-042" in settings and IMAGE_TITLE in settings, settings
        save_screenshot(page, "hub-relaunch-confirm")
        page.click("#visa-action-confirm")
        _wait_for_lab(page)
        after = _default_server(page, hub)
        assert after["ready"]
        assert after["name"] == before["name"] == ""
        assert after["user_options"] == before["user_options"]
        assert after["started"] != before["started"]
        pids_after = _singleuser_pids(hub)
        assert pids_after and not pids_after & pids_before, (pids_before, pids_after)

        # ?visa-open=desktop: Lab opens with the Desktop tab active (the dashboard's "Open Desktop")
        page.goto(f"{hub.url}/user/alice/lab?visa-open=desktop")
        page.wait_for_selector(".visa-desktop[data-state=connected]", timeout=60_000)
        current = page.locator("#jp-main-dock-panel .lm-TabBar-tab.lm-mod-current")
        assert current.inner_text().strip() == "Desktop"
        assert current.locator(".lm-TabBar-tabIcon svg").count() == 1
        assert "visa-open" not in page.url  # a reload does not open another Desktop
        save_screenshot(page, "lab-desktop-tab")

        # Stop, from the Session panel: the hub asks first, then stops it and shows her instances
        page.locator(".visa-hub-status").click()
        page.locator("#visa-hub-session button.visa-hub-stop").click()
        page.wait_for_url(re.compile(r".*/hub/visa/stop/alice/$"))
        assert page.locator("#visa-server-action h1").inner_text().startswith("Stop your instance")
        page.click("#visa-action-confirm")
        page.wait_for_url(re.compile(r".*/hub/(home|visa/stop/alice/)$"))
        wait_until(lambda: not _default_server(page, hub).get("ready"), 60, "her instance to stop")
        wait_until(lambda: not _singleuser_pids(hub), 30, "the instance's process to end")
        page.wait_for_url(re.compile(r".*/hub/home$"), timeout=30_000)
        gone = httpx.get(f"{hub.url}/user/alice/api/status", follow_redirects=False, timeout=10)
        assert gone.status_code != 200
    finally:
        page.screenshot(path=str(tmp_path / "last-page.png"))
        context.close()
