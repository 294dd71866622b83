"""``/_sim/*``: control the simulator over HTTP (faults, stats, quotas, timings). No auth, not counted.

    POST   /_sim/faults         {"path": "regex", "method": "GET", "status": 500, "delay": 0, "count": 1}
                                or {"server_errors": {"count": 1, "message": "No valid host was found."}}
    GET    /_sim/faults         the current plan;  DELETE /_sim/faults clears it
    GET    /_sim/stats          request counts;    DELETE /_sim/stats resets them
    POST   /_sim/reset          clears faults and stats
    POST   /_sim/quotas         {"project": "<id or name>" (optional), "cores": 4, ...}
    GET    /_sim/settings       POST {"boot_delay": 2.0, "delete_delay": 0, "volume_delay": 0.05}
    GET    /_sim/clouds.yaml    the clouds.yaml document (JSON)
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import TYPE_CHECKING, Any

import tornado.web

if TYPE_CHECKING:
    from .app import OpenStackSimulator

SETTINGS = ("boot_delay", "delete_delay", "volume_delay", "kill_grace", "allow_attach_while_building")


class AdminHandler(tornado.web.RequestHandler):
    def initialize(self, sim: OpenStackSimulator) -> None:
        self.sim = sim

    def body(self) -> Any:
        try:
            return json.loads(self.request.body or b"{}")
        except ValueError:
            raise tornado.web.HTTPError(400, "body must be JSON") from None

    def send(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))


class FaultsAdmin(AdminHandler):
    def get(self) -> None:
        self.send(self.sim.faults.to_dict())

    def post(self) -> None:
        body = self.body()
        if "server_errors" in body:
            self.sim.faults.fail_server_creates(**body["server_errors"])
        for rule in body.get("rules", [body] if "path" in body else []):
            try:
                self.sim.faults.add(**rule)
            except TypeError as exc:
                raise tornado.web.HTTPError(400, str(exc)) from None
        self.send(self.sim.faults.to_dict(), 201)

    def delete(self) -> None:
        self.sim.faults.clear()
        self.send(self.sim.faults.to_dict())


class StatsAdmin(AdminHandler):
    def get(self) -> None:
        self.send(self.sim.stats())

    def delete(self) -> None:
        self.sim.reset_stats()
        self.send({})


class ResetAdmin(AdminHandler):
    def post(self) -> None:
        self.sim.faults.clear()
        self.sim.reset_stats()
        self.send({"faults": self.sim.faults.to_dict(), "stats": {}})


class QuotasAdmin(AdminHandler):
    def get(self) -> None:
        self.send({pid: dataclasses.asdict(q) for pid, q in self.sim.state.quotas.items()})

    def post(self) -> None:
        body = dict(self.body())
        ref = body.pop("project", None)
        project = None
        if ref is not None:
            project = next((p for p in self.sim.state.projects.values() if ref in (p.id, p.name)), None)
            if project is None:
                raise tornado.web.HTTPError(404, f"no project {ref}")
        try:
            quota = self.sim.set_quota(project, **body)
        except ValueError as exc:
            raise tornado.web.HTTPError(400, str(exc)) from None
        self.send(dataclasses.asdict(quota))


class SettingsAdmin(AdminHandler):
    def get(self) -> None:
        self.send({k: getattr(self.sim, k) for k in SETTINGS})

    def post(self) -> None:
        for key, value in self.body().items():
            if key not in SETTINGS:
                raise tornado.web.HTTPError(400, f"unknown setting {key}")
            setattr(self.sim, key, value)
        self.get()


class CloudsAdmin(AdminHandler):
    def get(self) -> None:
        self.send(self.sim.clouds_yaml(use_app_credential=self.get_query_argument("app_credential", "") == "1"))


def admin_routes(sim: OpenStackSimulator) -> list[tuple[str, type[AdminHandler], dict[str, Any]]]:
    return [(f"/_sim/{re.escape(name)}/?", handler, {"sim": sim}) for name, handler in (
        ("faults", FaultsAdmin), ("stats", StatsAdmin), ("reset", ResetAdmin), ("quotas", QuotasAdmin),
        ("settings", SettingsAdmin), ("clouds.yaml", CloudsAdmin))]
