"""Apps in a real Jupyter Server configured as an instance: live kernel specs, kernels that run inside their
container (through Lab's kernel API), the app API and reproduce."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from apps_support import (
    AppUser,
    kernel_specs,
    post,
    publish,
    reduce_app,
    run_code,
    start_instance_server,
    version_entry,
)
from hubtest import wait_until
from jupyter_server_process import JupyterServer
from visa_hub.singleuser.apps import SYNC_SECONDS

pytestmark = pytest.mark.integration


@pytest.fixture
def instance(app_images_built, app_user: AppUser, tmp_path: Path) -> Iterator[tuple[JupyterServer, AppUser]]:
    publish(app_user.catalog, "reduce", {"apps": [reduce_app(version_entry(app_images_built["reduce-1.0"]))]})
    server = start_instance_server(tmp_path / "server", app_user)
    yield server, app_user
    for kernel in server.get("api/kernels").json():
        httpx.delete(server.url + f"api/kernels/{kernel['id']}", headers={"Authorization": f"token {server.token}"},
                     timeout=30)
    server.stop()


def test_apps_kernelspecs_show_v2_within_5_s_and_kernels_run_inside_their_containers(app_images_built, instance):
    server, user = instance
    specs = kernel_specs(server)
    assert "visa-app-reduce-1.0" in specs and "visa-app-reduce-2.0" not in specs
    assert "python3" in specs, "the usual kernel is gone"
    assert specs["visa-app-reduce-1.0"]["spec"]["display_name"] == "Reduce 1.0"
    v1_kernel = post(server, "api/kernels", {"name": "visa-app-reduce-1.0"}).json()["id"]
    assert "1.0.0" in run_code(server, v1_kernel, "import essreduce_demo; print(essreduce_demo.__version__)")

    publish(user.catalog, "reduce", {"apps": [reduce_app(version_entry(app_images_built["reduce-1.0"], "supported"),
                                                         version_entry(app_images_built["reduce-2.0"]))]})
    published = time.monotonic()
    wait_until(lambda: "visa-app-reduce-2.0" in kernel_specs(server), 5, "the v2 kernel spec")
    assert time.monotonic() - published < 5
    assert kernel_specs(server)["visa-app-reduce-1.0"]["spec"]["display_name"] == "Reduce 1.0 (supported)"

    v2_kernel = post(server, "api/kernels", {"name": "visa-app-reduce-2.0"}).json()["id"]
    inside = run_code(server, v2_kernel, "import essreduce_demo, os, sys\n"
                                         "print(open('/opt/reduce/VERSION').read().strip(), essreduce_demo.__version__,"
                                         " sys.executable, os.environ['VISA_APP_VERSION'])")
    assert inside.split() == ["2.0", "2.0.0", "/usr/bin/python3", "2.0"]
    home_file = user.home / "from-kernel.txt"
    run_code(server, v2_kernel, f"open({str(home_file)!r}, 'w').write('written inside')")
    assert home_file.read_text() == "written inside", "her home is not bound into the kernel's container"
    # the v1 kernel started before v2 was published still runs v1
    assert "1.0 1.0.0" in run_code(server, v1_kernel, "print(open('/opt/reduce/VERSION').read().strip(), "
                                                      "essreduce_demo.__version__)")

    listing = server.get("visa/api/apps").json()
    assert {(a["ref"], a["kernel_name"], a["default"]) for a in listing["apps"]} == {
        ("reduce@1.0", "visa-app-reduce-1.0", False), ("reduce@2.0", "visa-app-reduce-2.0", True)}

    [record] = user.records.glob("*.json")
    launched = json.loads(record.read_text())["apps"]
    assert {(a["app"], a["version"], a["launches"][0]["how"]) for a in launched} == {
        ("reduce", "1.0", "kernel"), ("reduce", "2.0", "kernel")}


def test_apps_reproduce_through_the_api_starts_the_recorded_kernels(app_images_built, instance):
    server, user = instance
    v1 = app_images_built["reduce-1.0"]
    first = post(server, "api/kernels", {"name": "visa-app-reduce-1.0"}).json()["id"]
    run_code(server, first, "1")
    httpx.delete(server.url + f"api/kernels/{first}", headers={"Authorization": f"token {server.token}"}, timeout=30)
    publish(user.catalog, "reduce", {"apps": [reduce_app(version_entry(v1, "deprecated"),
                                                         version_entry(app_images_built["reduce-2.0"]))]})
    records = server.get("visa/api/apps/records").json()
    [record] = records["records"]
    assert record["apps"] == ["reduce@1.0"] and records["current"] == record["id"]

    answer = post(server, "visa/api/apps/reproduce", {"record": record["id"]})
    assert answer.status_code == 201, answer.text
    [kernel] = answer.json()["kernels"]
    assert kernel["ref"] == "reduce@1.0" and kernel["name"] == "visa-app-reduce-1.0"
    assert "1.0.0" in run_code(server, kernel["id"], "import essreduce_demo; print(essreduce_demo.__version__)")

    missing = post(server, "visa/api/apps/reproduce", {"record": "no-such-record"})
    assert missing.status_code == 409 and "No provenance record 'no-such-record'" in missing.json()["message"]


def test_apps_launch_api_refuses_a_broken_image_naming_it(app_images_built, instance, tmp_path: Path):
    server, user = instance
    broken = tmp_path / "broken.sif"
    broken.write_bytes(b"SIF_MAGIC? no")
    publish(user.catalog, "reduce", {"apps": [reduce_app({"version": "9.9", "image": str(broken),
                                                          "digest": app_images_built["reduce-1.0"].digest})]})
    answer = post(server, "visa/api/apps/launch", {"ref": "reduce@9.9"})
    assert answer.status_code == 400
    assert str(broken) in answer.json()["message"] and "reduce@9.9" in answer.json()["message"]


def test_apps_desktop_entries_follow_the_catalog(app_images_built, instance):
    server, user = instance
    entries = user.home / ".local/share/visa-hub/applications"
    wait_until(lambda: (entries / "visa-app-reduce-1.0.desktop").exists(), 5 + SYNC_SECONDS, "the desktop entry")
    publish(user.catalog, "reduce", {"apps": [reduce_app(version_entry(app_images_built["reduce-2.0"]))]})
    wait_until(lambda: (entries / "visa-app-reduce-2.0.desktop").exists()
               and not (entries / "visa-app-reduce-1.0.desktop").exists(), 5 + SYNC_SECONDS, "the entries to follow")
    text = (entries / "visa-app-reduce-2.0.desktop").read_text()
    assert "Name=Reduce 2.0" in text and "run reduce@2.0" in text and "X-VisaHub-Section=Apps" in text




def test_apps_command_line_of_a_card_runs_in_a_lab_terminal(instance):
    """A command app's launcher card types the listing's command line into a Lab terminal (a login shell)."""
    import websocket

    server, user = instance
    [reduce] = server.get("visa/api/apps").json()["apps"]
    name = post(server, "api/terminals", {}).json()["name"]
    ws = websocket.create_connection(server.ws_url(f"terminals/websocket/{name}"),
                                     header=[f"Authorization: token {server.token}"], timeout=60)
    try:
        ws.send(json.dumps(["stdin", reduce["command_line"] + " version\r"]))
        seen, deadline = "", time.monotonic() + 60
        while "reduce 1.0.0 (image 1.0" not in seen and time.monotonic() < deadline:
            message = json.loads(ws.recv())
            if message[0] == "stdout":
                seen += message[1]
        assert "reduce 1.0.0 (image 1.0, app reduce@1.0)" in seen, seen[-2000:]
    finally:
        ws.close()
        httpx.delete(server.url + f"api/terminals/{name}", headers={"Authorization": f"token {server.token}"},
                     timeout=30)


def test_apps_desktop_app_starts_on_the_desktop_from_its_menu_entry(app_images_built, app_user: AppUser,
                                                                     tmp_path: Path):
    """The desktop's menus list the app versions (section Apps); starting one runs it on the desktop's display.

    Lab's launcher card of a desktop app starts it through the same desktop API.
    """
    import shutil as _shutil

    import websocket
    from conftest import missing_peer

    if _shutil.which("Xvnc") is None:
        missing_peer("Xvnc not installed (scripts/install-desktop.sh)")
    viewer = app_images_built["viewer-1.0"]
    publish(app_user.catalog, "viewer", {"apps": [{"name": "viewer", "title": "Viewer", "kind": "desktop",
                                                   "versions": [version_entry(viewer)]}]})
    runtime = tmp_path / "rt"
    runtime.mkdir()
    server = start_instance_server(tmp_path / "server", app_user, args=(f"--VisaDesktop.runtime_dir={runtime}",))
    api = "visa/api/desktop/applications"
    try:
        def listed():
            return next((a for a in server.get(api).json()["applications"] if a["id"] == "visa-app-viewer-1.0"),
                        None)

        entry = wait_until(listed, 15, "the viewer in the desktop's applications")
        assert (entry["name"], entry["section"], entry["terminal"]) == ("Viewer 1.0", "Apps", False)
        ws = websocket.create_connection(server.ws_url("visa-desktop/"), subprotocols=["binary"], timeout=30,
                                         header=[f"Authorization: token {server.token}"])
        try:
            assert ws.recv()[:4] == b"RFB "
            private = next(runtime.glob("visa-desktop-*"))
            display = wait_until(lambda: (private / "display").exists() and (private / "display").read_text().strip(),
                                 30, "the desktop's display")
            started = post(server, api + "/visa-app-viewer-1.0", {})
            assert started.status_code == 202, started.text
            log = app_user.home / "viewer.log"
            wait_until(lambda: log.exists() and log.read_text(), 60, "the viewer to start")
            assert log.read_text() == f"viewer 1.0 on display {display} args \n"
        finally:
            ws.close()
    finally:
        server.stop()
    [record] = app_user.records.glob("*.json")
    assert [(a["app"], a["version"]) for a in json.loads(record.read_text())["apps"]] == [("viewer", "1.0")]
