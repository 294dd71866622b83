"""The sessions service's pass over the hub's servers, right after a hub restart.

JupyterHub re-checks every server when it starts again; until it has, a server is listed but not ready. The
service took such an instance for ended: her Lab lost its countdown and "Extend" ("no running instance known")
for good. The hub here is a stand-in for its REST API's user list (what ``HubAPI.request`` returns).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from visa_hub.catalog import load_catalog
from visa_hub.demo import DEMO_CATALOG
from visa_hub.sessions import db as models
from visa_hub.sessions.backends import SlurmLimits
from visa_hub.sessions.hubapi import HubAPI
from visa_hub.sessions.mailer import VisaMailer
from visa_hub.sessions.service import Sessions

STARTED = dt.datetime(2026, 11, 28, 9, 0, tzinfo=dt.UTC)


class HubUserList(HubAPI):
    """The hub's ``GET users?state=…``: alice's default server, ready, being re-checked, or gone."""

    def __init__(self) -> None:
        self.server: str | None = "ready"  # "ready", "check" (pending, not ready) or None (gone)

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        assert method == "GET" and path.startswith("users?"), path
        if self.server is None or ("state=ready" in path and self.server != "ready"):
            return {"items": [], "_pagination": {}}
        model = {"started": STARTED.isoformat(), "ready": self.server == "ready",
                 "pending": None if self.server == "ready" else "check", "last_activity": None,
                 "user_options": {"experiment": "LOKI-2026-042"},
                 "state": {"pid": 4242, "visa_session": {"experiment": {"code": "LOKI-2026-042"},
                                                         "instrument": "LoKI",
                                                         "expires_at": (STARTED + dt.timedelta(hours=8)).isoformat()}}}
        return {"items": [{"name": "alice", "servers": {"": model}}], "_pagination": {}}


def sessions_with(hub: HubUserList) -> Sessions:
    catalog = load_catalog(DEMO_CATALOG)
    return Sessions(db=models.open_database("sqlite://"), hub=hub, mailer=VisaMailer(), slurm=SlurmLimits(),
                    catalog=lambda: catalog, user_office=None, public_url="http://hub.example",
                    service_prefix="/services/visa-sessions/", admin_emails=[],
                    clock=lambda: STARTED + dt.timedelta(hours=1))


def test_lifetime_an_instance_re_checked_after_a_hub_restart_keeps_its_lifetime() -> None:
    hub = HubUserList()
    sessions = sessions_with(hub)
    asyncio.run(sessions.tick())
    followed = models.find_instance(sessions.db, "alice", "")
    assert followed is not None and followed.experiment == "LOKI-2026-042"

    hub.server = "check"  # the hub restarted and re-checks her server
    asyncio.run(sessions.tick())
    assert models.find_instance(sessions.db, "alice", "") is not None  # still hers, expiry and all
    assert [e.action for e in sessions.db.query(models.AuditEvent)].count("instance-ended") == 0

    hub.server = "ready"
    asyncio.run(sessions.tick())
    assert models.find_instance(sessions.db, "alice", "").expires_at == STARTED + dt.timedelta(hours=8)

    hub.server = None  # stopped: now it has ended
    asyncio.run(sessions.tick())
    assert models.find_instance(sessions.db, "alice", "") is None
    assert [e.action for e in sessions.db.query(models.AuditEvent)].count("instance-ended") == 1


def test_lifetime_an_instance_taken_for_ended_resumes_when_the_hub_has_it_again() -> None:
    """A service that missed it for a moment (its database says ended) follows it again once it is ready."""
    hub = HubUserList()
    sessions = sessions_with(hub)
    asyncio.run(sessions.tick())
    hub.server = None
    asyncio.run(sessions.tick())
    assert models.find_instance(sessions.db, "alice", "") is None

    hub.server = "ready"  # the same run (same start time) is back
    asyncio.run(sessions.tick())
    resumed = models.find_instance(sessions.db, "alice", "")
    assert resumed is not None and resumed.stop_reason is None
    assert "instance-resumed" in [e.action for e in sessions.db.query(models.AuditEvent)]
