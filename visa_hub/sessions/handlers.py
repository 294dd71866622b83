"""The sessions service's HTTP API and pages (under ``/services/visa-sessions/``).

Who may call: a person logged in to the hub (JupyterHub OAuth, cookies with XSRF on every change), or a token
sent as ``Authorization: token …``: a person's API token with access to this service
(``access:services!service=visa-sessions``), or an instance's own server token (scope
``access:servers!server=<owner>/<name>``, how the labextension reaches us through the instance's server
extension), which reaches that one instance's ``api/instances/<owner>/<name>[/extend|/stop]`` and nothing else.
Any other token of hers (e.g. one issued to another server or service) is refused. Hub admins may see and change
every instance; everyone else only her own.

=========================================================  ==========================================================
``GET  api/instances``                                     her running instances (admins: ``?all=1`` for every one)
``GET  api/instances/<user>/<server>``                     one instance: expiry, warnings, extension rules, answers
``POST api/instances/<user>/<server>/extend``              ``{"hours": h, "comment": "..."}``: extend or request
``POST api/instances/<user>/<server>/expiry``              admins: ``{"expires_at": ISO}`` (extend or shorten)
``POST api/instances/<user>/<server>/stop``                stop it now (owner or admin)
``GET  api/requests``                                      pending extension requests (admins: all; others: hers)
``POST api/requests/<id>``                                 admins: ``{"decision": "accept"|"refuse", "answer": "..."}``
``GET  api/audit``                                         admins: the audit trail (``?user=``, ``?limit=``)
``GET  api/last-options``                                  her last spawn options per experiment
=========================================================  ==========================================================
"""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from jupyterhub.services.auth import HubOAuthenticated
from sqlalchemy import select
from tornado import web

from . import db as models
from .service import Sessions, SessionsError

SERVER_PATH = r"([^/]+)/([^/]*)"
#: Our requests are a few hundred bytes (an extension's comment is cut at 2000 characters).
MAX_JSON_BYTES = 64 * 1024


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    """Cookie (OAuth) or token authentication, and JSON errors."""

    _token_model: dict[str, Any] | None = None
    #: whether a token without access to this service, but to the server the URL names (an instance's own server
    #: token), may call this handler; everything else needs a token with access to the service
    server_tokens = False

    @property
    def sessions(self) -> Sessions:
        return self.settings["sessions"]

    @property
    def db(self):
        return self.sessions.db

    async def prepare(self) -> None:
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() in ("token", "bearer") and token.strip():
            model = await self.hub_auth.user_for_token(token.strip(), sync=False)
            if not model or model.get("kind", "user") != "user":
                raise web.HTTPError(403, "This token is not a person's token.")
            self._token_model = model
            self._hub_auth_user_cache = model  # our own scope rules apply (see may_act_on)
            if not self.server_tokens and not self.token_may_use_service():
                raise web.HTTPError(403, "This token has no access to the sessions service.")

    def check_xsrf_cookie(self) -> None:
        if self._token_model is not None:
            return  # token-authenticated: no cookie, no cross-site request forgery
        if self.request.method in ("GET", "HEAD"):
            # our GETs change nothing, and other sites cannot read the answers (no CORS): hub pages (the home
            # page's banner) may fetch them with the login cookie alone
            return
        super().check_xsrf_cookie()

    @property
    def username(self) -> str:
        return self.current_user["name"]

    def token_may_use_service(self) -> bool:
        """Whether the request's token was given access to this service (a person's token, not an instance's)."""
        scopes = set((self._token_model or {}).get("scopes") or ())
        return bool({"access:services", f"access:services!service={self.settings['service_name']}"} & scopes)

    async def is_admin(self) -> bool:
        """A hub admin, logged in or with a token that may use this service (never an instance's token)."""
        if self._token_model is not None and not self.token_may_use_service():
            return False
        return await self.settings["admins"].is_admin(self.username)

    def token_reaches(self, user: str, server: str) -> bool:
        scopes = set((self._token_model or {}).get("scopes") or ())
        return bool({"access:servers", f"access:servers!user={user}", f"access:servers!server={user}/{server}",
                     "access:services", f"access:services!service={self.settings['service_name']}"} & scopes)

    async def may_act_on(self, user: str, server: str) -> bool:
        if self.username == user and (self._token_model is None or self.token_reaches(user, server)):
            return True
        return await self.is_admin()

    async def instance(self, user: str, server: str) -> models.Instance:
        user, server = unquote(user), unquote(server)
        if not await self.may_act_on(user, server):
            raise web.HTTPError(403, f"You may not see or change {user}'s instances.")
        inst = models.find_instance(self.db, user, server)
        if inst is None:
            raise web.HTTPError(404, f"No running instance {user}/{server} is known to the sessions service yet.")
        return inst

    def body(self) -> dict[str, Any]:
        if len(self.request.body) > MAX_JSON_BYTES:
            raise web.HTTPError(413, f"The request body is larger than {MAX_JSON_BYTES // 1024} KiB.")
        try:
            data = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise web.HTTPError(400, f"The request body is not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "The request body must be a JSON object.")
        return data

    def write_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    async def guarded(self, action) -> Any:
        try:
            return await action
        except SessionsError as exc:
            raise web.HTTPError(exc.status, "%s", exc.message) from None


class InstancesHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        everyone = self.get_argument("all", "") in ("1", "true") and await self.is_admin()
        instances = self.sessions.running_instances(None if everyone else self.username)
        self.write_json({"instances": [self.sessions.view(i) for i in instances],
                         "hub_reachable": self.sessions.hub_reachable})


class InstanceHandler(BaseHandler):
    server_tokens = True

    @web.authenticated
    async def get(self, user: str, server: str) -> None:
        self.write_json(self.sessions.view(await self.instance(user, server)))


class ExtendHandler(BaseHandler):
    server_tokens = True

    @web.authenticated
    async def post(self, user: str, server: str) -> None:
        inst = await self.instance(user, server)
        data = self.body()
        hours = data.get("hours")
        if hours is not None and (isinstance(hours, bool) or not isinstance(hours, int | float)):
            raise web.HTTPError(400, "hours must be a number")
        actor = self.username  # who authenticated; an instance may name its visitor, which we cannot check
        claimed = data.get("actor") if self._token_model is not None else None
        if isinstance(claimed, str) and claimed != actor:
            actor = f"{actor} (for {claimed[:100]!r}, as the instance says)"
        result = await self.guarded(self.sessions.extend(inst, hours, str(data.get("comment") or ""), actor))
        self.write_json({**result, "instance": self.sessions.view(inst)})


class ExpiryHandler(BaseHandler):
    @web.authenticated
    async def post(self, user: str, server: str) -> None:
        if not await self.is_admin():
            raise web.HTTPError(403, "Only administrators may set an instance's expiry.")
        inst = await self.instance(user, server)
        try:
            new = dt.datetime.fromisoformat(str(self.body().get("expires_at")))
        except ValueError:
            raise web.HTTPError(400, "expires_at must be an ISO 8601 time") from None
        new = new if new.tzinfo else new.replace(tzinfo=dt.UTC)
        if new <= self.sessions.clock():
            raise web.HTTPError(400, "The new expiry is in the past: stop the instance instead.")
        action = "extend-admin" if new > inst.expires_at else "shorten-admin"
        await self.guarded(self.sessions.set_expiry(inst, new, self.username, action))
        self.write_json(self.sessions.view(inst))


class StopHandler(BaseHandler):
    server_tokens = True

    @web.authenticated
    async def post(self, user: str, server: str) -> None:
        inst = await self.instance(user, server)
        reason = "admin" if self.username != inst.user else "stopped by owner"
        await self.sessions.stop(inst, reason, self.username)
        self.write_json(self.sessions.view(inst), status=202)


class RequestsHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        query = select(models.ExtensionRequest)
        if self.get_argument("status", models.PENDING) != "all":
            query = query.where(models.ExtensionRequest.status == self.get_argument("status", models.PENDING))
        if not await self.is_admin():
            query = query.where(models.ExtensionRequest.user == self.username)
        rows = self.db.scalars(query.order_by(models.ExtensionRequest.created_at.desc()).limit(500))
        self.write_json({"requests": [r.to_dict() for r in rows]})


class RequestHandler(BaseHandler):
    @web.authenticated
    async def post(self, request_id: str) -> None:
        if not await self.is_admin():
            raise web.HTTPError(403, "Only administrators decide on extension requests.")
        request = self.db.get(models.ExtensionRequest, int(request_id)) if len(request_id) < 16 else None
        if request is None:
            raise web.HTTPError(404, f"No extension request {request_id}.")
        data = self.body()
        decision = data.get("decision")
        if decision not in ("accept", "refuse"):
            raise web.HTTPError(400, 'decision must be "accept" or "refuse"')
        await self.guarded(self.sessions.decide_request(request, decision == "accept", str(data.get("answer") or ""),
                                                        self.username))
        self.write_json({"request": request.to_dict(), "instance": self.sessions.view(request.instance)})


class AuditHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        if not await self.is_admin():
            raise web.HTTPError(403, "Only administrators read the audit trail.")
        query = select(models.AuditEvent)
        if self.get_argument("user", ""):
            query = query.where(models.AuditEvent.user == self.get_argument("user"))
        limit = self.get_argument("limit", "200")
        if not limit.isdigit():
            raise web.HTTPError(400, "limit must be a whole number")
        limit = min(int(limit), 5000)
        rows = self.db.scalars(query.order_by(models.AuditEvent.id.desc()).limit(limit))
        self.write_json({"events": [e.to_dict() for e in rows]})


class LastOptionsHandler(BaseHandler):
    @web.authenticated
    async def get(self) -> None:
        rows = self.db.scalars(select(models.LastOptions).where(models.LastOptions.user == self.username)
                               .order_by(models.LastOptions.updated_at.desc()))
        self.write_json({"last_options": [{"experiment": r.experiment, "server_name": r.server_name,
                                           "options": r.options, "updated_at": r.updated_at.isoformat()}
                                          for r in rows]})


class PageHandler(BaseHandler):
    """The person's page (her instances, extend) and the admin page (every instance, requests)."""

    def initialize(self, template: str, admin_only: bool = False) -> None:
        self.template, self.admin_only = template, admin_only

    @web.authenticated
    async def get(self) -> None:
        admin = await self.is_admin()
        if self.admin_only and not admin:
            raise web.HTTPError(403, "This page is for administrators.")
        html = self.settings["page_templates"].get_template(self.template).render(
            user=self.username, admin=admin, prefix=self.settings["service_prefix"],
            xsrf_token=self.xsrf_token.decode(), hub_home=self.sessions.hub_url("home"))
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(html)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        web.RequestHandler.write_error(self, status_code, **kwargs)


class AdminConsoleHandler(BaseHandler):
    """The administrators' page is the hub's operator console (``{hub}/hub/visa/ops``): one page for operators,
    with this service's expiries, extensions and requests next to every instance (see visa_hub.ops.lifetimes)."""

    @web.authenticated
    async def get(self) -> None:
        self.redirect(self.sessions.admin_url())


class AdminCache:
    """Who is a hub admin (from the hub's API, cached for a minute)."""

    def __init__(self, hub, ttl: float = 60.0):
        self.hub, self.ttl = hub, ttl
        self._cache: dict[str, tuple[float, bool]] = {}

    async def is_admin(self, name: str) -> bool:
        cached = self._cache.get(name)
        if cached and time.monotonic() - cached[0] < self.ttl:
            return cached[1]
        model = await self.hub.user(name)
        admin = bool(model and model.get("admin"))
        self._cache[name] = (time.monotonic(), admin)
        return admin


STATIC = Path(__file__).parent / "static"


def routes(prefix: str) -> list[tuple]:
    return [
        (prefix + r"static/(.*)", web.StaticFileHandler, {"path": str(STATIC)}),
        (prefix + "api/instances", InstancesHandler),
        (prefix + f"api/instances/{SERVER_PATH}", InstanceHandler),
        (prefix + f"api/instances/{SERVER_PATH}/extend", ExtendHandler),
        (prefix + f"api/instances/{SERVER_PATH}/expiry", ExpiryHandler),
        (prefix + f"api/instances/{SERVER_PATH}/stop", StopHandler),
        (prefix + "api/requests", RequestsHandler),
        (prefix + r"api/requests/(\d+)", RequestHandler),
        (prefix + "api/audit", AuditHandler),
        (prefix + "api/last-options", LastOptionsHandler),
        (prefix + "admin", AdminConsoleHandler),
        (prefix + "?", PageHandler, {"template": "index.html"}),
    ]
