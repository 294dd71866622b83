"""The Session panel's sharing calls, forwarded to the hub's sessions service for this very server.

The service applies the sharing rules and grants or revokes JupyterHub shares; the instance only forwards, with
its own token (``$JUPYTERHUB_API_TOKEN``, which the service accepts for this server only) and the name of the
person who asked. Changing anything is for the owner; collaborators and support may read who is a member.

``GET    visa/api/sharing/members``            members of this instance: role, granted by, until when
``POST   visa/api/sharing/members``            ``{"user": ..., "role": "collaborator"|"guest"}``: share
``DELETE visa/api/sharing/members/<user>``     revoke her share
``GET    visa/api/sharing/candidates?q=``      experiment members and people matching ``q`` (autocomplete)
``GET    visa/api/sharing/requests``           support requests for this instance
``POST   visa/api/sharing/requests/<id>``      ``{"decision": "support"|"guest"|"refuse"}``
``POST   visa/api/sharing/codes``              a share code for guests (where the site enables them)
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ...sharing.roles import OWNER
from .. import sessions_client
from .auth import sharing_state

NO_SERVICE_MESSAGE = ("This server has no sessions service (VISA_SESSIONS_URL is not set), "
                      "so it cannot be shared from here.")


async def call_service(method: str, suffix: str, body: dict[str, Any] | None = None,
                       query: dict[str, str] | None = None) -> tuple[int, bytes]:
    """One sharing call to the sessions service about this server: (status, JSON body); 503 when unreachable."""
    return await sessions_client.call_service(method, suffix, body, query, no_service_message=NO_SERVICE_MESSAGE)


class ForwardHandler(APIHandler):
    """Base: who may ask, and passing the service's answer on."""

    def check_role(self, owner_only: bool = True) -> str:
        state = sharing_state(self)
        model = self.current_user.hub_user if hasattr(self.current_user, "hub_user") else {}
        name = model.get("name") or self.current_user.username
        if state is None:
            if name != os.environ.get("JUPYTERHUB_USER"):
                raise web.HTTPError(403, "Only the owner of this instance shares it.")
            return name
        role = state.role_of(model)
        if owner_only and role != OWNER:
            raise web.HTTPError(403, f"Only the owner of this instance ({state.owner}) shares it.")
        if role is None:
            raise web.HTTPError(403, "This instance is not shared with you.")
        return name

    async def relay(self, method: str, suffix: str, body: dict[str, Any] | None = None,
                    query: dict[str, str] | None = None) -> None:
        status, payload = await call_service(method, suffix, body, query)
        state = sharing_state(self)
        if state is not None and method != "GET" and status < 300:
            await state.refresh_shares()  # the change applies here at once, not at the next reading
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(payload)

    def body(self) -> dict[str, Any]:
        data = self.get_json_body() or {}
        if not isinstance(data, dict):
            raise web.HTTPError(400, "Send a JSON object.")
        return data


class MembersHandler(ForwardHandler):
    @web.authenticated
    async def get(self) -> None:
        self.check_role(owner_only=False)
        await self.relay("GET", "shares")

    @web.authenticated
    async def post(self) -> None:
        actor = self.check_role()
        data = self.body()
        await self.relay("POST", "shares", {"user": str(data.get("user") or "").strip(),
                                            "role": str(data.get("role") or ""), "actor": actor})


class MemberHandler(ForwardHandler):
    @web.authenticated
    async def delete(self, user: str) -> None:
        actor = self.check_role()
        await self.relay("POST", f"shares/{quote(user, safe='')}/revoke", {"actor": actor})


class CandidatesHandler(ForwardHandler):
    @web.authenticated
    async def get(self) -> None:
        self.check_role()
        await self.relay("GET", "candidates", query={"q": self.get_argument("q", "")[:100]})


class RequestsHandler(ForwardHandler):
    @web.authenticated
    async def get(self) -> None:
        self.check_role()
        await self.relay("GET", "support-requests")


class RequestHandler(ForwardHandler):
    @web.authenticated
    async def post(self, request_id: str) -> None:
        actor = self.check_role()
        decision = str(self.body().get("decision") or "")
        await self.relay("POST", f"support-requests/{request_id}", {"decision": decision, "actor": actor})


class CodesHandler(ForwardHandler):
    @web.authenticated
    async def post(self) -> None:
        actor = self.check_role()
        data = self.body()
        await self.relay("POST", "share-codes", {"expires_in": data.get("expires_in"), "actor": actor})


async def report_event(record: dict[str, Any]) -> None:
    """Send one sharing event of this instance (join, leave, owner away, ...) to the service's audit trail."""
    await call_service("POST", "sharing-events", record)


def setup_forwarding(web_app: Any) -> None:
    base_url = web_app.settings["base_url"]
    prefix = url_path_join(base_url, "visa/api/sharing/")
    web_app.add_handlers(".*$", [
        (prefix + "members", MembersHandler),
        (prefix + "members/([^/]+)", MemberHandler),
        (prefix + "candidates", CandidatesHandler),
        (prefix + "requests", RequestsHandler),
        (prefix + r"requests/(\d+)", RequestHandler),
        (prefix + "codes", CodesHandler),
    ])
