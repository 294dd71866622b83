"""Lifetime warnings where she looks, in real Chromium: JupyterLab notifications and the status bar at each
threshold, "Extend" from a notification, and after the stop a relaunch that restores her Lab layout
(the Desktop tab open) from her persistent home.
"""

from __future__ import annotations

import datetime as dt
import re

import pytest

from hubtest import DEMO_PASSWORD, wait_until
from lifetime_support import EXPERIMENT, ServiceClient, expires, lifetime_hub, login, smtp  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TOAST = ".Toastify__toast"


def _browser_login(page, hub, user: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", user)
    page.fill("#password_input", DEMO_PASSWORD)
    page.click("#login_submit")
    page.wait_for_load_state()


def test_lifetime_lab_notifications_status_bar_and_relaunched_layout(lifetime_hub, smtp, page):  # noqa: F811
    hub = lifetime_hub()
    alice, olga = login(hub, "alice"), login(hub, "olga")
    response = alice.submit_spawn_form(experiment=EXPERIMENT, flavour="small", lifetime_hours="0.05")
    assert response.status_code == 200, response.text[:1000]
    alice.wait_ready()
    service, admin = ServiceClient(alice), ServiceClient(olga)
    service.wait_instance("alice")

    _browser_login(page, hub, "alice")
    page.goto(f"{hub.url}/user/alice/lab")
    page.wait_for_selector(".jp-Launcher", timeout=60_000)
    status = page.locator(".visa-hub-status")
    status.wait_for()
    assert status.get_attribute("data-lifetime-level") == "0"
    page.locator(".jp-LauncherCard", has_text="Desktop").click()
    page.wait_for_selector(".visa-desktop[data-state=connected]", timeout=30_000)
    workspaces = hub.data_dir / "homes" / "alice" / ".jupyter" / "lab" / "workspaces"
    wait_until(lambda: any("visa-desktop" in p.read_text() for p in workspaces.glob("*.jupyterlab-workspace")),
               30, "Lab to save the workspace with the Desktop tab in her home")

    # each threshold: a notification with "Extend" and "Relaunch later", and the status bar changes
    page.wait_for_selector(".visa-hub-status[data-lifetime-level='1']", timeout=100_000)
    assert "visa-hub-lifetime-warning" in status.get_attribute("class")
    assert "visa-hub-lifetime-critical" not in status.get_attribute("class")
    first = page.locator(TOAST, has_text="end of its lifetime")
    first.first.wait_for(timeout=20_000)
    assert first.count() == 1
    assert first.first.get_by_role("button", name="Extend").count() == 1
    assert first.first.get_by_role("button", name="Relaunch later").count() == 1
    page.screenshot(path=str(hub.data_dir / "lifetime-first-warning.png"))
    home = page.context.new_page()  # the hub's home page shows the same warning in a banner
    home.goto(f"{hub.url}/hub/home")
    home.locator(".visa-lifetime-alert", has_text="end of its lifetime").wait_for(timeout=30_000)
    assert home.locator(".visa-lifetime-alert a", has_text="Extend").count() == 1
    home.close()

    page.wait_for_selector(".visa-hub-status[data-lifetime-level='2']", timeout=80_000)
    assert "visa-hub-lifetime-critical" in status.get_attribute("class")
    page.locator(TOAST, has_text="end of its lifetime").nth(1).wait_for(timeout=20_000)

    # "Extend" from the notification: within the rules, at once; the status bar follows the new expiry
    before = expires(service.instance("alice"))
    page.locator(TOAST, has_text="end of its lifetime").nth(1).get_by_role("button", name="Extend").click()
    page.locator(TOAST, has_text="Extended").first.wait_for(timeout=20_000)
    assert (expires(service.instance("alice")) - before).total_seconds() == pytest.approx(60, abs=1)
    page.wait_for_selector(".visa-hub-status[data-lifetime-level='1']", timeout=20_000)

    # the end (an admin shortens it to reach it sooner): the instance stops
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10)
    relaunch = service.instance("alice")["relaunch_url"]
    admin.post("api/instances/alice//expiry", {"expires_at": end.isoformat()})
    wait_until(lambda: not alice.server_model(), 60, "the instance to stop at its expiry")

    # relaunch with the same settings: the same Lab layout, with the Desktop tab open
    page.goto(relaunch)
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=90_000)
    page.wait_for_selector("#jp-main-dock-panel .lm-TabBar-tab:has-text('Desktop')", timeout=60_000)
    page.wait_for_selector(".visa-desktop[data-state=connected]", timeout=30_000)
    assert alice.server_model()["user_options"]["lifetime_hours"] == "0.05"
    page.screenshot(path=str(hub.data_dir / "lifetime-relaunched.png"))
