"""The instance's memory of who is connected: owner presence with a grace, and what is closed when."""

from __future__ import annotations

import logging
from types import SimpleNamespace

from visa_hub.singleuser.sharing.state import SharingState


class FakeSocket:
    """What SharingState reads of a tornado websocket handler, and what it does to it."""

    def __init__(self) -> None:
        self.ws_connection = object()
        self._on_close_called = False
        self.closed_with: str | None = None

    def get_status(self) -> int:
        return 101

    def close(self, code: int, reason: str) -> None:
        self.closed_with = reason
        self._on_close_called = True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make_state(owner_away: str = "lock") -> tuple[SharingState, Clock]:
    clock = Clock()
    config = SimpleNamespace(owner_away=owner_away, unrestricted=False, away_grace=3.0, hub_cache_seconds=5.0)
    state = SharingState(owner="alice", server_name="", config=config, hub_auth=None,
                         log=logging.getLogger("test"), clock=clock)
    state.shares = {"bob": "collaborator", "gus": "guest"}
    return state, clock


ALICE = {"name": "alice", "kind": "user", "scopes": []}
BOB = {"name": "bob", "kind": "user", "scopes": []}
GUS = {"name": "gus", "kind": "user", "scopes": []}


def test_sharing_presence_owner_away_after_grace_locks_members_then_returns():
    state, clock = make_state()
    alice_tab, bob_desktop, bob_kernel = FakeSocket(), FakeSocket(), FakeSocket()
    state.register(alice_tab, ALICE, "lab")
    state.look()
    assert state.owner_present
    state.register(bob_desktop, BOB, "desktop")
    state.register(bob_kernel, BOB, "lab")
    state.look()
    assert [p["name"] for p in state.connected()] == ["alice", "bob"]
    assert bob_desktop.closed_with is None

    alice_tab._on_close_called = True  # her last tab closes: a reload gets the grace period
    clock.now += 2
    state.look()
    assert state.owner_present and bob_desktop.closed_with is None
    clock.now += 2
    state.look()
    assert not state.owner_present
    assert "alice is not connected" in bob_desktop.closed_with and bob_kernel.closed_with

    # bob's Desktop tab comes back view only; when alice returns, that connection is closed to reopen with control
    bob_view = FakeSocket()
    state.register(bob_view, BOB, "desktop-view")
    state.look()
    assert bob_view.closed_with is None
    state.register(FakeSocket(), ALICE, "lab")
    state.look()
    assert state.owner_present and bob_view.closed_with == "The owner is back: reconnect with control."


def test_sharing_presence_disconnect_drops_guests_too_and_revocation_closes_everything():
    state, clock = make_state(owner_away="disconnect")
    gus_view = FakeSocket()
    state.register(gus_view, GUS, "desktop-view")
    state.look()
    assert gus_view.closed_with and "nobody else may use the instance" in gus_view.closed_with

    state, clock = make_state(owner_away="open")
    bob_desktop = FakeSocket()
    state.register(bob_desktop, BOB, "desktop")
    state.look()
    assert bob_desktop.closed_with is None  # open: nothing changes while she is away
    state.shares = {}  # the hub no longer lists bob's share
    state._apply_roles()
    assert bob_desktop.closed_with == "This instance belongs to alice; it is not shared with you."


def test_sharing_presence_services_and_unshared_users_have_no_role():
    state, _ = make_state()
    assert state.role_of({"name": "alice", "kind": "service", "scopes": ["access:servers"]}) is None
    assert state.role_of({"name": "olga", "kind": "user", "scopes": ["access:servers"]}) is None
    assert state.role_of(ALICE) == "owner"
    assert state.access_of(GUS).desktop == "view" and not state.access_of(GUS).lab
