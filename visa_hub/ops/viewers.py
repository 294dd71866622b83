"""``POST /hub/api/visa/desktop-viewers/<user>/<server>``: an instance reports who is on its desktop, by role.

The instance (:mod:`visa_hub.singleuser.sharing.viewers`) sends ``{"viewers": {"owner": 1, "guest": 2}}``
with its own server token (``$JUPYTERHUB_API_TOKEN``) whenever the numbers change; the hub keeps the last
report of each instance for ``visa_desktop_viewers`` on ``/hub/metrics`` (:func:`visa_hub.metrics.set_desktop_viewers`).

JupyterHub's scopes decide who may report, as for its own activity reports: the token needs ``users:activity``
for the server's owner *and* ``access:servers`` for that very server. A server's token has both for itself only
(JupyterHub's ``server`` role: ``users:activity!user``, ``access:servers!server``), so alice's instance can
neither report for bob's nor for another of her own; a collaborator, who has access to her server but not her
activity, cannot either. Admins and the owner's own full tokens can (they could stop the server anyway).
"""

from __future__ import annotations

from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from ..metrics import set_desktop_viewers

#: Bytes a report may take; a real one is well under 100.
MAX_BODY = 1024
USAGE = 'Send a JSON object {"viewers": {"<role>": <people>, ...}} (roles: owner, collaborator, support, guest).'


class DesktopViewersAPIHandler(APIHandler):
    """An instance's report of the people on its desktop now (replaces its previous report)."""

    @needs_scope("users:activity")
    async def post(self, user_name: str, server_name: str) -> None:
        instance = f"{user_name}/{server_name}"
        if not self.has_scope(f"access:servers!server={instance}"):
            self.log.warning("Refused a desktop viewers report for %s: the token is not that server's", instance)
            raise web.HTTPError(403, f"Only the server {instance} itself reports who is on its desktop.")
        viewers = self._viewers()
        user = self.find_user(user_name)
        if user is None or server_name not in user.orm_user.orm_spawners or not user.spawners[server_name].active:
            raise web.HTTPError(404, f"{instance} is not running: nothing to report for it.")
        try:
            set_desktop_viewers(user_name, server_name, viewers, run=user.spawners[server_name].orm_spawner.started)
        except ValueError as exc:
            raise web.HTTPError(400, f"{exc}. {USAGE}") from None
        self.log.debug("Desktop viewers on %s: %s", instance, viewers or "none")
        self.set_header("Content-Type", "application/json")
        self.finish({"viewers": {role: count for role, count in viewers.items() if count}})

    def _viewers(self) -> dict[str, Any]:
        if len(self.request.body or b"") > MAX_BODY:
            raise web.HTTPError(413, f"The report is larger than {MAX_BODY} bytes. {USAGE}")
        body = self.get_json_body()  # JupyterHub's: invalid JSON is a 400 already
        if not isinstance(body, dict) or set(body) != {"viewers"} or not isinstance(body["viewers"], dict):
            raise web.HTTPError(400, USAGE)
        return body["viewers"]


ROUTES = [(r"/api/visa/desktop-viewers/([^/]+)/([^/]*)", DesktopViewersAPIHandler)]
