"""The operator console's page and its JSON API, served by JupyterHub itself (``c.JupyterHub.extra_handlers``).

================================  ========================================================================
``GET {hub}/hub/visa/ops``        the page (JupyterHub's page template; the table is filled by its script)
``GET {hub}/hub/api/visa/ops/instances``  every instance as a row (``?experiment=&instrument=&backend=&state=&owner=``
                                  filter), the filters' choices, and whether the caller may stop instances
``GET {hub}/hub/api/visa/ops/status``     the User Office's and every backend's status (reachable, quota used)
================================  ========================================================================

Who may look: whoever holds JupyterHub's ``list:users`` and ``read:servers`` scopes on *every* user (hub
admins; support staff through the ``visa-support`` role). Stopping is JupyterHub's own REST API
(``DELETE /hub/api/users/<owner>/servers/<name>``), which needs ``delete:servers``: admins have it, support
staff do not, so for them the page shows no Stop button and the API refuses.
"""

from __future__ import annotations

from typing import Any

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.handlers.base import BaseHandler
from jupyterhub.scopes import Scope
from jupyterhub.utils import url_path_join
from tornado import web

from ..site import VisaSite
from . import status
from .config import OperatorConsole
from .instances import FILTERS, choices, instance_rows, matching

TEMPLATE = "visa_ops.html"


def _everyone(parsed_scopes: dict[str, Any], scope: str) -> bool:
    """Whether ``scope`` is held without a filter (on every user, not just some)."""
    return parsed_scopes.get(scope) == Scope.ALL


def may_view(parsed_scopes: dict[str, Any]) -> bool:
    return _everyone(parsed_scopes, "list:users") and _everyone(parsed_scopes, "read:servers")


def may_stop(parsed_scopes: dict[str, Any]) -> bool:
    return _everyone(parsed_scopes, "delete:servers")


class OpsMixin:
    """What the page and the API share: the permission check and the rows."""

    def check_ops_access(self) -> None:
        if not may_view(self.parsed_scopes):  # type: ignore[attr-defined]
            raise web.HTTPError(403, "The operator console is for administrators and support staff.")

    @property
    def console(self) -> OperatorConsole:
        return OperatorConsole.instance(config=self.settings["config"])  # type: ignore[attr-defined]

    def active_users(self) -> list[Any]:
        """Hub users with a server that runs, starts or stops (one database query)."""
        db = self.db  # type: ignore[attr-defined]
        user_ids = {s.user_id for s in db.query(orm.Spawner).filter(orm.Spawner.server_id.isnot(None))}
        orm_users = db.query(orm.User).filter(orm.User.id.in_(user_ids)).all() if user_ids else []
        return [self.users[orm_user] for orm_user in orm_users]  # type: ignore[attr-defined]


class OpsPageHandler(OpsMixin, BaseHandler):
    """``{hub}/hub/visa/ops``: the console."""

    @web.authenticated
    async def get(self) -> None:
        self.check_ops_access()
        hub = self.hub.base_url
        html = await self.render_template(
            TEMPLATE,
            can_stop=may_stop(self.parsed_scopes),
            instances_url=url_path_join(hub, "api/visa/ops/instances"),
            status_url=url_path_join(hub, "api/visa/ops/status"),
            lifetimes_url=url_path_join(hub, "api/visa/ops/lifetimes/"),
            users_api_url=url_path_join(hub, "api/users"),
            filters={name: self.get_argument(name, "") for name in FILTERS},
            refresh_seconds=self.console.refresh_seconds,
        )
        self.set_header("Cache-Control", "no-store")
        self.finish(html)


class OpsInstancesAPIHandler(OpsMixin, APIHandler):
    """``{hub}/hub/api/visa/ops/instances``: the rows, filtered."""

    async def get(self) -> None:
        self.check_ops_access()
        console = self.console
        rows = instance_rows(self.active_users(), VisaSite.now(), self.hub.base_url, console.links(),
                             console.backend_urls)
        wanted = {name: self.get_argument(name, "") for name in FILTERS}
        self.set_header("Cache-Control", "no-store")
        self.finish({
            "now": VisaSite.now().isoformat(),
            "can_stop": may_stop(self.parsed_scopes),
            "total": len(rows),
            "choices": choices(rows),
            "filters": {k: v for k, v in wanted.items() if v},
            "instances": matching(rows, wanted),
        })


class OpsStatusAPIHandler(OpsMixin, APIHandler):
    """``{hub}/hub/api/visa/ops/status``: the User Office and the backends."""

    async def get(self) -> None:
        self.check_ops_access()
        site = VisaSite.instance(config=self.settings["config"], log=self.log)
        statuses = await status.collect([status.user_office_status(site.user_office)],
                                        timeout=self.console.status_timeout)
        self.set_header("Cache-Control", "no-store")
        self.finish({"statuses": statuses})


ROUTES = [
    (r"/visa/ops/?", OpsPageHandler),
    (r"/api/visa/ops/instances", OpsInstancesAPIHandler),
    (r"/api/visa/ops/status", OpsStatusAPIHandler),
]
