"""The hub keeps a copy of every session's provenance record: a real hub, alice's instance, bob kept out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from apps_support import publish, reduce_app, version_entry
from hubtest import UserSession, wait_until

pytestmark = pytest.mark.integration


def hub_records(session: UserSession, user: str) -> list[dict]:
    response = session.http.get(f"/hub/api/visa/provenance/{user}", headers=session._hub_xsrf())
    response.raise_for_status()
    return response.json()["records"]


def test_apps_provenance_reaches_the_hub_and_only_for_its_owner(app_images_built, start_hub, tmp_path: Path):
    catalog = tmp_path / "catalog"
    mytool = app_images_built["mytool-0.1"]
    publish(catalog, "site", {"apps": [reduce_app(version_entry(app_images_built["reduce-1.0"])),
                                       {"name": "mytool", "title": "My tool", "kind": "command",
                                        "versions": [version_entry(mytool)]}]})
    hub = start_hub(VISA_APPS_CATALOG=str(catalog), VISA_APPS_RUNTIME="local")
    alice, bob = UserSession(hub, "alice"), UserSession(hub, "bob")
    try:
        alice.login()
        alice.submit_spawn_form(experiment="LOKI-2026-042")
        alice.wait_ready()
        # every session has a record at once, on the hub too
        [record] = wait_until(lambda: hub_records(alice, "alice"), 20, "alice's record on the hub")
        assert record["experiment"] == "LOKI-2026-042" and record["apps"] == []

        assert alice.lab().status_code == 200  # Lab sets the server's XSRF cookie
        launched = alice.http.post("/user/alice/visa/api/apps/launch", json={"ref": "mytool@0.1", "args": ["hi"]},
                                   headers=alice._server_xsrf())
        assert launched.status_code == 201, launched.text
        wait_until(lambda: hub_records(alice, "alice")[0]["apps"] == ["mytool@0.1"], 20, "the launch on the hub")
        copy = alice.http.get(f"/hub/api/visa/provenance/alice/{record['id']}", headers=alice._hub_xsrf()).json()
        assert copy["apps"][0]["digest"] == mytool.digest and copy["session"]["instance_image"]
        home = hub.data_dir / "homes" / "alice"
        wait_until(lambda: (home / "mytool-out.txt").exists(), 20, "mytool to run in alice's instance")
        assert json.loads(next((home / ".local/share/visa-hub/provenance").glob("*.json")).read_text()) == copy

        bob.login()
        # JupyterHub answers 404 for another user's resources (it does not say whether they exist)
        assert bob.http.get("/hub/api/visa/provenance/alice", headers=bob._hub_xsrf()).status_code == 404
        forged = dict(copy, apps=[])
        refused = bob.http.post(f"/hub/api/visa/provenance/alice/{record['id']}", json=forged,
                                headers=bob._hub_xsrf())
        assert refused.status_code == 404
        assert hub_records(alice, "alice")[0]["apps"] == ["mytool@0.1"]
    finally:
        alice.close()
        bob.close()
        shutil.rmtree(tmp_path / "catalog", ignore_errors=True)
