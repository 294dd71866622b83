"""In a real browser: log in, pick an experiment, and see JupyterLab load."""

from __future__ import annotations

import re

import pytest

from hubpages import log_in

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_login_pick_experiment_and_lab_loads(start_hub, page, tmp_path):
    hub = start_hub()
    log_in(page, hub, "alice")

    # the spawn form of her default instance (the dashboard's "New instance" is tested in test_dashboard.py)
    # lists her experiments, the running one first chosen
    page.goto(f"{hub.url}/hub/spawn")
    page.wait_for_selector("#visa-spawn-form")
    assert page.inner_text("h1") == "Start an instance"
    loki = page.locator("input[name=experiment][value='LOKI-2026-042']")
    odin = page.locator("input[name=experiment][value='ODIN-2026-007']")
    assert loki.is_checked()
    assert page.input_value("#flavour") == "medium"  # LoKI's default flavour, not the catalog's first
    # choosing ODIN offers ODIN's flavours only, and its lifetime limit
    odin.check()
    assert page.locator("#flavour option[value='gpu-large']").is_enabled()
    assert page.locator("#flavour option[value='small']").is_disabled()
    assert page.input_value("#flavour") == "large"
    assert "At most 72 hours for ODIN" in page.inner_text("#lifetime-help")
    page.select_option("#flavour", "gpu-large")
    # back to LoKI: the GPU flavour is not offered there, and the form says what it changed
    loki.check()
    assert page.locator("#flavour option[value='gpu-large']").is_disabled()
    assert page.input_value("#flavour") == "medium"
    assert "LoKI does not offer the flavour gpu-large" in page.inner_text("#visa-form-notice")
    page.select_option("#flavour", "small")
    page.screenshot(path=str(tmp_path / "spawn-form.png"))
    page.click("#spawn_form button[type=submit], #spawn_form input[type=submit]")

    # progress page, then JupyterLab itself (its shell and launcher render)
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=90_000)
    page.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
    page.wait_for_selector(".jp-Launcher", timeout=60_000)
    assert "JupyterLab" in page.title()

    # the visa-hub extension shows her session in the status bar, counting down from 24 hours
    status = page.locator(".visa-hub-status")
    status.wait_for()
    assert re.fullmatch(r"LOKI-2026-042 · LoKI · 2[34]h \d+m left", status.inner_text()), status.inner_text()
    status.click()
    panel = page.locator("#visa-hub-session")
    panel.wait_for()
    assert "Self-assembly of lipid nanodiscs under shear" in panel.inner_text()
    assert "small" in panel.inner_text()
    assert page.get_attribute("#visa-hub-session button.visa-hub-relaunch", "data-href").endswith(
        "/hub/visa/relaunch/alice/")
    page.screenshot(path=str(tmp_path / "lab.png"))
