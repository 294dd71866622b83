"""Lab's launcher, in a real browser, follows the app catalog: a published version appears within 5 s."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from apps_support import AppUser, kernel_specs, publish, reduce_app, start_instance_server, version_entry

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def card(page, text: str):
    return page.locator(".jp-LauncherCard", has_text=text)


def test_apps_launcher_shows_a_published_version_within_5_s(app_images_built, app_user: AppUser, page,
                                                            tmp_path: Path):
    v1, v2 = app_images_built["reduce-1.0"], app_images_built["reduce-2.0"]
    publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(v1))]})
    mine = app_user.home / "mytool.sif"
    shutil.copy(app_images_built["mytool-0.1"].path, mine)
    assert app_user.visa_app("register", str(mine), "--name", "mytool", "--version", "0.1",
                             "--title", "My tool").returncode == 0
    server = start_instance_server(tmp_path / "server", app_user)
    try:
        page.goto(f"{server.url}lab?token={server.token}")
        page.wait_for_selector(".jp-Launcher", timeout=90_000)
        card(page, "Reduce 1.0").first.wait_for(timeout=30_000)
        assert card(page, "Reduce 2.0").count() == 0
        card(page, "My tool 0.1 (your image)").wait_for(timeout=15_000)  # her image, marked, in visa-hub's section

        publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(v1, "supported"),
                                                                 version_entry(v2))]})
        published = time.monotonic()
        card(page, "Reduce 2.0").first.wait_for(timeout=5_000)
        seen_after = time.monotonic() - published
        assert seen_after < 5
        assert "visa-app-reduce-2.0" in kernel_specs(server)
        assert card(page, "Reduce 1.0 (supported)").count() >= 1, "v1 left the launcher"
        page.screenshot(path=str(tmp_path / "launcher-with-v2.png"))
        print(f"apps: the launcher showed Reduce 2.0 {seen_after:.1f} s after it was published")
    finally:
        server.stop()


def run_palette_command(page, label: str) -> None:
    page.keyboard.press("Control+Shift+C")
    palette = page.locator(".lm-CommandPalette-input")
    palette.fill(label)
    page.locator(".lm-CommandPalette-item", has_text=label).first.click()


def test_apps_lab_actions_download_the_cycle_bundle_and_reproduce_a_session(app_images_built, app_user: AppUser,
                                                                           page, tmp_path: Path):
    import tarfile

    from apps_support import post, run_code

    v1, v2 = app_images_built["reduce-1.0"], app_images_built["reduce-2.0"]
    publish(app_user.catalog, "site", {
        "cycles": [{"name": "2026-now", "starts": "2000-01-01", "ends": "2100-01-01", "pins": {"reduce": "1.0"}}],
        "apps": [reduce_app(version_entry(v1), version_entry(v2))]})
    server = start_instance_server(tmp_path / "server", app_user)
    try:
        first = post(server, "api/kernels", {"name": "visa-app-reduce-1.0"}).json()["id"]
        run_code(server, first, "1")  # the session's record now lists reduce 1.0 (a kernel)
        server.get(f"api/kernels/{first}")
        page.goto(f"{server.url}lab?token={server.token}")
        page.wait_for_selector(".jp-Launcher", timeout=90_000)
        card(page, "Reduce 2.0").first.wait_for(timeout=30_000)

        with page.expect_download(timeout=120_000) as download:
            run_palette_command(page, "Download the Apps of My Proposal Cycle")
        saved = tmp_path / "bundle.tar"
        download.value.save_as(saved)
        with tarfile.open(saved) as tar:
            assert "visa-apps-2026-now/images/reduce-1.0.sif" in tar.getnames()
            assert "visa-apps-2026-now/images/reduce-2.0.sif" not in tar.getnames()

        before = {k["id"] for k in server.get("api/kernels").json()}
        run_palette_command(page, "Reproduce a Session from Its Provenance Record")
        page.locator(".jp-Dialog .jp-mod-accept").click()  # the one record, preselected
        page.locator(".jp-Dialog", has_text="Kernels: reduce@1.0").wait_for(timeout=120_000)
        page.locator(".jp-Dialog .jp-mod-accept").click()
        started = [k for k in server.get("api/kernels").json() if k["id"] not in before]
        assert [k["name"] for k in started] == ["visa-app-reduce-1.0"]
        page.locator(".jp-ConsolePanel").first.wait_for(timeout=30_000)
        assert "1.0.0" in run_code(server, started[0]["id"], "import essreduce_demo; print(essreduce_demo.__version__)")
        page.screenshot(path=str(tmp_path / "reproduced.png"))
    finally:
        server.stop()
