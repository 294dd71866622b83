"""``visa_desktop_viewers``: what an instance counts, when it tells the hub, and what a scrape of the hub counts.

No hub and no instance here: the instance's :class:`SharingState` with stand-in websockets, the reporter with a
stand-in of HubAuth's call and a clock of its own, the hub's collector over hub-like users and spawners. The
real thing end to end (a hub, an instance, two browsers) is tests/integration/test_ops_desktop_viewers.py.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from types import SimpleNamespace

import pytest
from test_sharing_presence import ALICE, BOB, GUS, FakeSocket, make_state

from visa_hub import metrics
from visa_hub.singleuser.sharing.viewers import FIRST_RETRY, DesktopViewersReporter

T1 = dt.datetime(2026, 11, 27, 9, 0)
T2 = dt.datetime(2026, 11, 27, 10, 0)


@pytest.fixture(autouse=True)
def no_reports():
    metrics._desktop_viewers.clear()
    yield
    metrics._desktop_viewers.clear()


# ----------------------------------------------------------------------------------------- the instance counts


def test_ops_desktop_viewers_counted_per_person_and_role_on_the_instance():
    state, _clock = make_state(owner_away="open")
    alice_desktop, alice_lab = FakeSocket(), FakeSocket()
    bob_desktop, bob_second_tab, bob_lab = FakeSocket(), FakeSocket(), FakeSocket()
    gus_view = FakeSocket()
    olga = {"name": "olga", "kind": "user", "scopes": []}  # no share: no role, never counted
    for socket, model, kind in ((alice_desktop, ALICE, "desktop"), (alice_lab, ALICE, "lab"),
                                (bob_desktop, BOB, "desktop"), (bob_second_tab, BOB, "desktop"),
                                (bob_lab, BOB, "lab"), (gus_view, GUS, "desktop-view"),
                                (FakeSocket(), olga, "desktop-view")):
        state.register(socket, model, kind)
    state.look()
    assert state.desktop_viewers() == {"owner": 1, "collaborator": 1, "guest": 1}

    bob_desktop._on_close_called = True  # one of his two desktop tabs closes: he is still there
    state.look()
    assert state.desktop_viewers() == {"owner": 1, "collaborator": 1, "guest": 1}
    bob_second_tab._on_close_called = True  # the other one too; his Lab stays open
    gus_view._on_close_called = True
    state.look()
    assert state.desktop_viewers() == {"owner": 1}
    alice_desktop._on_close_called = True
    state.look()
    assert state.desktop_viewers() == {}


def test_ops_desktop_viewers_a_connection_being_closed_is_not_counted():
    state, clock = make_state(owner_away="disconnect")
    alice, bob = FakeSocket(), FakeSocket()
    state.register(alice, ALICE, "desktop")
    state.register(bob, BOB, "desktop")
    state.look()
    assert state.desktop_viewers() == {"owner": 1, "collaborator": 1}
    alice._on_close_called = True  # she leaves: after the grace, bob's desktop is being closed
    clock.now += 10
    state.look()
    assert bob.closed_with is not None
    assert state.desktop_viewers() == {}


# ----------------------------------------------------------------------------------------- the instance reports


class HubAuthStandIn:
    """What the reporter uses of HubAuth: the hub's API URL and its ``_api_request`` (answers or fails)."""

    api_url = "http://127.0.0.1:8081/hub/api"

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.urls: list[str] = []
        self.fail = False

    async def _api_request(self, method: str, url: str, **kwargs) -> dict:
        assert method == "POST" and kwargs["headers"]["Content-Type"] == "application/json"
        self.urls.append(url)
        body = json.loads(kwargs.get("data") or kwargs["body"])
        self.bodies.append(body)
        if self.fail:
            raise OSError("hub unreachable")
        return body


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def note(reporter: DesktopViewersReporter, viewers: dict) -> bool:
    """One look's worth: whether a report was sent (waited for)."""
    task = reporter.note(viewers)
    if task is not None:
        await task
    return task is not None


async def test_ops_desktop_viewers_reported_on_change_and_retried_with_backoff():
    hub, clock = HubAuthStandIn(), Clock()
    reporter = DesktopViewersReporter(hub_auth=hub, owner="al ice", server_name="gpu", clock=clock,
                                      log=logging.getLogger("test"), refresh_interval=300)
    assert not await note(reporter, {})  # nobody, and the hub counts nobody of ours: nothing to say
    assert await note(reporter, {"owner": 1})
    assert hub.urls == ["http://127.0.0.1:8081/hub/api/visa/desktop-viewers/al%20ice/gpu"]
    for _ in range(5):  # every look while nothing changes: no call
        clock.now += 1
        assert not await note(reporter, {"owner": 1})
    assert await note(reporter, {"owner": 1, "collaborator": 1, "guest": 0})
    assert hub.bodies == [{"viewers": {"owner": 1}}, {"viewers": {"owner": 1, "collaborator": 1}}]

    hub.fail = True  # the hub is away: the change is sent again after 2 s, 4 s, 8 s... not at every look
    assert await note(reporter, {"owner": 1})
    clock.now += FIRST_RETRY - 0.5
    assert not await note(reporter, {"owner": 1})
    clock.now += 0.5
    assert await note(reporter, {"owner": 1})
    clock.now += FIRST_RETRY * 2 - 0.5
    assert not await note(reporter, {"owner": 1})
    clock.now += 0.5
    hub.fail = False
    assert await note(reporter, {"owner": 1})
    assert reporter.sent == {"owner": 1}
    clock.now += 1
    assert not await note(reporter, {"owner": 1})  # back to sending changes only

    hub.fail = True  # she leaves while the hub is away: the hub hears it once it answers again
    assert await note(reporter, {})
    hub.fail = False
    clock.now += FIRST_RETRY
    assert await note(reporter, {})
    assert hub.bodies[-1] == {"viewers": {}} and reporter.sent == {}


async def test_ops_desktop_viewers_sent_again_after_the_refresh_interval_only_while_someone_is_there():
    hub, clock = HubAuthStandIn(), Clock()
    reporter = DesktopViewersReporter(hub_auth=hub, owner="alice", server_name="", clock=clock,
                                      log=logging.getLogger("test"), refresh_interval=300)
    assert await note(reporter, {"guest": 2})
    clock.now += 299
    assert not await note(reporter, {"guest": 2})
    clock.now += 1
    assert await note(reporter, {"guest": 2})  # a restarted hub gets them back
    assert hub.urls[-1].endswith("/visa/desktop-viewers/alice/")
    assert await note(reporter, {})
    clock.now += 3600
    assert not await note(reporter, {})  # zero is what a hub that forgot has anyway


async def test_ops_desktop_viewers_one_report_at_a_time():
    release = asyncio.Event()

    class SlowHub(HubAuthStandIn):
        async def _api_request(self, method, url, **kwargs):
            await release.wait()
            return await super()._api_request(method, url, **kwargs)

    hub = SlowHub()
    reporter = DesktopViewersReporter(hub_auth=hub, owner="alice", server_name="", clock=Clock(),
                                      log=logging.getLogger("test"))
    first = reporter.note({"owner": 1})
    assert first is not None and reporter.note({"owner": 1, "guest": 1}) is None  # still sending
    release.set()
    await first
    assert await note(reporter, {"owner": 1, "guest": 1})
    assert [b["viewers"] for b in hub.bodies] == [{"owner": 1}, {"owner": 1, "guest": 1}]


# ----------------------------------------------------------------------------------------- the hub counts


class Spawner:
    def __init__(self, name: str, started, pending=None, ready=True):
        self.name, self.pending, self.ready = name, pending, ready
        self.user_options = {"experiment": "LOKI-2026-042"}
        self.session_summary = {}
        self.orm_spawner = SimpleNamespace(started=started)


def hub(*users) -> SimpleNamespace:
    db = SimpleNamespace(query=lambda _model: SimpleNamespace(all=lambda: []))
    return SimpleNamespace(users={i: u for i, u in enumerate(users)}, db=db)


def user(name: str, *spawners: Spawner) -> SimpleNamespace:
    return SimpleNamespace(name=name, spawners={s.name: s for s in spawners})


def scrape(app) -> dict[str, float]:
    families = {f.name: f for f in metrics.HubStateCollector(lambda: app).collect()}
    return {s.labels["role"]: s.value for s in families["visa_desktop_viewers"].samples}


def test_ops_desktop_viewers_scrape_counts_only_running_instances_of_the_run_that_reported():
    metrics.set_desktop_viewers("alice", "", {"owner": 1, "collaborator": 2}, run=T1)
    metrics.set_desktop_viewers("alice", "gpu", {"guest": 3}, run=T1)
    metrics.set_desktop_viewers("bob", "", {"owner": 1, "support": 1}, run=T1)
    metrics.set_desktop_viewers("carl", "", {"owner": 1}, run=T1)
    metrics.set_desktop_viewers("dora", "", {"owner": 1}, run=T1)
    alice_gpu = Spawner("gpu", T1, pending="spawn", ready=False)
    app = hub(
        user("alice", Spawner("", T1), alice_gpu),
        user("bob", Spawner("", T2)),  # restarted since it reported: that report was of its last run
        user("carl", Spawner("", None, ready=False)),  # stopped (or crashed, and the hub saw it) without a word
        # dora: no longer in the hub at all
    )
    assert scrape(app) == {"owner": 1, "collaborator": 2, "support": 0, "guest": 0}
    # the reports of instances that are gone, or of an earlier run, are forgotten; a starting one is kept
    assert set(metrics._desktop_viewers) == {("alice", ""), ("alice", "gpu")}
    alice_gpu.pending, alice_gpu.ready = None, True
    assert scrape(app) == {"owner": 1, "collaborator": 2, "support": 0, "guest": 3}
    alice_gpu.pending, alice_gpu.ready = "stop", False  # being stopped: its people are leaving
    assert scrape(app) == {"owner": 1, "collaborator": 2, "support": 0, "guest": 0}

    metrics.set_desktop_viewers("alice", "", {"owner": 1, "collaborator": 0}, run=T1)  # a report replaces
    assert scrape(app)["collaborator"] == 0
    metrics.set_desktop_viewers("alice", "", {}, run=T1)
    assert ("alice", "") not in metrics._desktop_viewers
    assert scrape(hub()) == {"owner": 0, "collaborator": 0, "support": 0, "guest": 0}


@pytest.mark.parametrize("viewers, message", [
    ({"admin": 1}, "unknown role 'admin'"),
    ({"owner": -1}, "from 0 to 10000"),
    ({"guest": 10_001}, "from 0 to 10000"),
    ({"guest": 1.5}, "not 1.5"),
    ({"guest": "2"}, "not '2'"),
    ({"owner": True}, "not True"),
])
def test_ops_desktop_viewers_bad_reports_are_refused_and_change_nothing(viewers, message):
    metrics.set_desktop_viewers("alice", "", {"owner": 1}, run=T1)
    with pytest.raises(ValueError, match=message):
        metrics.set_desktop_viewers("alice", "", {"collaborator": 1, **viewers}, run=T1)
    assert metrics._desktop_viewers[("alice", "")].viewers == {"owner": 1}
