"""Sharing in the sessions service: JupyterHub shares granted and revoked by the rules, support requests, audit.

People never hold JupyterHub's ``shares`` scope: they ask this service, which checks the rules
(:mod:`visa_hub.sharing.rules`: collaborators are experiment members in the User Office, support comes on
request and for a window, guests anyone) and then grants the share through the hub's REST API with the role's
scopes (:mod:`visa_hub.sharing.roles`). A pass every few seconds (:meth:`Sharing.tick`) ends support windows,
revokes the shares of members removed from the experiment, and notices shares the hub no longer has. Every
grant, request, answer, revocation, join and leave is a row of the audit table and one structured log line.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode

from sqlalchemy import select
from sqlalchemy.orm import Session
from tornado.httpclient import HTTPClientError
from traitlets import Bool, Float
from traitlets.config import LoggingConfigurable

from ..people import Person
from ..sharing.roles import CUSTOM_SCOPES, GUEST, SHARE_ROLES, SUPPORT, role_from_share, share_scopes
from ..sharing.rules import (
    display,
    is_member,
    keeps_share,
    may_support,
    share_refusal,
    support_expiry,
    support_request_refusal,
)
from ..useroffice import UserOffice, UserOfficeUnavailable
from . import db as models
from .hubapi import HubAPI
from .sharing_db import (
    REQUEST_GUEST,
    REQUEST_PENDING,
    REQUEST_REFUSED,
    REQUEST_SUPPORT,
    ShareRecord,
    SharingSettings,
    SupportRequest,
)

SERVICE_ACTOR = "visa-sessions"

#: What the service needs on top of its lifetime scopes to grant and revoke shares: JupyterHub lets only those
#: who hold a scope share it, so the service holds access to servers and the role scopes; it reads people's
#: names, groups (experiment members) and identity (OIDC subject, e-mail, site roles) to apply the rules.
SHARING_SCOPES = ["shares", "read:users:name", "read:groups", "access:servers", "admin:auth_state",
                  *CUSTOM_SCOPES]


class SharingError(Exception):
    """A request the rules refuse: ``status`` is the HTTP status, the message is for a person."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _path(owner: str, server: str) -> str:
    return f"{quote(owner, safe='')}/{quote(server, safe='')}"


class Sharing(LoggingConfigurable):
    """Shares and support requests of every instance of the hub."""

    support_hours = Float(
        2.0, config=True,
        help="How long support staff keep access after the owner accepted their request (hours).",
    )
    interval = Float(
        5.0, config=True,
        help="Seconds between two passes that end support windows, revoke the shares of people removed from the "
             "experiment in the User Office and notice shares removed in the hub.",
    )
    share_codes = Bool(
        False, config=True,
        help="Let owners make share codes for guests (a link anyone holding it may use to watch the desktop, "
             "until it expires). Off by default: with it, guests need not be named.",
    )
    share_code_hours = Float(24.0, config=True, help="How long a share code can be exchanged (hours).")

    def __init__(self, *, db: Session, hub: HubAPI, user_office: UserOffice | None, public_url: str = "",
                 clock: Callable[[], dt.datetime] | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.db, self.hub, self.user_office = db, hub, user_office
        self.public_url = public_url.rstrip("/")
        self.clock = clock or (lambda: dt.datetime.now(dt.UTC))

    # ------------------------------------------------------------------ audit
    def audit(self, actor: str, action: str, owner: str, server: str, **detail: Any) -> None:
        """One audit row (who did what, to whom, on which instance, when) and one structured log line."""
        row = models.audit(self.db, actor, action, owner, server, **detail)
        record = {"event": "visa-sharing", "action": action, "actor": actor, "instance": f"{owner}/{server}",
                  "at": row.at.isoformat(), **detail}
        self.log.info("visa-hub audit %s", json.dumps(record, sort_keys=True))

    # ------------------------------------------------------------------ facts from the hub and the User Office
    async def hub_user(self, name: str) -> dict[str, Any] | None:
        return await self.hub.user(name)

    async def person(self, name: str, model: dict[str, Any] | None = None) -> Person | None:
        """The User Office's current view of a hub user (found by the OIDC subject and e-mail of her last login).

        Raises :class:`UserOfficeUnavailable` when the User Office cannot say.
        """
        model = model if model is not None else await self.hub_user(name)
        if model is None:
            return None
        known = ((model.get("auth_state") or {}).get("person")) or {}
        if self.user_office is None:
            return Person.from_dict(known) if known else None
        person = await self.user_office.find_person(username=name, subject=known.get("subject"),
                                                    email=known.get("email") or None)
        if person is not None and known.get("roles"):  # roles the identity provider granted at login (Keycloak)
            person = dataclasses.replace(person, roles=person.roles | frozenset(known["roles"]))
        return person

    async def instance(self, owner: str, server: str) -> dict[str, Any]:
        """The running instance: its experiment (code, local contact) from the session plan in spawner state."""
        model = await self.hub_user(owner)
        spawner = ((model or {}).get("servers") or {}).get(server)
        if not spawner or not spawner.get("ready"):
            raise SharingError(404, f"{owner} has no running instance {server or '(default)'}.")
        session = (spawner.get("state") or {}).get("visa_session") or {}
        experiment = session.get("experiment") or {}
        return {"experiment": experiment.get("code", ""), "title": experiment.get("title", ""),
                "local_contact": experiment.get("local_contact"), "url": spawner.get("url", ""),
                "full_url": spawner.get("full_url")}

    # ------------------------------------------------------------------ the hub's shares
    async def hub_shares(self, owner: str, server: str) -> dict[str, str]:
        """{user: role} of the hub's shares of this server."""
        page = await self.hub.request("GET", f"shares/{_path(owner, server)}?limit=500")
        items = page.get("items", []) if isinstance(page, dict) else page
        return {s["user"]["name"]: role_from_share(s.get("scopes") or ()) or "access"
                for s in items if s.get("kind") == "user" and s.get("user")}

    async def _hub_grant(self, owner: str, server: str, user: str, role: str) -> None:
        try:
            await self.hub.request("POST", f"shares/{_path(owner, server)}",
                                   {"user": user, "scopes": share_scopes(role, owner, server)})
        except HTTPClientError as exc:
            body = exc.response.body.decode(errors="replace") if exc.response and exc.response.body else ""
            if exc.code == 400 and "No such user" in body:
                raise SharingError(400, f"There is no visa-hub user {user}: they must log in once first.") from None
            raise

    async def _hub_revoke(self, owner: str, server: str, user: str) -> None:
        try:
            await self.hub.request("PATCH", f"shares/{_path(owner, server)}", {"user": user})
        except HTTPClientError as exc:
            if exc.code != 404:  # the server is gone: its shares went with it
                raise

    # ------------------------------------------------------------------ granting and revoking
    def active(self, owner: str, server: str, user: str | None = None) -> list[ShareRecord]:
        query = select(ShareRecord).where(ShareRecord.owner == owner, ShareRecord.server_name == server,
                                          ShareRecord.ended_at.is_(None))
        if user is not None:
            query = query.where(ShareRecord.user == user)
        return list(self.db.scalars(query.order_by(ShareRecord.granted_at)))

    async def grant(self, owner: str, server: str, user: str, role: str, actor: str, *,
                    via_request: SupportRequest | None = None) -> ShareRecord:
        """Share ``owner``'s server with ``user`` as ``role`` if the rules allow it; the reason if not."""
        user = user.strip()
        if not user:
            raise SharingError(400, "Name the person to share with.")
        facts = await self.instance(owner, server)
        model = await self.hub_user(user)
        if model is None:
            raise SharingError(400, f"There is no visa-hub user {user}: they must log in once first.")
        try:
            person = await self.person(user, model)
        except UserOfficeUnavailable:
            raise SharingError(503, "The User Office cannot be reached, so membership cannot be checked now. "
                                    "Try again in a few minutes, or share as guest.") from None
        refusal = share_refusal(role, owner=owner, username=user, person=person, experiment=facts["experiment"],
                                via_request=via_request is not None)
        if refusal:
            self.audit(actor, "share-refused", owner, server, whom=user, role=role, reason=refusal)
            self.db.commit()
            raise SharingError(400, refusal)
        now = self.clock()
        expires = support_expiry(now, via_request.window_hours or self.support_hours) \
            if via_request is not None and role == SUPPORT else None
        await self._hub_grant(owner, server, user, role)
        for old in self.active(owner, server, user):
            old.ended_at, old.ended_by, old.end_reason = now, actor, f"replaced by {role}"
        record = ShareRecord(owner=owner, server_name=server, user=user, role=role, experiment=facts["experiment"],
                             granted_by=actor, granted_at=now, expires_at=expires,
                             request_id=via_request.id if via_request else None)
        self.db.add(record)
        self.audit(actor, "share-granted", owner, server, whom=user, role=role, experiment=facts["experiment"],
                   expires_at=expires.isoformat() if expires else None,
                   request=via_request.id if via_request else None)
        self.db.commit()
        return record

    async def revoke(self, owner: str, server: str, user: str, actor: str, reason: str = "revoked") -> bool:
        """End ``user``'s share of the server (in the hub first); False when she had none."""
        records = self.active(owner, server, user)
        if not records and user not in await self.hub_shares(owner, server):
            return False
        await self._hub_revoke(owner, server, user)
        now = self.clock()
        for record in records:
            record.ended_at, record.ended_by, record.end_reason = now, actor, reason
        self.audit(actor, "share-revoked", owner, server, whom=user,
                   role=records[-1].role if records else None, reason=reason)
        self.db.commit()
        return True

    async def members(self, owner: str, server: str) -> list[dict[str, Any]]:
        """Who the server is shared with (the service's records, checked against the hub's shares)."""
        in_hub = await self.hub_shares(owner, server)
        out = []
        for record in self.active(owner, server):
            if record.user in in_hub:
                out.append(record.to_dict())
        for user, role in in_hub.items():  # shared by other means (an admin, a share code): shown as they are
            if not any(m["user"] == user for m in out):
                out.append({"user": user, "name": user, "role": role if role in SHARE_ROLES else "access",
                            "granted_by": "", "granted_at": None, "expires_at": None})
        return out

    async def candidates(self, owner: str, server: str, query: str) -> list[dict[str, Any]]:
        """People to offer in "Share with…": the experiment's members with a visa-hub account, then name matches."""
        facts = await self.instance(owner, server)
        query = query.strip().casefold()
        members: list[str] = []
        if facts["experiment"]:
            try:
                group = await self.hub.request("GET", f"groups/{quote('proposal:' + facts['experiment'], safe='')}")
                members = list(group.get("users") or [])
            except HTTPClientError as exc:
                if exc.code != 404:
                    raise
        found = [{"username": name, "name": name, "member": True}
                 for name in sorted(members) if name != owner and (not query or query in name.casefold())]
        return found[:50]

    # ------------------------------------------------------------------ support requests
    async def supportable(self, staff: str) -> list[dict[str, Any]]:
        """Running instances ``staff`` may ask to support, each with her latest request's state."""
        try:
            person = await self.person(staff)
        except UserOfficeUnavailable:
            person = None
        out = []
        for server in await self.hub.running_servers():
            if server.user == staff:
                continue
            experiment = server.session.get("experiment") or {}
            if not may_support(person, experiment.get("code", ""), experiment.get("local_contact")):
                continue
            latest = self.db.scalars(select(SupportRequest).where(
                SupportRequest.owner == server.user, SupportRequest.server_name == server.name,
                SupportRequest.requester == staff).order_by(SupportRequest.id.desc())).first()
            settings = self.settings(server.user, server.name)
            state = latest.status if latest else None
            if latest and latest.status == REQUEST_SUPPORT and not self.active(server.user, server.name, staff):
                state = "ended"
            out.append({"owner": server.user, "server_name": server.name, "experiment": experiment.get("code", ""),
                        "title": experiment.get("title", ""), "instrument": server.session.get("instrument", ""),
                        "request": latest.to_dict() if latest else None, "state": state,
                        "owner_present": settings.owner_present if settings else False,
                        "url": f"/user/{quote(server.user, safe='')}/" +
                               (f"{quote(server.name, safe='')}/" if server.name else "")})
        return out

    async def request_support(self, owner: str, server: str, staff: str, comment: str) -> SupportRequest:
        facts = await self.instance(owner, server)
        try:
            person = await self.person(staff)
        except UserOfficeUnavailable:
            raise SharingError(503, "The User Office cannot be reached, so your role cannot be checked now.") \
                from None
        refusal = support_request_refusal(
            person, staff, owner=owner, experiment=facts["experiment"],
            may_support=may_support(person, facts["experiment"], facts["local_contact"]))
        if refusal:
            raise SharingError(403, refusal)
        for pending in self.requests(owner, server, REQUEST_PENDING):
            if pending.requester == staff:
                return pending  # one pending request per person and instance
        request = SupportRequest(owner=owner, server_name=server, experiment=facts["experiment"], requester=staff,
                                 requester_name=display(person, staff), comment=comment.strip()[:1000],
                                 created_at=self.clock())
        self.db.add(request)
        self.db.flush()
        self.audit(staff, "support-requested", owner, server, request=request.id, experiment=facts["experiment"],
                   comment=request.comment)
        self.db.commit()
        settings = self.settings(owner, server)
        if settings is not None and settings.unrestricted and not settings.owner_present:
            await self.decide(request, "support", SERVICE_ACTOR, reason="unrestricted access while the owner is away")
        return request

    def requests(self, owner: str, server: str, status: str | None = None) -> list[SupportRequest]:
        query = select(SupportRequest).where(SupportRequest.owner == owner, SupportRequest.server_name == server)
        if status:
            query = query.where(SupportRequest.status == status)
        return list(self.db.scalars(query.order_by(SupportRequest.id.desc()).limit(100)))

    async def decide(self, request: SupportRequest, decision: str, actor: str, reason: str = "") -> SupportRequest:
        """The owner's answer: ``support`` (for the support window), ``guest`` (view-only desktop) or ``refuse``."""
        if request.status != REQUEST_PENDING:
            raise SharingError(409, f"This request was already answered ({request.status}).")
        if decision not in ("support", "guest", "refuse"):
            raise SharingError(400, 'decision must be "support", "guest" or "refuse"')
        now = self.clock()
        if decision != "refuse":
            request.window_hours = self.support_hours if decision == "support" else None
            await self.grant(request.owner, request.server_name, request.requester,
                             SUPPORT if decision == "support" else GUEST, actor, via_request=request)
        request.status = {"support": REQUEST_SUPPORT, "guest": REQUEST_GUEST, "refuse": REQUEST_REFUSED}[decision]
        request.decided_at, request.decided_by = now, actor
        self.audit(actor, "support-" + request.status, request.owner, request.server_name, request=request.id,
                   whom=request.requester, approved_by=actor, reason=reason or None)
        self.db.commit()
        return request

    # ------------------------------------------------------------------ settings and events from the instance
    def settings(self, owner: str, server: str) -> SharingSettings | None:
        return self.db.scalars(select(SharingSettings).where(SharingSettings.owner == owner,
                                                             SharingSettings.server_name == server)).first()

    def save_settings(self, owner: str, server: str, actor: str, **values: Any) -> SharingSettings:
        row = self.settings(owner, server)
        if row is None:
            row = SharingSettings(owner=owner, server_name=server)
            self.db.add(row)
        changed = {k: v for k, v in values.items() if v is not None and getattr(row, k) != v}
        for key, value in changed.items():
            setattr(row, key, value)
        row.updated_at = self.clock()
        if changed and set(changed) - {"owner_present"}:
            self.audit(actor, "sharing-settings", owner, server, **changed)
        self.db.commit()
        return row

    def instance_event(self, owner: str, server: str, record: dict[str, Any]) -> None:
        """A join, leave or presence change the instance saw (its own log has the same line)."""
        action = str(record.get("action") or "")[:60]
        if action in ("owner-present", "owner-away"):
            self.save_settings(owner, server, owner, owner_present=action == "owner-present")
        if action in ("join", "leave", "owner-present", "owner-away", "access-ended", "role-changed"):
            actor = str(record.get("actor") or "")[:255]
            detail = {k: v for k, v in record.items()
                      if k in ("role", "old", "new", "owner_away") and isinstance(v, str | type(None))}
            self.audit(actor, action, owner, server, source="instance", **detail)
            self.db.commit()

    # ------------------------------------------------------------------ share codes (where the site enables them)
    async def share_code(self, owner: str, server: str, actor: str) -> dict[str, Any]:
        if not self.share_codes:
            raise SharingError(403, "Share codes are not enabled on this site: name the guest instead.")
        facts = await self.instance(owner, server)
        code = await self.hub.request("POST", f"share-codes/{_path(owner, server)}",
                                      {"scopes": share_scopes(GUEST, owner, server),
                                       "expires_in": int(self.share_code_hours * 3600)})
        self.audit(actor, "share-code-created", owner, server, role=GUEST, expires_at=code.get("expires_at"))
        self.db.commit()
        # a guest may not load Lab: after accepting, the desktop-only page
        accept = f"{code.get('accept_url')}&{urlencode({'next': facts['url'] + 'visa/desktop-view'})}"
        return {"accept_url": accept, "full_accept_url": f"{self.public_url}{accept}" if self.public_url else None,
                "expires_at": code.get("expires_at")}

    # ------------------------------------------------------------------ the periodic pass
    async def _end_shares_of_stopped_instances(self) -> None:
        """A share is for one run of an instance: once it has stopped (or been started again since the share was
        granted) its members' access ends, share codes included — the next run may be for another experiment.

        JupyterHub keeps the shares of a stopped server (the default one keeps its row), so the service ends them.
        A server the hub still lists (running, starting, stopping, re-checked after a restart) keeps its shares.
        """
        records = list(self.db.scalars(select(ShareRecord).where(ShareRecord.ended_at.is_(None))))
        if not records:
            return
        started_of = {(s.user, s.name): s.started for s in await self.hub.running_servers(listed=True)}
        ended: set[tuple[str, str]] = set()
        for record in records:
            started = started_of.get((record.owner, record.server_name))
            if started is not None and started <= record.granted_at:
                continue
            await self.revoke(record.owner, record.server_name, record.user, SERVICE_ACTOR,
                              reason="the instance stopped")
            ended.add((record.owner, record.server_name))
        for owner, server_name in sorted(ended):
            try:
                await self.hub.request("DELETE", f"share-codes/{_path(owner, server_name)}")
            except HTTPClientError as exc:
                if exc.code != 404:
                    raise

    async def tick(self) -> None:
        """End support windows, revoke shares of people removed from the experiment, notice vanished shares."""
        now = self.clock()
        active = list(self.db.scalars(select(ShareRecord).where(ShareRecord.ended_at.is_(None))))
        checked: dict[str, Person | None] = {}
        for record in active:
            if record.expires_at is not None and record.expires_at <= now:
                await self.revoke(record.owner, record.server_name, record.user, SERVICE_ACTOR,
                                  reason="support window ended")
                continue
            if record.role == GUEST:
                continue
            if record.user not in checked:
                try:
                    checked[record.user] = await self.person(record.user)
                except UserOfficeUnavailable as exc:
                    self.log.warning("User Office unavailable, shares of %s not checked: %s", record.user, exc)
                    continue
            if not keeps_share(record.role, checked[record.user], record.experiment):
                why = (f"no longer a member of {record.experiment}" if not is_member(checked[record.user],
                                                                                      record.experiment)
                       else "no longer support staff")
                await self.revoke(record.owner, record.server_name, record.user, SERVICE_ACTOR, reason=why)
        await self._end_shares_of_stopped_instances()
        instances = {(r.owner, r.server_name) for r in self.db.scalars(
            select(ShareRecord).where(ShareRecord.ended_at.is_(None)))}
        for owner, server in sorted(instances):  # one call per shared instance
            try:
                in_hub = await self.hub_shares(owner, server)
            except HTTPClientError as exc:
                if exc.code != 404:
                    raise
                in_hub = {}
            for record in self.active(owner, server):
                if record.user not in in_hub:  # she left it herself, an admin removed it, or the server is gone
                    record.ended_at, record.ended_by, record.end_reason = now, SERVICE_ACTOR, "gone from the hub"
                    self.audit(SERVICE_ACTOR, "share-ended", owner, server, whom=record.user, role=record.role,
                               reason="gone from the hub")
        self.db.commit()

