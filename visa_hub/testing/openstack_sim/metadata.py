"""The metadata service a VM reads its user_data and metadata from (Nova's ``/openstack/latest/...``).

A real cloud serves it at ``http://169.254.169.254`` and tells servers apart by their source address; it has
no other authentication, so every unix user of a VM can read that VM's user_data. Simulated VMs share the
host's loopback network, so here each server has its own URL instead, given to it as
``$VISA_SIM_METADATA_URL``::

    GET <simulator>/metadata/<server id>/openstack/latest/user_data        (404 without user_data)
    GET <simulator>/metadata/<server id>/openstack/latest/meta_data.json
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import tornado.web

from .userdata import UserDataError, decode_user_data

if TYPE_CHECKING:
    from .app import OpenStackSimulator

PREFIX = "/metadata"


def metadata_url(sim: OpenStackSimulator, server_id: str) -> str:
    """What a server's VM uses instead of ``http://169.254.169.254``."""
    return f"{sim.url}{PREFIX}/{server_id}"


class MetadataHandler(tornado.web.RequestHandler):
    def initialize(self, sim: OpenStackSimulator) -> None:
        self.sim = sim

    def get(self, server_id: str, item: str) -> None:
        server = self.sim.state.servers.get(server_id)
        if server is None or server.deleted:
            raise tornado.web.HTTPError(404)
        if item == "user_data":
            try:
                data = decode_user_data(server.user_data) if server.user_data else None
            except UserDataError:
                data = None
            if data is None:
                raise tornado.web.HTTPError(404)
            self.set_header("Content-Type", "text/plain")
            self.finish(data)
        elif item == "meta_data.json":
            body: dict[str, Any] = {"uuid": server.id, "name": server.name, "hostname": server.name,
                                    "availability_zone": server.availability_zone, "project_id": server.project_id,
                                    "meta": server.metadata, "launch_index": 0}
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
        else:
            raise tornado.web.HTTPError(404)


def metadata_routes(sim: OpenStackSimulator) -> list[tuple[str, type, dict[str, Any]]]:
    return [(rf"{PREFIX}/([0-9a-f-]+)/openstack/latest/(user_data|meta_data\.json)", MetadataHandler, {"sim": sim})]
