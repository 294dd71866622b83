"""A refresh that learns nothing new leaves the hub's records alone (scale: no write per spawn and per refresh).

JupyterHub encrypts and writes the whole auth_state, and commits, for every model a refresh returns; ``True``
tells it nothing changed. The authenticator is the demo one, over the demo User Office.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from traitlets.config import Config

from authenticators.demo import DemoAuthenticator


@dataclass
class Group:
    name: str


@dataclass
class HubUser:
    """What the hub has for her (the parts of jupyterhub.user.User a refresh reads)."""

    name: str
    admin: bool = False
    groups: list[Group] = field(default_factory=list)
    auth_state: dict[str, Any] | None = None

    async def get_auth_state(self) -> dict[str, Any] | None:
        return self.auth_state


def _as_stored(authenticator: DemoAuthenticator, name: str) -> HubUser:
    """alice as the hub keeps her right after her login."""
    model = asyncio.run(authenticator.refresh_user(HubUser(name)))
    assert isinstance(model, dict)
    return HubUser(name, admin=bool(model.get("admin")), groups=[Group(g) for g in model["groups"]],
                   auth_state=model["auth_state"])


def test_scale_a_refresh_with_nothing_new_asks_for_no_write():
    authenticator = DemoAuthenticator(config=Config())
    alice = _as_stored(authenticator, "alice")
    assert alice.groups, "the demo alice has experiment groups"
    assert asyncio.run(authenticator.refresh_user(alice)) is True


def test_scale_a_refresh_with_something_new_returns_the_new_model():
    authenticator = DemoAuthenticator(config=Config())
    stale_groups = _as_stored(authenticator, "alice")
    stale_groups.groups = stale_groups.groups[1:]
    model = asyncio.run(authenticator.refresh_user(stale_groups))
    assert isinstance(model, dict) and sorted(model["groups"]) == sorted(
        g.name for g in _as_stored(authenticator, "alice").groups)

    stale_state = _as_stored(authenticator, "alice")
    stale_state.auth_state = {"person": {**stale_state.auth_state["person"], "experiments": []}}
    assert isinstance(asyncio.run(authenticator.refresh_user(stale_state)), dict)

    made_admin_elsewhere = _as_stored(authenticator, "alice")
    made_admin_elsewhere.admin = not made_admin_elsewhere.admin
    assert isinstance(asyncio.run(authenticator.refresh_user(made_admin_elsewhere)), dict)
