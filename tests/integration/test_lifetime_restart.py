"""The hub (and with it the sessions service it manages) restarted in the middle of an instance's life: the
instance keeps running, its second warning comes once, the first is not sent again, and it stops on time.
"""

from __future__ import annotations

import datetime as dt

import pytest

from hubtest import wait_until
from lifetime_support import EXPERIMENT, ServiceClient, expires, lifetime_hub, login, smtp  # noqa: F401

pytestmark = pytest.mark.integration


def test_lifetime_hub_and_service_restart_mid_lifetime(lifetime_hub, smtp):  # noqa: F811
    hub = lifetime_hub(keep_servers=True)
    alice = login(hub, "alice")
    response = alice.submit_spawn_form(experiment=EXPERIMENT, flavour="small", lifetime_hours="0.05")
    assert response.status_code == 200, response.text[:1000]
    alice.wait_ready()
    end = expires(ServiceClient(alice).wait_instance("alice"))
    first = wait_until(lambda: smtp.received("alice@example.org", "stops in"), 100, "the first warning e-mail")
    assert len(first) == 1

    hub.restart()
    assert hub.log_text().count("Starting managed service visa-sessions") == 2
    alice = login(hub, "alice")
    view = ServiceClient(alice).wait_instance("alice")
    assert alice.server_model().get("ready"), "the instance survived the restart"
    assert expires(view) == end and view["level"] == 1

    wait_until(lambda: len(smtp.received("alice@example.org", "stops in")) >= 2, 90, "the second warning e-mail")
    wait_until(lambda: not alice.server_model(), end.timestamp() - dt.datetime.now(dt.UTC).timestamp() + 30,
               "the instance to stop at its expiry")
    late = (dt.datetime.now(dt.UTC) - end).total_seconds()
    assert -1 < late < 15, f"stopped {late:.1f} s after its expiry"
    warnings = smtp.received("alice@example.org", "stops in")
    assert len(warnings) == 2, [m["Subject"] for m in warnings]  # one per threshold, none twice
    wait_until(lambda: smtp.received("alice@example.org", "has stopped"), 30, "the 'stopped' e-mail")
    assert len(smtp.received("alice@example.org", "has stopped")) == 1
