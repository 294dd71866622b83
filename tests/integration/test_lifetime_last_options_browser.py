"""Her last spawn options per experiment, in real Chromium: a new instance starts from what she chose last time for
that experiment, even after she removed the instance, and "Relaunch with the same settings" comes first.

The sessions service remembers the options of every instance it follows, per person and experiment
(``api/last-options``); the spawn form reads them with her login cookie. Another person (bob, in his own browser
context) never sees hers.
"""

from __future__ import annotations

import re

import pytest
from screenshots import save_screenshot

from hubpages import log_in, open_new_instance_form
from hubtest import wait_until
from lifetime_support import SERVICE, lifetime_hub, smtp  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

LOKI, ODIN = "LOKI-2026-042", "ODIN-2026-007"
LAB = re.compile(r".*/user/alice/(?P<name>[a-z0-9-]+)/lab.*")
#: the demo site's lifetimes (a day by default), without inactivity stops
LIFETIMES = {
    "users": {"default": "24h", "max": "14d", "inactivity": "never"},
    "staff": {"default": "24h", "max": "60d", "inactivity": "never"},
    "warnings": ["48h", "1h"],
    "membership_grace": "1h",
    "extension": {"step": "24h", "auto": "all", "auto_up_to": "7d", "max": "60d"},
}


def card(page, server_name: str):
    return page.locator(f"li.visa-card[data-server='{server_name}']")


def form_loaded(page) -> None:
    """The spawn form has asked the sessions service for her last options."""
    page.wait_for_selector("#visa-spawn-form[data-last-options=loaded]", state="attached")


def fields(page) -> dict[str, str]:
    return {"experiment": page.locator("input[name=experiment]:checked").get_attribute("value"),
            "flavour": page.input_value("#flavour"), "image": page.input_value("#image"),
            "lifetime_hours": page.input_value("#lifetime_hours")}


def remembered(page, hub, experiment: str) -> dict | None:
    """Her last options for ``experiment`` as the sessions service keeps them (her browser's cookies)."""
    response = page.request.get(f"{hub.url}{SERVICE}api/last-options")
    if response.status != 200:
        return None
    rows = {row["experiment"]: row["options"] for row in response.json()["last_options"]}
    return rows.get(experiment)


def start_from_form(page) -> str:
    page.click("#spawn_form button[type=submit]")
    page.wait_for_url(LAB, timeout=90_000)
    page.wait_for_selector(".jp-Launcher", timeout=60_000)
    return LAB.match(page.url)["name"]


def stop_on_dashboard(page, hub, server_name: str, remove: bool = False) -> None:
    page.goto(f"{hub.url}/hub/home")
    item = card(page, server_name)
    item.locator(".visa-state[data-state=running]").wait_for(timeout=30_000)
    item.locator("button[data-action=stop]").click()
    item.locator(".visa-confirm button[data-action=confirm]").click()
    item.locator(".visa-state[data-state=stopped]").wait_for(timeout=60_000)
    if remove:
        item.locator("button[data-action=remove]").click()
        item.locator(".visa-confirm button[data-action=confirm]").click()
        item.wait_for(state="detached", timeout=30_000)


def test_lifetime_last_options_per_experiment_prefill_new_instances(lifetime_hub, smtp, browser):  # noqa: F811
    hub = lifetime_hub(lifetimes=LIFETIMES)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, reduced_motion="reduce")
    page = context.new_page()
    page.set_default_timeout(30_000)
    try:
        log_in(page, hub, "alice")

        # -- LOKI, the first time: LoKI's defaults; she changes flavour, image and lifetime
        open_new_instance_form(page, hub)
        form_loaded(page)
        assert fields(page) == {"experiment": LOKI, "flavour": "medium", "image": "ess-analysis-2026.10",
                                "lifetime_hours": "24"}
        assert page.locator("#visa-relaunch").is_hidden()  # nothing to relaunch yet
        page.select_option("#flavour", "small")
        page.select_option("#image", "ess-analysis-2026.04")
        page.fill("#lifetime_hours", "6")
        assert start_from_form(page) == "loki-2026-042"
        loki_choice = {"experiment": LOKI, "flavour": "small", "image": "ess-analysis-2026.04", "lifetime_hours": "6"}
        wait_until(lambda: remembered(page, hub, LOKI) == loki_choice, 30, "the sessions service to remember LOKI")

        # -- she stops the instance and removes it from her dashboard
        stop_on_dashboard(page, hub, "loki-2026-042", remove=True)

        # -- ODIN, the first time: ODIN's defaults; she takes a medium one for 12 hours
        open_new_instance_form(page, hub)
        page.check(f"input[name=experiment][value='{ODIN}']")
        assert fields(page)["flavour"] == "large"  # ODIN's default: no ODIN history yet
        page.select_option("#flavour", "medium")
        page.fill("#lifetime_hours", "12")
        assert start_from_form(page) == "odin-2026-007"
        odin_choice = {"experiment": ODIN, "flavour": "medium", "image": "ess-analysis-2026.10",
                       "lifetime_hours": "12"}
        wait_until(lambda: remembered(page, hub, ODIN) == odin_choice, 30, "the sessions service to remember ODIN")
        stop_on_dashboard(page, hub, "odin-2026-007")

        # -- a new LOKI instance (the old one is gone): the form starts from her LOKI choices
        open_new_instance_form(page, hub)
        assert page.url.endswith("/hub/spawn/alice/loki-2026-042")  # a server name JupyterHub has never seen
        form_loaded(page)
        assert fields(page) == loki_choice
        relaunch = page.locator("#visa-relaunch")
        assert relaunch.is_visible()
        assert relaunch.evaluate("node => node === node.closest('form').querySelector('.visa-spawn').firstElementChild")
        assert page.locator("#spawn_form button").first.inner_text() == "Relaunch with the same settings"
        summary = page.inner_text("#visa-relaunch-summary")
        assert LOKI in summary and "small" in summary and "2026.04" in summary and "6 h" in summary, summary
        save_screenshot(page, "form-last-options")

        # -- she picks ODIN: ODIN's choices; back to LOKI: LOKI's again
        page.check(f"input[name=experiment][value='{ODIN}']")
        assert fields(page) == odin_choice
        assert ODIN in page.inner_text("#visa-relaunch-summary")
        assert page.inner_text("#instance-name") == "odin-2026-007-2"  # odin-2026-007 is her stopped instance
        page.check(f"input[name=experiment][value='{LOKI}']")
        assert fields(page) == loki_choice
        assert page.inner_text("#instance-name") == "loki-2026-042"

        # -- bob, in his own browser, starts from LoKI's defaults: alice's choices are hers
        bob_context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            bob = bob_context.new_page()
            bob.set_default_timeout(30_000)
            log_in(bob, hub, "bob")
            open_new_instance_form(bob, hub)
            form_loaded(bob)
            bob.check(f"input[name=experiment][value='{LOKI}']")
            assert fields(bob) == {"experiment": LOKI, "flavour": "medium", "image": "ess-analysis-2026.10",
                                   "lifetime_hours": "24"}
            assert bob.locator("#visa-relaunch").is_hidden()
        finally:
            bob_context.close()

        # -- she changes the flavour, then relaunches with the same settings after all: her LOKI choices start
        page.select_option("#flavour", "large")
        page.click("#visa-relaunch-button")
        page.wait_for_url(LAB, timeout=90_000)
        assert LAB.match(page.url)["name"] == "loki-2026-042"
        page.goto(f"{hub.url}/hub/home")
        loki = card(page, "loki-2026-042")
        loki.locator(".visa-state[data-state=running]").wait_for(timeout=60_000)
        text = loki.inner_text()
        assert "small (2 CPU, 4 GB)" in text and "2026.04" in text, text
        assert re.search(r"\b5 h \d+ min left", text), text  # 6 hours
    finally:
        save_screenshot(page, "lifetime-last-options-last-page")
        context.close()
