"""Browser helpers for visa-hub's hub pages (login, dashboard, spawn form), shared by the browser tests."""

from __future__ import annotations

import re

from hubtest import DEMO_PASSWORD, HubProcess


def log_in(page, hub: HubProcess, username: str, password: str = DEMO_PASSWORD) -> None:
    """Log in on the hub's login page; she lands on her instance dashboard."""
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", username)
    page.fill("#password_input", password)
    page.click("#login_submit")
    page.wait_for_selector("#visa-dashboard")


def start_default_instance(page, hub: HubProcess, username: str = "alice") -> None:
    """Log in and start her default instance (``/user/<name>/``) from ``/hub/spawn``; returns once Lab's URL loads."""
    log_in(page, hub, username)
    page.goto(f"{hub.url}/hub/spawn")
    page.wait_for_selector("#visa-spawn-form")
    page.click("#spawn_form button[type=submit], #spawn_form input[type=submit]")
    page.wait_for_url(re.compile(rf".*/user/{re.escape(username)}/lab.*"), timeout=90_000)


def open_new_instance_form(page, hub: HubProcess) -> None:
    """From anywhere: the dashboard's "New instance" button, then the spawn form."""
    if "/hub/home" not in page.url:
        page.goto(f"{hub.url}/hub/home")
    page.locator("#visa-new-instance:not([hidden])").click()
    page.wait_for_selector("#visa-spawn-form")


def start_instance(page, hub: HubProcess, experiment: str | None = None, timeout: float = 90) -> str:
    """Start a new instance from the dashboard (the form's defaults, or this experiment) and wait for its Lab.

    Returns the instance's Lab URL path, e.g. ``/user/alice/loki-2026-042/lab``.
    """
    open_new_instance_form(page, hub)
    if experiment:
        page.check(f"input[name=experiment][value='{experiment}']")
    page.click("#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/[^/]+/[^/]+/lab.*"), timeout=timeout * 1000)
    page.wait_for_selector(".jp-Launcher", timeout=timeout * 1000)
    return re.sub(r"^https?://[^/]+", "", page.url).split("?")[0]
