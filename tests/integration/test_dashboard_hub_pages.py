"""The hub's relaunch and stop pages against a real hub: who may use them, and what they do to an instance.

The browser test (tests/e2e/test_dashboard_lab.py) walks the running-instance path from the Session panel; this
one covers the rest with plain HTTP: stop, then "start again with the same settings" from a stopped instance
(what the dashboard's stopped cards link to), the XSRF check, admins, unknown servers, and logged-out visitors.
"""

from __future__ import annotations

import httpx
import pytest

from hubtest import UserSession, wait_until

pytestmark = pytest.mark.integration


def _xsrf(session: UserSession) -> str:
    return session.http.cookies.get("_xsrf", path="/hub/")


def test_dashboard_hub_pages_stop_and_start_again(start_hub):
    hub = start_hub()
    alice = UserSession(hub, "alice")
    olga = UserSession(hub, "olga")
    try:
        alice.login()
        alice.submit_spawn_form(experiment="LOKI-2026-042", flavour="medium", lifetime_hours="6")
        options = alice.wait_ready()["user_options"]
        assert options["flavour"] == "medium"

        # logged out: the login page first; an unknown instance: 404
        anonymous = httpx.get(f"{hub.url}/hub/visa/stop/alice/", follow_redirects=False, timeout=10)
        assert anonymous.status_code == 302 and "/hub/login" in anonymous.headers["location"]
        assert alice.http.get("/hub/visa/relaunch/alice/no-such-instance").status_code == 404

        # an admin may act for her (she sees the same page); the page is for her default instance
        olga.login()
        as_admin = olga.http.get("/hub/visa/stop/alice/")
        assert as_admin.status_code == 200 and "Stop alice’s instance" in as_admin.text

        # stop: confirmation first, then the hub's home page, the instance gone, its settings kept
        page = alice.http.get("/hub/visa/stop/alice")
        assert page.status_code == 200 and 'id="visa-action-confirm"' in page.text
        assert "Your files stay in your persistent home" in page.text
        without_token = alice.http.post("/hub/visa/stop/alice/", data={})
        assert without_token.status_code == 403  # JupyterHub's XSRF check
        assert alice.server_model().get("ready")
        done = alice.http.post("/hub/visa/stop/alice/", data={"_xsrf": _xsrf(alice)})
        assert done.url.path in ("/hub/home", "/hub/visa/stop/alice/"), done.url
        wait_until(lambda: not alice.server_model().get("ready") and not alice.server_model().get("pending"),
                   60, "her instance to stop")
        assert "is not running" in alice.http.get("/hub/visa/stop/alice/").text

        # start again with the same settings: the same question, answered by a start with the kept options
        page = alice.http.get("/hub/visa/relaunch/alice/")
        assert page.status_code == 200
        assert "Start your instance again with the same settings?" in page.text
        assert "medium" in page.text and "6 hours from the new start" in page.text
        started = alice.http.post("/hub/visa/relaunch/alice/", data={"_xsrf": _xsrf(alice)})
        assert started.status_code == 200, started.text[:500]
        assert alice.wait_ready()["user_options"] == options
    finally:
        alice.close()
        olga.close()
