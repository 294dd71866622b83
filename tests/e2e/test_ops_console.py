"""In Chromium: the operator console lists every instance, filters them, and lets an admin — not support — stop one.

visa-hub's hub (in this test process: tests/inprocess_hub.py) with the demo's people: alice and bob run LoKI
instances, carl (staff and support) runs an ODIN one; olga is the admin. Instances are the stand-in server
(visa_hub.testing.standin_lab): the console is about the hub's bookkeeping, not about JupyterLab.
"""

from __future__ import annotations

import sys

import pytest

from hubtest import HubProcess, UserSession, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

STANDIN = [sys.executable, "-m", "visa_hub.testing.standin_lab"]
STARTS = {"alice": "LOKI-2026-042", "bob": "LOKI-2026-042", "carl": "ODIN-2026-007"}


def standin_instances(c) -> None:
    c.Spawner.cmd = STANDIN
    c.Spawner.args = []


@pytest.fixture
def ops_hub(inprocess_hub):
    """visa-hub's hub in this test process (the console is about its pages, not its process)."""
    return inprocess_hub(more_config=standin_instances)


def log_in(page, hub: HubProcess, name: str) -> None:
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", "visa-demo")
    page.click("#login_submit")
    # the home page asks the sessions service (shared with me) through its OAuth login: let that finish, as a
    # person reading the page does, before opening another of the service's pages (two logins at once to the
    # same service race for its OAuth state cookie)
    page.wait_for_load_state("networkidle")


def rows(page) -> list[str]:
    return page.locator("#visa-ops-instances tbody tr").evaluate_all("rows => rows.map(r => r.dataset.owner)")


def wait_rows(page, expected: list[str]) -> None:
    wait_until(lambda: sorted(rows(page)) == sorted(expected), 20, f"the console to show {expected}")


def test_ops_console_filters_and_stop_admin_only(ops_hub, browser, tmp_path):
    sessions = {}
    for name, experiment in STARTS.items():
        session = sessions[name] = UserSession(ops_hub, name)
        assert session.login().status_code == 200
        flavour = "medium" if experiment.startswith("ODIN") else "small"
        response = session.http.post(f"/hub/api/users/{name}/server", json={"experiment": experiment,
                                                                           "flavour": flavour},
                                     headers=session._hub_xsrf())
        assert response.status_code in (201, 202), response.text
    for session in sessions.values():
        session.wait_ready(timeout=60)

    # olga, the admin: every instance, with what it runs
    admin = browser.new_context(viewport={"width": 1400, "height": 900})
    page = admin.new_page()
    log_in(page, ops_hub, "olga")
    page.goto(f"{ops_hub.url}/services/visa-sessions/admin")  # the sessions service's admin page is this one
    page.wait_for_url(f"{ops_hub.url}/hub/visa/ops")
    wait_rows(page, ["alice", "bob", "carl"])
    carl_row = page.locator("#visa-ops-instances tbody tr[data-owner=carl]")
    text = carl_row.inner_text()
    assert all(word in text for word in ("ODIN-2026-007", "ODIN", "medium", "local", "running")), text
    assert carl_row.locator("a", has_text="carl").get_attribute("href") == "/hub/admin?name_filter=carl"
    assert page.locator("#visa-ops-status [data-kind=file][data-reachable=true]").count() == 1  # the User Office
    assert page.locator("#visa-ops-read-only").count() == 0

    # filters: by experiment, by instrument, by state; the URL keeps them
    page.select_option("#visa-ops-filter-experiment", "ODIN-2026-007")
    wait_rows(page, ["carl"])
    assert "experiment=ODIN-2026-007" in page.url
    page.click("#visa-ops-clear")
    page.select_option("#visa-ops-filter-instrument", "LoKI")
    wait_rows(page, ["alice", "bob"])
    page.select_option("#visa-ops-filter-state", "running")
    wait_rows(page, ["alice", "bob"])
    page.fill("#visa-ops-filter-owner", "bob")
    page.press("#visa-ops-filter-owner", "Enter")
    wait_rows(page, ["bob"])
    page.click("#visa-ops-clear")
    wait_rows(page, ["alice", "bob", "carl"])

    # lifetimes on the same page, from the sessions service: bob's expiry, extended by 24 hours
    bob_row = page.locator("#visa-ops-instances tbody tr[data-owner=bob]")
    wait_until(lambda: (page.reload(), bob_row.locator("button.visa-ops-extend").count())[1], 90,
               "the sessions service to know bob's instance (one pass of its poll)", interval=3)
    before = bob_row.locator(".visa-ops-expires").inner_text()
    bob_row.locator("input.visa-ops-hours").fill("24")
    bob_row.locator("button.visa-ops-extend").click()
    wait_until(lambda: "now ends" in page.inner_text("#visa-ops-message"), 20, "the extension to be confirmed")
    wait_until(lambda: bob_row.locator(".visa-ops-expires").inner_text() != before, 20, "the new expiry")
    page.screenshot(path=str(tmp_path / "ops-admin.png"))

    # stop: a first click arms the button, the second stops alice's instance
    stop = page.locator("#visa-ops-instances tbody tr[data-owner=alice] button.visa-ops-stop")
    stop.click()
    assert stop.inner_text() == "Confirm stop"
    assert sessions["alice"].server_model().get("ready")  # nothing happened yet
    stop.click()
    wait_until(lambda: not sessions["alice"].server_model(), 30, "alice's instance to stop")
    wait_rows(page, ["bob", "carl"])
    assert "Stopping alice's instance" in page.inner_text("#visa-ops-message")
    admin.close()

    # carl, support staff: sees every instance, cannot stop any — no button, and the hub refuses
    support = browser.new_context(viewport={"width": 1400, "height": 900})
    page = support.new_page()
    log_in(page, ops_hub, "carl")
    page.goto(f"{ops_hub.url}/hub/visa/ops")
    wait_rows(page, ["bob", "carl"])
    assert page.locator("#visa-ops-read-only").is_visible()
    assert page.locator("button.visa-ops-stop").count() == 0
    assert page.locator("button.visa-ops-extend, button.visa-ops-shorten").count() == 0
    assert page.locator("nav a.nav-link", has_text="Operations").count() == 1
    status = page.evaluate("""async () => (await fetch('/hub/api/users/bob/server',
        {method: 'DELETE', headers: {'X-XSRFToken': window.jhdata.xsrf_token}})).status""")
    assert status in (403, 404)
    page.screenshot(path=str(tmp_path / "ops-support.png"))
    assert sessions["bob"].server_model().get("ready")  # still running
    support.close()

    # bob, a user: no console for him
    user = browser.new_context()
    page = user.new_page()
    log_in(page, ops_hub, "bob")
    assert page.locator("nav a.nav-link", has_text="Operations").count() == 0
    response = page.goto(f"{ops_hub.url}/hub/visa/ops")
    assert response.status == 403
    assert "administrators and support staff" in page.inner_text("body")
    user.close()
    for session in sessions.values():
        session.close()
