"""Who is connected to this instance, with which role, and whether the owner is here.

:class:`SharingState` is the server's memory of its visitors: every websocket a person opens is registered
(:meth:`SharingState.register`); a periodic look (:meth:`SharingState.look`) drops the closed ones, decides
whether the owner is present (with a grace period for page reloads) and closes every connection that a
person's access no longer allows — because the owner left (``lock``: control becomes view only;
``disconnect``: everyone else is dropped) or because her share changed. :meth:`SharingState.refresh_shares` reads the
server's shares from the hub (while anyone but the owner is here), so a revoked share closes her websockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ...sharing.roles import (
    COLLABORATOR,
    FULL,
    LOCK,
    OWNER,
    OWNER_AWAY_POLICIES,
    ROLE_TITLES,
    SUPPORT,
    Access,
    access_for,
    role_from_scopes,
    role_from_share,
)
from .gate import DESKTOP, DESKTOP_VIEW_KIND, LAB

#: A websocket whose handshake has not completed after this long is forgotten.
HANDSHAKE_TIMEOUT = 15.0
#: Websocket close code for "policy violation", with the reason shown to the person.
POLICY_CLOSE = 1008


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(eq=False)
class Connection:
    """One websocket of one person (a kernel, a terminal, a shared document, the desktop, ...)."""

    handler: Any
    kind: str
    registered: float = field(default_factory=time.monotonic)
    opened_at: dt.datetime | None = None
    #: a view-only desktop opened only because control was held back (owner away): reopened with control later
    held_back: bool = False

    def status(self, now: float) -> str:
        """``open``, ``pending`` (handshake not finished) or ``closed``."""
        handler = self.handler
        if getattr(handler, "_on_close_called", False):
            return "closed"
        if getattr(handler, "ws_connection", None) is not None and handler.get_status() == 101:
            return "open"
        if self.opened_at is not None or now - self.registered > HANDSHAKE_TIMEOUT:
            return "closed"
        return "pending"

    def close(self, reason: str) -> None:
        with contextlib.suppress(Exception):  # already closing or gone: nothing left to close
            self.handler.close(POLICY_CLOSE, reason[:120])


@dataclass(eq=False)
class Visitor:
    """A person with at least one connection (the owner included)."""

    name: str
    role: str | None
    model: dict[str, Any]
    connections: list[Connection] = field(default_factory=list)
    since: dt.datetime | None = None  # when her first connection of this visit opened

    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if c.opened_at is not None]


class SharingState:
    """The sharing side of one server: its owner's presence, its visitors and what each may do."""

    def __init__(self, *, owner: str, server_name: str, config: Any, hub_auth: Any, log: logging.Logger,
                 clock=time.monotonic):
        self.owner, self.server_name = owner, server_name
        self.config, self.hub_auth, self.log, self.clock = config, hub_auth, log, clock
        self.owner_away: str = config.owner_away
        self.unrestricted: bool = config.unrestricted
        self.visitors: dict[str, Visitor] = {}
        #: visitor name → role, from this server's shares in the hub (see :meth:`refresh_shares`)
        self.shares: dict[str, str] = {}
        self._shares_at: float | None = None
        self._refreshing: asyncio.Future | None = None
        #: async callable sending each event to the hub's audit trail (the sessions service), or None
        self.report = None
        self._reports: set[asyncio.Task] = set()
        self._owner_seen: float | None = None  # last time the owner had an open connection
        self.owner_present = False
        self.owner_present_since: dt.datetime | None = None

    # -- who is who ----------------------------------------------------------------------------------------
    @property
    def instance(self) -> str:
        return f"{self.owner}/{self.server_name}"

    def role_of(self, model: dict[str, Any] | None) -> str | None:
        if not model:
            return None
        if model.get("kind", "user") == "user" and model.get("name") == self.owner:
            return OWNER
        if model.get("kind", "user") != "user":
            return None  # services never have a role on an instance
        return self.shares.get(model.get("name", "")) or \
            role_from_scopes(model.get("scopes") or (), self.owner, self.server_name)

    def access_of(self, model: dict[str, Any] | None) -> Access:
        role = self.role_of(model)
        if role == OWNER:
            return FULL
        return access_for(role, owner_present=self.owner_present, owner_away=self.owner_away,
                          unrestricted=self.unrestricted, owner=self.owner)

    def set_policy(self, owner_away: str | None = None, unrestricted: bool | None = None, actor: str = "") -> None:
        if owner_away is not None:
            if owner_away not in OWNER_AWAY_POLICIES:
                raise ValueError(f"owner_away must be one of {', '.join(OWNER_AWAY_POLICIES)}")
            self.owner_away = owner_away
        if unrestricted is not None:
            self.unrestricted = bool(unrestricted)
        self.audit("policy", actor or self.owner, owner_away=self.owner_away, unrestricted=self.unrestricted)
        self.enforce()

    # -- connections ---------------------------------------------------------------------------------------
    def register(self, handler: Any, model: dict[str, Any], kind: str) -> None:
        """A websocket the gate let through; followed until it closes."""
        name = model["name"]
        visitor = self.visitors.get(name)
        if visitor is None:
            visitor = self.visitors[name] = Visitor(name=name, role=self.role_of(model), model=model)
        visitor.model, visitor.role = model, self.role_of(model)
        held_back = kind == DESKTOP_VIEW_KIND and visitor.role in (COLLABORATOR, SUPPORT) and \
            self.access_of(model).desktop == "view"
        visitor.connections.append(Connection(handler, kind, held_back=held_back))

    def look(self) -> None:
        """Drop closed connections, note joins and leaves, update the owner's presence, enforce access."""
        now = self.clock()
        for name, visitor in list(self.visitors.items()):
            was_here = bool(visitor.open_connections())
            kept = []
            for connection in visitor.connections:
                status = connection.status(now)
                if status == "closed":
                    continue
                if status == "open" and connection.opened_at is None:
                    connection.opened_at = utcnow()
                kept.append(connection)
            visitor.connections = kept
            here = bool(visitor.open_connections())
            if here and not was_here:
                visitor.since = utcnow()
                self.audit("join", name, role=visitor.role)
            elif was_here and not here:
                self.audit("leave", name, role=visitor.role)
                visitor.since = None
            if not kept:
                del self.visitors[name]
        owner = self.visitors.get(self.owner)
        if owner is not None and owner.open_connections():
            self._owner_seen = now
        present = self._owner_seen is not None and now - self._owner_seen <= self.config.away_grace
        if present != self.owner_present:
            self.owner_present = present
            self.owner_present_since = utcnow() if present else None
            self.log.info("visa-hub sharing: the owner %s is %s (%s while away)", self.owner,
                          "back" if present else "away", self.owner_away)
            self.audit("owner-" + ("present" if present else "away"), self.owner, owner_away=self.owner_away)
        self.enforce()

    def enforce(self) -> None:
        """Close every connection its person may no longer have open."""
        for visitor in self.visitors.values():
            if visitor.role == OWNER:
                continue
            access = self.access_of(visitor.model)
            for connection in visitor.connections:
                if connection.kind == "closing":
                    continue
                if not self._allowed(access, connection.kind):
                    self.log.info("visa-hub sharing: closing %s's %s connection: %s", visitor.name,
                                  connection.kind, access.reason or "no access")
                    connection.close(access.reason or "Your access to this instance ended.")
                    connection.kind = "closing"
                elif connection.held_back and access.desktop == "control":
                    self.log.info("visa-hub sharing: %s may control the desktop again", visitor.name)
                    connection.close("The owner is back: reconnect with control.")
                    connection.kind = "closing"

    @staticmethod
    def _allowed(access: Access, kind: str) -> bool:
        if kind == DESKTOP:
            return access.desktop == "control"
        if kind == DESKTOP_VIEW_KIND:
            return access.desktop is not None
        if kind == LAB:
            return access.lab_write
        return False  # already being closed

    # -- shares, from the hub -------------------------------------------------------------------------------
    def shares_stale(self, name: str = "") -> bool:
        """Whether to read the shares again before deciding about ``name``: after ``hub_cache_seconds``, and
        for someone they do not list at once (she may just have been given a share)."""
        if self._shares_at is None:
            return True
        age = self.clock() - self._shares_at
        return age > self.config.hub_cache_seconds or name not in self.shares

    async def refresh_shares(self) -> None:
        """Read this server's shares from the hub (one call, the server's own token); roles follow at once.

        JupyterHub puts only the access scope of a share into a visitor's token, so the role (the share's
        custom scopes) is read here. Concurrent callers wait for the same answer.
        """
        if self._refreshing is not None:
            await self._refreshing
            return
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            shares = await self._fetch_shares()
            if shares != self.shares:
                self.log.info("visa-hub sharing: shares of %s: %s", self.instance,
                              ", ".join(f"{n} ({r})" for n, r in sorted(shares.items())) or "none")
            self.shares, self._shares_at = shares, self.clock()
            self._apply_roles()
        finally:
            self._refreshing.set_result(None)
            self._refreshing = None

    async def _fetch_shares(self) -> dict[str, str]:
        url = f"{self.hub_auth.api_url.rstrip('/')}/shares/{quote(self.owner, safe='')}/" \
              f"{quote(self.server_name, safe='')}"
        shares: dict[str, str] = {}
        offset = 0
        while True:
            page = await self.hub_auth._api_request(  # HubAuth's own call: the server's token, the hub's TLS
                "GET", f"{url}?offset={offset}&limit=200",
                headers={"Accept": "application/jupyterhub-pagination+json"})
            items = page.get("items", []) if isinstance(page, dict) else page
            for share in items:
                role = role_from_share(share.get("scopes") or ())
                if share.get("kind") == "user" and share.get("user") and role:
                    shares[share["user"]["name"]] = role
            following = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
            if not following:
                return shares
            offset = following["offset"]

    def _apply_roles(self) -> None:
        for visitor in self.visitors.values():
            role = self.role_of(visitor.model)
            if role != visitor.role:
                self.log.info("visa-hub sharing: %s is now %s on %s", visitor.name, role or "without a share",
                              self.instance)
                self.audit("role-changed" if role else "access-ended", visitor.name, old=visitor.role, new=role)
                visitor.role = role
        self.enforce()

    def desktop_viewers(self) -> dict[str, int]:
        """How many people have the desktop open now, by role (someone with two desktop tabs counts once;
        connections being closed and people without a role do not count)."""
        counts: dict[str, int] = {}
        for visitor in self.visitors.values():
            if visitor.role and any(c.kind in (DESKTOP, DESKTOP_VIEW_KIND) for c in visitor.open_connections()):
                counts[visitor.role] = counts.get(visitor.role, 0) + 1
        return counts

    def has_guests(self) -> bool:
        """Whether anyone but the owner is connected (then the shares are re-read periodically)."""
        return any(v.role != OWNER for v in self.visitors.values())

    # -- what the Session panel shows ----------------------------------------------------------------------
    def connected(self) -> list[dict[str, Any]]:
        """Who is connected now: name, role, since when, to what, and what she may do."""
        people = []
        for visitor in self.visitors.values():
            open_connections = visitor.open_connections()
            if not open_connections:
                continue
            access = self.access_of(visitor.model)
            kinds = sorted({c.kind for c in open_connections if c.kind != "closing"})
            people.append({
                "name": visitor.name, "role": visitor.role,
                "role_title": ROLE_TITLES.get(visitor.role or "", "no access"),
                "since": visitor.since.isoformat() if visitor.since else None,
                "connections": kinds, "desktop": access.desktop, "lab_write": access.lab_write,
                "restricted": access.reason if visitor.role != OWNER and access.reason else "",
            })
        return sorted(people, key=lambda p: (p["role"] != OWNER, p["since"] or ""))

    def policy(self) -> dict[str, Any]:
        return {"owner_away": self.owner_away, "unrestricted": self.unrestricted,
                "owner_present": self.owner_present, "choices": list(OWNER_AWAY_POLICIES)}

    # -- audit ---------------------------------------------------------------------------------------------
    def audit(self, action: str, actor: str, **detail: Any) -> None:
        """One structured log line per sharing event on this instance (the hub's service keeps the trail)."""
        record = {"event": "visa-sharing", "action": action, "actor": actor, "instance": self.instance,
                  "at": utcnow().isoformat(), **detail}
        self.log.info("visa-hub audit %s", json.dumps(record, sort_keys=True))
        if self.report is not None:
            task = asyncio.ensure_future(self._report(record))
            self._reports.add(task)
            task.add_done_callback(self._reports.discard)

    async def _report(self, record: dict[str, Any]) -> None:
        try:
            await self.report(record)
        except Exception as exc:  # noqa: BLE001 - the line above is in the log whatever happens here
            self.log.warning("visa-hub sharing: event not sent to the sessions service: %s", exc)


__all__ = ["SharingState", "Connection", "Visitor", "LOCK"]
