"""``visa_desktop_viewers`` on the hub's ``/hub/metrics`` follows the people on an instance's desktop, by role.

A real hub (visa-hub's config, the local backend), a real instance with its desktop (TigerVNC behind the desktop
proxy) and two people in two browser contexts of Debian's Chromium; shares are granted through the hub's REST
API as the sessions service grants them. ``/hub/metrics`` is scraped with a service token holding
``read:metrics`` and parsed with prometheus_client's own parser. The refusals use the real server tokens the
hub gave the instances (read from the instances' environment, as the instance itself reads it).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from hubpages import log_in, start_default_instance
from hubtest import HubProcess, UserSession, instance_processes, process_environ, wait_until
from sharing_support import sharing_hub

pytestmark = pytest.mark.integration

CONFIG = Path(__file__).with_name("ops_viewers_hub_config.py")
DESKTOP = ".visa-desktop"
EXPERIMENT = "LOKI-2026-042"
NOBODY = {"owner": 0.0, "collaborator": 0.0, "support": 0.0, "guest": 0.0}


def desktop_viewers(hub: HubProcess, token: str) -> dict[str, float]:
    """``visa_desktop_viewers`` by role, as Prometheus would scrape it."""
    response = httpx.get(f"{hub.url}/hub/metrics", headers={"Authorization": f"token {token}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {sample.labels["role"]: sample.value for family in text_string_to_metric_families(response.text)
            if family.name == "visa_desktop_viewers" for sample in family.samples}


def wait_for_viewers(hub: HubProcess, token: str, expected: dict[str, float], what: str) -> None:
    expected = {**NOBODY, **expected}
    wait_until(lambda: desktop_viewers(hub, token) == expected, 60, f"{what}: {expected}", interval=0.5)


def instance_pids(hub: HubProcess, owner: str) -> list[int]:
    """The processes of ``owner``'s default instance (its server, the desktop, ...)."""
    return [pid for pid in instance_processes(hub.data_dir, "")
            if process_environ(pid).get("JUPYTERHUB_USER") == owner]


def server_token(hub: HubProcess, owner: str) -> str:
    """The API token the hub gave ``owner``'s default instance (``$JUPYTERHUB_API_TOKEN`` of its server)."""
    tokens = {process_environ(pid).get("JUPYTERHUB_API_TOKEN") for pid in instance_pids(hub, owner)} - {None}
    assert len(tokens) == 1, tokens
    return tokens.pop()


def open_desktop(page, hub: HubProcess) -> None:
    page.goto(f"{hub.url}/user/alice/lab?visa-open=desktop")
    page.wait_for_load_state()
    if "/oauth2/authorize" in page.url:  # JupyterHub asks once before another user's server may identify you
        page.click("form button[type=submit]")
    page.wait_for_selector(f"{DESKTOP}[data-state=connected]", timeout=90_000)


@pytest.mark.e2e
def test_ops_desktop_viewers_follow_owner_and_collaborator_on_the_desktop(browser, tmp_path):
    metrics_token = secrets.token_hex(16)
    with sharing_hub(tmp_path / "data", config_file=CONFIG, VISA_TEST_METRICS_TOKEN=metrics_token) as (hub, sharer):
        alice = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        alice.set_default_timeout(30_000)
        start_default_instance(alice, hub, "alice")
        alice.wait_for_selector(".jp-Launcher", timeout=60_000)
        assert desktop_viewers(hub, metrics_token) == NOBODY  # her Lab is open, her desktop is not

        open_desktop(alice, hub)
        wait_for_viewers(hub, metrics_token, {"owner": 1}, "alice on her desktop")

        bob = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        bob.set_default_timeout(30_000)
        log_in(bob, hub, "bob")
        sharer.grant("alice", "bob", "collaborator")
        open_desktop(bob, hub)
        wait_for_viewers(hub, metrics_token, {"owner": 1, "collaborator": 1}, "alice and bob on her desktop")

        bob.context.close()  # bob closes his browser
        wait_for_viewers(hub, metrics_token, {"owner": 1}, "bob gone, alice still there")

        # her instance dies (no chance to say goodbye) while she is on its desktop: the hub notices, and no
        # longer counts her, although the instance never reported that she left
        pids = instance_pids(hub, "alice")
        assert pids
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_for_viewers(hub, metrics_token, {}, "her instance gone")
        alice.context.close()


def test_ops_desktop_viewers_only_the_server_itself_reports(tmp_path):
    metrics_token = secrets.token_hex(16)
    with sharing_hub(tmp_path / "data", config_file=CONFIG, VISA_TEST_METRICS_TOKEN=metrics_token) as (hub, sharer):
        people = {name: UserSession(hub, name) for name in ("alice", "bob")}
        for person in people.values():
            assert person.login().status_code == 200
            person.submit_spawn_form(experiment=EXPERIMENT)
        for person in people.values():
            person.wait_ready()
        alice_token, bob_token = server_token(hub, "alice"), server_token(hub, "bob")
        api = httpx.Client(base_url=f"{hub.url}/hub/api/visa/desktop-viewers/", timeout=10)

        def report(token: str | None, instance: str, **kwargs) -> httpx.Response:
            headers = {"Authorization": f"token {token}"} if token else {}
            return api.post(instance, headers=headers, **kwargs)

        # each server reports for itself
        accepted = report(alice_token, "alice/", json={"viewers": {"owner": 1, "guest": 2}})
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"viewers": {"owner": 1, "guest": 2}}
        assert report(bob_token, "bob/", json={"viewers": {"support": 1}}).status_code == 200
        reported = {**NOBODY, "owner": 1, "guest": 2, "support": 1}
        assert desktop_viewers(hub, metrics_token) == reported

        # alice's server may not speak for bob's: JupyterHub's own answer to a token that has the scope for someone
        # else (as on its activity API), which does not even say whether bob has such a server
        for_bob = report(alice_token, "bob/", json={"viewers": {"owner": 0, "guest": 5}})
        assert for_bob.status_code == 404 and "No access" in for_bob.json()["message"], for_bob.text
        # nor for a server of hers that it is not
        other = report(alice_token, "alice/gpu", json={"viewers": {"guest": 5}})
        assert other.status_code == 403 and "Only the server alice/gpu itself" in other.json()["message"], other.text
        # bob, a collaborator on alice's server (he may use it), may not set its numbers with his own login
        sharer.grant("alice", "bob", "collaborator")
        as_bob = people["bob"].http.post("/hub/api/visa/desktop-viewers/alice/", headers=people["bob"]._hub_xsrf(),
                                         json={"viewers": {"collaborator": 9}})
        assert as_bob.status_code == 404 and "No access" in as_bob.json()["message"], as_bob.text
        assert report(None, "alice/", json={"viewers": {"guest": 5}}).status_code == 403  # no token at all
        assert report("not-a-token", "alice/", json={"viewers": {"guest": 5}}).status_code == 403

        # malformed reports: 400 (413 when too large), with a message that says what to send
        for body, message in [
            (b"{not json", "Invalid JSON"),
            (b"[1, 2]", '{"viewers": {"<role>": <people>'),
            (b'{"viewers": {"owner": 1}, "server_name": "bob"}', '{"viewers": {"<role>": <people>'),
            (b'{"viewers": [1]}', '{"viewers": {"<role>": <people>'),
            (b'{"viewers": {"admin": 1}}', "unknown role 'admin'"),
            (b'{"viewers": {"guest": -3}}', "whole number from 0 to 10000"),
            (b'{"viewers": {"guest": "many"}}', "whole number from 0 to 10000"),
        ]:
            refused = report(alice_token, "alice/", content=body)
            assert refused.status_code == 400, (body, refused.text)
            assert message in refused.json()["message"], (body, refused.json())
        too_large = report(alice_token, "alice/", content=b'{"viewers": {}, "pad": "' + b"x" * 2000 + b'"}')
        assert too_large.status_code == 413 and "larger than 1024 bytes" in too_large.json()["message"]
        assert desktop_viewers(hub, metrics_token) == reported  # nothing refused changed anything

        # bob stops his instance: its report stops counting, and its token no longer reports
        people["bob"].stop_server()
        assert desktop_viewers(hub, metrics_token) == {**reported, "support": 0}
        assert report(bob_token, "bob/", json={"viewers": {"support": 1}}).status_code == 403
        api.close()
        for person in people.values():
            person.close()
        assert alice_token not in hub.log_text() and bob_token not in hub.log_text()
