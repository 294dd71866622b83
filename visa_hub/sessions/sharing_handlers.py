"""The sessions service's sharing API and the support staff's page (under ``/services/visa-sessions/``).

Authentication as for the lifetime API (:class:`.handlers.BaseHandler`): a person logged in to the hub (cookies,
XSRF on every change) or a token (an instance's own server token reaches its own server only). Changing who has
access is for the instance's owner (or a hub admin); support staff ask on the support page.

=====================================================================  ==============================================
``GET  api/instances/<owner>/<server>/shares``                         members: role, granted by, until when
``POST api/instances/<owner>/<server>/shares``                         ``{"user", "role"}``: share, by the rules
``POST api/instances/<owner>/<server>/shares/<user>/revoke``           end her share now
``GET  api/instances/<owner>/<server>/candidates?q=``                  experiment members to offer (autocomplete)
``GET  api/instances/<owner>/<server>/support-requests``               requests for this instance
``POST api/instances/<owner>/<server>/support-requests``               staff: ``{"comment"}``: ask to join
``POST api/instances/<owner>/<server>/support-requests/<id>``          ``{"decision": "support"|"guest"|"refuse"}``
``GET  api/instances/<owner>/<server>/sharing-settings``               ``owner_away``, ``unrestricted``
``PUT  api/instances/<owner>/<server>/sharing-settings``               keep them (the instance applies them)
``POST api/instances/<owner>/<server>/sharing-events``                 the instance reports joins, leaves, presence
``POST api/instances/<owner>/<server>/share-codes``                    a guest share code (if the site allows)
``GET  api/shared-with-me``                                            instances shared with me, my role, a link
``GET  api/supportable``                                               staff: instances I may ask to support
``GET  support``                                                       staff: the page with "Request access"
=====================================================================  ==============================================
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote

from sqlalchemy import select
from tornado import web

from ..sharing.roles import GUEST, OWNER_AWAY_POLICIES, ROLE_TITLES
from .handlers import SERVER_PATH, BaseHandler, PageHandler
from .sharing import Sharing, SharingError
from .sharing_db import ShareRecord, SupportRequest


class SharingHandler(BaseHandler):
    server_tokens = True  # the instance forwards its sharing calls with its own token (checked per instance)

    @property
    def sharing(self) -> Sharing:
        return self.settings["sharing"]

    async def guarded(self, action) -> Any:
        try:
            return await action
        except SharingError as exc:
            raise web.HTTPError(exc.status, "%s", exc.message) from None

    async def owner_only(self, owner: str, server: str) -> tuple[str, str]:
        """The instance, if the caller is its owner (cookie or its server's token) or a hub admin."""
        owner, server = unquote(owner), unquote(server)
        if not await self.may_act_on(owner, server):
            raise web.HTTPError(403, f"Only {owner} shares this instance.")
        return owner, server


class SharesHandler(SharingHandler):
    @web.authenticated
    async def get(self, owner: str, server: str) -> None:
        owner, server = await self.owner_only(owner, server)
        members = await self.guarded(self.sharing.members(owner, server))
        facts = await self.guarded(self.sharing.instance(owner, server))
        self.write_json({"members": members, "experiment": facts["experiment"],
                         "share_codes": self.sharing.share_codes})

    @web.authenticated
    async def post(self, owner: str, server: str) -> None:
        owner, server = await self.owner_only(owner, server)
        data = self.body()
        record = await self.guarded(self.sharing.grant(owner, server, str(data.get("user") or ""),
                                                       str(data.get("role") or ""), self.username))
        self.write_json(record.to_dict())


class RevokeHandler(SharingHandler):
    @web.authenticated
    async def post(self, owner: str, server: str, user: str) -> None:
        owner, server = await self.owner_only(owner, server)
        if not await self.guarded(self.sharing.revoke(owner, server, unquote(user), self.username)):
            raise web.HTTPError(404, f"{unquote(user)} has no share of this instance.")
        self.write_json({"revoked": unquote(user)})


class CandidatesHandler(SharingHandler):
    @web.authenticated
    async def get(self, owner: str, server: str) -> None:
        owner, server = await self.owner_only(owner, server)
        found = await self.guarded(self.sharing.candidates(owner, server, self.get_argument("q", "")))
        self.write_json({"candidates": found})


class SupportRequestsHandler(SharingHandler):
    @web.authenticated
    async def get(self, owner: str, server: str) -> None:
        owner, server = await self.owner_only(owner, server)
        self.write_json({"requests": [r.to_dict() for r in self.sharing.requests(owner, server)]})

    @web.authenticated
    async def post(self, owner: str, server: str) -> None:
        if self._token_model is not None:
            raise web.HTTPError(403, "Support staff ask from the support page, logged in to the hub.")
        request = await self.guarded(self.sharing.request_support(
            unquote(owner), unquote(server), self.username, str(self.body().get("comment") or "")))
        self.write_json(request.to_dict())


class SupportDecisionHandler(SharingHandler):
    @web.authenticated
    async def post(self, owner: str, server: str, request_id: str) -> None:
        owner, server = await self.owner_only(owner, server)
        request = self.db.get(SupportRequest, int(request_id)) if len(request_id) < 16 else None
        if request is None or (request.owner, request.server_name) != (owner, server):
            raise web.HTTPError(404, f"No support request {request_id} for this instance.")
        decided = await self.guarded(self.sharing.decide(request, str(self.body().get("decision") or ""),
                                                         self.username))
        self.write_json(decided.to_dict())


class SettingsHandler(SharingHandler):
    @web.authenticated
    async def get(self, owner: str, server: str) -> None:
        owner, server = await self.owner_only(owner, server)
        row = self.sharing.settings(owner, server)
        self.write_json({"owner_away": row.owner_away if row else "lock",
                         "unrestricted": row.unrestricted if row else False,
                         "owner_present": row.owner_present if row else False})

    @web.authenticated
    async def put(self, owner: str, server: str) -> None:
        owner, server = await self.owner_only(owner, server)
        data = self.body()
        away, unrestricted = data.get("owner_away"), data.get("unrestricted")
        if away is not None and away not in OWNER_AWAY_POLICIES:
            raise web.HTTPError(400, f"owner_away must be one of {', '.join(OWNER_AWAY_POLICIES)}")
        if unrestricted is not None and not isinstance(unrestricted, bool):
            raise web.HTTPError(400, "unrestricted must be true or false")
        row = self.sharing.save_settings(owner, server, self.username, owner_away=away, unrestricted=unrestricted)
        self.write_json({"owner_away": row.owner_away, "unrestricted": row.unrestricted})


class EventsHandler(SharingHandler):
    """Joins, leaves and presence as the instance saw them: its own server token only."""

    @web.authenticated
    async def post(self, owner: str, server: str) -> None:
        owner, server = unquote(owner), unquote(server)
        if self._token_model is None or self.username != owner or not self.token_reaches(owner, server):
            raise web.HTTPError(403, "Only the instance itself reports its sharing events.")
        self.sharing.instance_event(owner, server, self.body())
        self.write_json({}, status=201)


class ShareCodesHandler(SharingHandler):
    @web.authenticated
    async def post(self, owner: str, server: str) -> None:
        owner, server = await self.owner_only(owner, server)
        self.write_json(await self.guarded(self.sharing.share_code(owner, server, self.username)))


class SharedWithMeHandler(SharingHandler):
    server_tokens = False

    @web.authenticated
    async def get(self) -> None:
        rows = self.db.scalars(select(ShareRecord).where(ShareRecord.user == self.username,
                                                         ShareRecord.ended_at.is_(None)))
        out = []
        for record in rows:
            try:
                facts = await self.sharing.instance(record.owner, record.server_name)
                running = True
            except SharingError:
                facts, running = {"experiment": record.experiment, "title": ""}, False
            base = facts.get("full_url") or f"{self.sessions.public_url}/user/{quote(record.owner, safe='')}/" + \
                (f"{quote(record.server_name, safe='')}/" if record.server_name else "")
            out.append({**record.to_dict(), "role_title": ROLE_TITLES.get(record.role, record.role),
                        "title": facts.get("title", ""), "running": running,
                        "url": base + ("visa/desktop-view" if record.role == GUEST else "lab")})
        self.write_json({"shared": out})


class SupportableHandler(SharingHandler):
    server_tokens = False

    @web.authenticated
    async def get(self) -> None:
        self.write_json({"instances": await self.guarded(self.sharing.supportable(self.username))})


def sharing_routes(prefix: str) -> list[tuple]:
    instance = prefix + f"api/instances/{SERVER_PATH}"
    return [
        (instance + "/shares", SharesHandler),
        (instance + "/shares/([^/]+)/revoke", RevokeHandler),
        (instance + "/candidates", CandidatesHandler),
        (instance + "/support-requests", SupportRequestsHandler),
        (instance + r"/support-requests/(\d+)", SupportDecisionHandler),
        (instance + "/sharing-settings", SettingsHandler),
        (instance + "/sharing-events", EventsHandler),
        (instance + "/share-codes", ShareCodesHandler),
        (prefix + "api/shared-with-me", SharedWithMeHandler),
        (prefix + "api/supportable", SupportableHandler),
        (prefix + "support", PageHandler, {"template": "support.html"}),
    ]
