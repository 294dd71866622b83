"""Lifetimes end to end on the local backend: a real hub, its sessions service, a real SMTP server (aiosmtpd).

The test catalog gives instances 3 minutes with warnings 2 and 1 minutes before the end; extensions of a
minute are immediate up to 5 minutes in all, longer ones need an admin (olga). Nothing is mocked: the service
runs as the hub's managed service, mails go through STARTTLS with a login, the instance is a real process.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import httpx
import pytest

from hubtest import HubProcess, wait_until
from lifetime_support import EXPERIMENT, ServiceClient, expires, lifetime_hub, login, relaunch_link, smtp  # noqa: F401

pytestmark = pytest.mark.integration


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def server_pid(hub: HubProcess, user: str) -> int:
    """The instance's process id, from the hub's database (the local spawner's state)."""
    import json
    import sqlite3

    with sqlite3.connect(hub.data_dir / "jupyterhub.sqlite") as db:
        row = db.execute("select spawners.state from spawners join users on users.id = spawners.user_id "
                         "where users.name = ? and spawners.name = ''", (user,)).fetchone()
    return int(json.loads(row[0])["pid"])


def test_lifetime_warning_mail_extension_request_expiry_and_relaunch(lifetime_hub, smtp):  # noqa: F811
    hub = lifetime_hub()
    alice, olga = login(hub, "alice"), login(hub, "olga")
    response = alice.submit_spawn_form(experiment=EXPERIMENT, flavour="small", lifetime_hours="0.05")
    assert response.status_code == 200, response.text[:1000]
    model = alice.wait_ready()
    options = model["user_options"]
    assert alice.lab().status_code == 200
    assert alice.put_file("kept.txt", "analysis notes").status_code in (200, 201)
    pid = server_pid(hub, "alice")

    service, admin = ServiceClient(alice), ServiceClient(olga)
    first = service.wait_instance("alice")
    started = dt.datetime.fromisoformat(first["started"])
    assert abs((expires(first) - started).total_seconds() - 180) < 10
    assert first["level"] == 0 and first["warnings"] == []

    # 2 minutes before the end: the first warning, in the API and by e-mail with a working relaunch link
    view = wait_until(lambda: (v := service.instance("alice"))["level"] >= 1 and v, 90, "the first warning")
    assert view["level"] == 1 and view["warnings"][0]["kind"] == "expiry"
    mails = wait_until(lambda: smtp.received("alice@example.org", "stops in"), 30, "the warning e-mail")
    assert len(mails) == 1 and smtp.logins, "the mailer logs in over STARTTLS"
    body = mails[0].get_content()
    assert EXPERIMENT in mails[0]["Subject"] and "Your files" in body
    link = relaunch_link(body)

    # within the rules: +1 minute at once
    before = expires(view)
    result = service.post("api/instances/alice//extend", {"hours": 1 / 60})
    assert result["status"] == "extended"
    assert (expires(service.instance("alice")) - before).total_seconds() == pytest.approx(60, abs=1)

    # beyond the rules: a request (a comment is required), admins are e-mailed, one pending at a time
    no_comment = service.post("api/instances/alice//extend", {"hours": 0.2}, expect=400)
    assert "approval" in no_comment["message"]
    pending = service.post("api/instances/alice//extend", {"hours": 0.2, "comment": "beam time data"})
    assert pending["status"] == "pending"
    again = service.post("api/instances/alice//extend", {"hours": 0.2, "comment": "again"}, expect=409)
    assert "one pending request" in again["message"]
    wait_until(lambda: smtp.received("olga@ess.example.org", "Extension request"), 30, "the admins' e-mail")
    assert service.post(f"api/requests/{pending['request']['id']}", {"decision": "accept"}, expect=403)

    # the admin approves: the expiry moves, the owner is told (API answers for Lab, and e-mail)
    before = expires(service.instance("alice"))
    requests = admin.get("api/requests")["requests"]
    assert [r["comment"] for r in requests] == ["beam time data"]
    admin.post(f"api/requests/{requests[0]['id']}", {"decision": "accept", "answer": "granted for the run"})
    after = service.instance("alice")
    assert (expires(after) - before).total_seconds() == pytest.approx(0.2 * 3600, abs=1)
    assert after["answers"][0]["status"] == "accepted" and after["answers"][0]["answer"] == "granted for the run"
    wait_until(lambda: smtp.received("alice@example.org", "was accepted"), 30, "the owner's answer e-mail")

    # refused: the expiry does not move, the owner is told
    before = expires(after)
    refused = service.post("api/instances/alice//extend", {"hours": 0.2, "comment": "even longer"})
    admin.post(f"api/requests/{refused['request']['id']}", {"decision": "refuse", "answer": "not this time"})
    view = service.instance("alice")
    assert expires(view) == before and view["extension"]["pending"] is None
    assert {a["status"] for a in view["answers"]} == {"accepted", "refused"}
    wait_until(lambda: smtp.received("alice@example.org", "was refused"), 30, "the refusal e-mail")

    # the admin page lists it; the admin shortens it to 20 s from now: at expiry it stops and its process is gone
    page = olga.http.get("/services/visa-sessions/admin")  # the operator console, one page for operators
    assert page.status_code == 200 and page.url.path == "/hub/visa/ops" and "visa-ops-instances" in page.text
    everyone = admin.get("api/instances?all=1")["instances"]
    assert [(i["user"], i["experiment"], i["backend"]) for i in everyone] == [("alice", EXPERIMENT, "local")]
    assert service.get("api/instances?all=1")["instances"] == service.get("api/instances")["instances"]
    end = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
    admin.post("api/instances/alice//expiry", {"expires_at": end.isoformat()})
    wait_until(lambda: not alice.server_model(), 60, "the instance to stop at its expiry")
    stopped_at = dt.datetime.now(dt.UTC)
    assert stopped_at >= end - dt.timedelta(seconds=1)
    assert (stopped_at - end).total_seconds() < 15, "stopped on time"
    wait_until(lambda: not pid_alive(pid), 15, "the instance's process to be gone")
    stopped = wait_until(lambda: smtp.received("alice@example.org", "has stopped"), 30, "the 'stopped' e-mail")
    assert relaunch_link(stopped[0].get_content()) == link

    # the spawn page offers "Relaunch with the same settings" first; the e-mail's relaunch link starts the same
    # instance again, with the same options and the same files
    form = alice.spawn_form().text
    assert form.index('id="visa-relaunch-button"') < form.index('name="experiment"')
    response = alice.http.get(link.replace(hub.url, ""))
    assert response.status_code == 200, response.text[:1000]
    again_model = alice.wait_ready()
    assert again_model["user_options"] == options
    assert alice.lab().status_code == 200
    assert alice.get_file("kept.txt").json()["content"] == "analysis notes"
    audit = [e["action"] for e in admin.get("api/audit?user=alice")["events"]]
    for action in ("warning-expiry", "extend", "extension-requested", "extension-accepted", "extension-refused",
                   "shorten-admin", "stop", "instance-ended"):
        assert action in audit
    assert httpx.get(hub.url + "/services/visa-sessions/api/instances").status_code in (302, 403)
