"""Nova v2.1: servers (with tags, metadata, actions, volume attachments), flavors, keypairs, limits."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import re
from typing import TYPE_CHECKING, Any

from .base import ApiError, SimHandler, VersionHandler
from .state import Flavor, Server, isotime, new_uuid, utcnow

if TYPE_CHECKING:
    from .app import OpenStackSimulator

MIN_VERSION, MAX_VERSION = "2.1", "2.96"
MAX_LIMIT = 1000
CORE_UPDATED = "2013-07-23T11:33:21Z"


def _version(sim: OpenStackSimulator) -> dict[str, Any]:
    return {
        "id": "v2.1", "status": "CURRENT", "version": MAX_VERSION, "min_version": MIN_VERSION,
        "updated": CORE_UPDATED, "links": [{"rel": "self", "href": f"{sim.url}/compute/v2.1/"},
                                           {"rel": "describedby", "type": "text/html",
                                            "href": "http://docs.openstack.org/"}],
        "media-types": [{"base": "application/json",
                         "type": "application/vnd.openstack.compute+json;version=2.1"}],
    }


def versions_document(sim: OpenStackSimulator) -> dict[str, Any]:
    v20 = {"id": "v2.0", "status": "SUPPORTED", "version": "", "min_version": "",
           "updated": "2011-01-21T11:33:21Z", "links": [{"rel": "self", "href": f"{sim.url}/compute/v2/"}]}
    current = _version(sim)
    return {"versions": [v20, {k: current[k] for k in ("id", "status", "version", "min_version",
                                                        "updated")} | {"links": current["links"][:1]}]}


def version_document(sim: OpenStackSimulator) -> dict[str, Any]:
    return {"version": _version(sim)}


def _parse_time(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(400, f"Invalid input for query parameters changes-since. Value: {text}.") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _ref_id(ref: Any) -> str:
    """``flavorRef``/``imageRef`` may be an id or a URL ending in it."""
    return str(ref).rstrip("/").rsplit("/", 1)[-1]


def validate_tags(tags: Any) -> list[str]:
    if not isinstance(tags, list) or len(tags) > 50:
        raise ApiError(400, f"Invalid input for field/attribute tags. Value: {tags!r}. Too many tags (max 50).")
    for tag in tags:
        if not isinstance(tag, str) or not 1 <= len(tag) <= 60 or "/" in tag or "," in tag:
            raise ApiError(400, f"Invalid input for field/attribute tags. Value: {tag!r}. "
                                "Tags must be 1-60 characters without '/' or ','.")
    return list(dict.fromkeys(tags))


def validate_metadata(metadata: Any) -> dict[str, str]:
    if not isinstance(metadata, dict):
        raise ApiError(400, "Invalid input for field/attribute metadata. Value must be an object.")
    for key, value in metadata.items():
        if not isinstance(value, str) or not 1 <= len(key) <= 255 or len(value) > 255:
            raise ApiError(400, f"Invalid input for field/attribute metadata. Value: {metadata}. "
                                f"Metadata key and value must be strings of at most 255 characters ({key!r}).")
    if len(metadata) > 128:
        raise ApiError(403, f"Quota exceeded for metadata_items: Requested {len(metadata)}, but already used 0 "
                            "of 128 metadata_items")
    return dict(metadata)


class NovaHandler(SimHandler):
    style = "nova"
    microversion_service = "compute"
    min_version, max_version = MIN_VERSION, MAX_VERSION
    legacy_version_header = "X-OpenStack-Nova-API-Version"

    @property
    def base(self) -> str:
        return f"{self.sim.url}/compute/v2.1"

    def find_server(self, server_id: str) -> Server:
        server = self.sim.state.servers.get(server_id)
        if server is None or server.deleted or server.project_id != self.project_id:
            raise ApiError(404, f"Instance {server_id} could not be found.")
        return server

    def require_version(self, text: str) -> None:
        if not self.version_at_least(text):
            raise ApiError(404, "The resource could not be found.")

    def links(self, kind: str, item_id: str) -> list[dict[str, str]]:
        return [{"rel": "self", "href": f"{self.base}/{kind}/{item_id}"},
                {"rel": "bookmark", "href": f"{self.sim.url}/compute/{kind}/{item_id}"}]

    # ---------------------------------------------------------------- views

    def server_view(self, s: Server, detail: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"id": s.id, "name": s.name, "links": self.links("servers", s.id)}
        if not detail:
            return body
        state = self.sim.state
        addresses: dict[str, list[dict[str, Any]]] = {}
        for port_id in s.port_ids:
            port = state.ports.get(port_id)
            if port is None:
                continue
            entries = addresses.setdefault(state.networks[port["network_id"]]["name"], [])
            for fixed in port["fixed_ips"]:
                entries.append({"version": 4, "addr": fixed["ip_address"], "OS-EXT-IPS:type": "fixed",
                                "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
            for fip in state.floating_ips.values():
                if fip["port_id"] == port_id:
                    entries.append({"version": 4, "addr": fip["floating_ip_address"],
                                    "OS-EXT-IPS:type": "floating",
                                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
        flavor: dict[str, Any]
        if self.version_at_least("2.47"):
            flavor = {"vcpus": s.flavor.vcpus, "ram": s.flavor.ram, "disk": s.flavor.disk,
                      "ephemeral": s.flavor.ephemeral, "swap": s.flavor.swap,
                      "original_name": s.flavor.name, "extra_specs": dict(s.flavor.extra_specs)}
        else:
            flavor = {"id": s.flavor.id, "links": self.links("flavors", s.flavor.id)[1:]}
        image: Any = ({"id": s.image_id, "links": self.links("images", s.image_id)[1:]}
                      if s.image_id else "")
        body.update({
            "status": s.status, "tenant_id": s.project_id, "user_id": s.user_id,
            "metadata": dict(s.metadata),
            "hostId": hashlib.sha224((s.project_id + "sim-host").encode()).hexdigest()
            if s.status != "BUILD" or s.task_state != "scheduling" else "",
            "image": image, "flavor": flavor,
            "created": isotime(s.created), "updated": isotime(s.updated),
            "addresses": addresses, "accessIPv4": s.ip or "", "accessIPv6": "",
            "OS-DCF:diskConfig": "MANUAL", "progress": s.progress,
            "OS-EXT-AZ:availability_zone": s.availability_zone if s.task_state != "scheduling" else "",
            "config_drive": "", "key_name": s.key_name,
            "OS-SRV-USG:launched_at": isotime(s.launched_at, micro=True, zulu=False),
            "OS-SRV-USG:terminated_at": isotime(s.terminated_at, micro=True, zulu=False),
            "security_groups": [{"name": n} for n in s.security_groups],
            "OS-EXT-STS:task_state": s.task_state, "OS-EXT-STS:vm_state": s.vm_state,
            "OS-EXT-STS:power_state": s.power_state,
            "os-extended-volumes:volumes_attached": [
                {"id": a.volume_id, "delete_on_termination": a.delete_on_termination} for a in s.attachments
            ],
            "locked": False,
        })
        if s.fault is not None:
            body["fault"] = {"code": s.fault["code"], "message": s.fault["message"],
                             "created": isotime(s.fault["created"])}
        for version, extra in (("2.19", {"description": s.description}), ("2.26", {"tags": list(s.tags)}),
                               ("2.63", {"trusted_image_certificates": None}),
                               ("2.71", {"server_groups": []}), ("2.73", {"locked_reason": None}),
                               ("2.96", {"pinned_availability_zone": None})):
            if self.version_at_least(version):
                body.update(extra)
        return body

    def flavor_view(self, f: Flavor, detail: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {"id": f.id, "name": f.name, "links": self.links("flavors", f.id)}
        if self.version_at_least("2.55"):
            body["description"] = f.description
        if not detail:
            return body
        body.update({"ram": f.ram, "disk": f.disk, "vcpus": f.vcpus, "OS-FLV-EXT-DATA:ephemeral": f.ephemeral,
                     "OS-FLV-DISABLED:disabled": False, "swap": f.swap if f.swap or self.version_at_least(
                         "2.75") else "", "rxtx_factor": 1.0, "os-flavor-access:is_public": f.is_public})
        if self.version_at_least("2.61"):
            body["extra_specs"] = dict(f.extra_specs)
        return body


# -------------------------------------------------------------------- servers


class ServersHandler(NovaHandler):
    """``GET /servers`` (and ``/servers/detail``) with Nova's filters; ``POST /servers``."""

    def initialize(self, sim: OpenStackSimulator, template: str, detail: bool = False) -> None:
        super().initialize(sim, template)
        self.detail = detail

    def get(self) -> None:
        servers = self.filtered()
        sort_key = self.query("sort_key") or "created"
        reverse = (self.query("sort_dir") or "desc") == "desc"
        servers.sort(key=lambda s: (str(getattr(s, sort_key, s.created)), s.id), reverse=reverse)
        marker = self.query("marker")
        if marker:
            ids = [s.id for s in servers]
            if marker not in ids:
                raise ApiError(400, f"marker [{marker}] not found")
            servers = servers[ids.index(marker) + 1:]
        limit = min(int(self.query("limit") or MAX_LIMIT), MAX_LIMIT)
        servers = servers[:limit]
        body: dict[str, Any] = {"servers": [self.server_view(s, self.detail) for s in servers]}
        if servers and len(servers) == limit:
            path = "servers/detail" if self.detail else "servers"
            body["servers_links"] = [{"rel": "next",
                                      "href": f"{self.base}/{path}?limit={limit}&marker={servers[-1].id}"}]
        self.send_json(body)

    def filtered(self) -> list[Server]:
        changes_since = self.query("changes-since")
        changes_before = self.query("changes-before")
        servers = [s for s in self.sim.state.servers.values() if s.project_id == self.project_id
                   and (not s.deleted or changes_since or changes_before)]
        if changes_since:
            since = _parse_time(changes_since)
            servers = [s for s in servers if s.updated >= since]
        if changes_before:
            before = _parse_time(changes_before)
            servers = [s for s in servers if s.updated <= before]
        name = self.query("name")
        if name:
            try:
                pattern = re.compile(name)
            except re.error:
                pattern = re.compile(re.escape(name))
            servers = [s for s in servers if pattern.search(s.name)]
        statuses = [v.upper() for v in self.get_query_arguments("status")]
        if statuses:
            servers = [s for s in servers if s.status in statuses]
        for key, attr in (("image", "image_id"), ("flavor", "flavor")):
            value = self.query(key)
            if value:
                servers = [s for s in servers if (s.flavor.id if attr == "flavor" else s.image_id) == value]
        ip = self.query("ip")
        if ip:
            servers = [s for s in servers if s.ip and re.search(ip, s.ip)]
        if self.version_at_least("2.26"):
            for key, keep, check in (("tags", True, all), ("tags-any", True, any),
                                     ("not-tags", False, all), ("not-tags-any", False, any)):
                value = self.query(key)
                if value:
                    wanted = value.split(",")
                    servers = [s for s in servers if check(t in s.tags for t in wanted) == keep]
        return servers

    def post(self) -> None:
        server = ServerFactory(self).build(self.json_body("server"))
        self.sim.state.servers[server.id] = server
        self.sim.compute.boot(server)
        self.set_header("Location", f"{self.base}/servers/{server.id}")
        self.send_json({"server": {"id": server.id, "links": self.links("servers", server.id),
                                   "OS-DCF:diskConfig": "MANUAL",
                                   "security_groups": [{"name": n} for n in server.security_groups],
                                   "adminPass": server.admin_pass}}, 202)


class ServerFactory:
    """Validates a ``POST /servers`` body the way nova-api does and builds the Server."""

    def __init__(self, handler: NovaHandler) -> None:
        self.h = handler
        self.sim = handler.sim
        self.state = handler.sim.state

    def build(self, body: dict[str, Any]) -> Server:
        h = self.h
        name = body.get("name")
        if not isinstance(name, str) or not 1 <= len(name.strip()) <= 255:
            raise ApiError(400, f"Invalid input for field/attribute name. Value: {name!r}.")
        flavor_ref = body.get("flavorRef")
        if flavor_ref is None:
            raise ApiError(400, "Invalid input for field/attribute server. 'flavorRef' is a required property")
        flavor = self.state.flavors.get(_ref_id(flavor_ref))
        if flavor is None:
            raise ApiError(400, f"Flavor {_ref_id(flavor_ref)} could not be found.")
        bdms = self.block_devices(body.get("block_device_mapping_v2") or [])
        image_id = _ref_id(body["imageRef"]) if body.get("imageRef") else None
        if image_id is None:
            image_id = next((b["image_id"] for b in bdms if b.get("boot_index") == 0 and b.get("image_id")
                             and not b.get("volume_id")), None)
        if image_id is not None and image_id not in self.state.images:
            raise ApiError(400, f"Image {image_id} could not be found.")
        if image_id is None and not any(b.get("boot_index") == 0 for b in bdms):
            raise ApiError(400, "Block Device Mapping is Invalid: Boot sequence for the instance and "
                                "image/block device mapping combination is not valid.")
        networks = self.networks(body.get("networks"))
        security_groups = self.security_groups(body.get("security_groups") or [{"name": "default"}])
        metadata = validate_metadata(body.get("metadata", {}))
        tags: list[str] = []
        if "tags" in body:
            if not h.version_at_least("2.52"):
                raise ApiError(400, "Invalid input for field/attribute server. Additional properties are "
                                    "not allowed ('tags' was unexpected)")
            tags = validate_tags(body["tags"])
        user_data = body.get("user_data")
        if user_data is not None:
            try:
                base64.b64decode(user_data, validate=True)
            except (binascii.Error, ValueError, TypeError):
                raise ApiError(400, "User data needs to be valid base 64.") from None
            if len(user_data) > 65535:
                raise ApiError(400, "User data too large. User data must be no larger than 65535 bytes "
                                    "once base64 encoded.")
        key_name = body.get("key_name")
        if key_name is not None and key_name not in self.sim.keypairs.get(h.token.user.id, {}):
            raise ApiError(400, "Invalid key_name provided.")
        if int(body.get("max_count", 1)) != 1 or int(body.get("min_count", 1)) != 1:
            raise ApiError(400, "The simulator creates one server per request (min_count = max_count = 1).")
        self.sim.compute.check_compute_quota(h.project_id, flavor)
        self.reserve_volumes(bdms)
        now = utcnow()
        return Server(
            id=new_uuid(), name=name, project_id=h.project_id, user_id=h.token.user.id, flavor=flavor,
            image_id=image_id, created=now, updated=now, metadata=metadata, tags=tags,
            user_data=user_data, requested_networks=networks, security_groups=security_groups,
            block_devices=[b for b in bdms if b.get("volume_id")], key_name=key_name,
            description=body.get("description") if h.version_at_least("2.19") else None,
            availability_zone=body.get("availability_zone") or "nova",
        )

    def networks(self, requested: Any) -> list[dict[str, Any]]:
        if requested is None:
            if self.h.version_at_least("2.37"):
                raise ApiError(400, "Invalid input for field/attribute server. 'networks' is a required "
                                    "property")
            requested = "auto"
        if requested == "none":
            return []
        if requested == "auto":
            own = [n for n in self.state.networks.values()
                   if n["project_id"] == self.h.project_id and not n["router:external"]]
            if not own:
                raise ApiError(400, "Unable to automatically allocate a network for project "
                                    f"{self.h.project_id}")
            return [{"uuid": own[0]["id"]}]
        if not isinstance(requested, list):
            raise ApiError(400, f"Invalid input for field/attribute networks. Value: {requested!r}.")
        result = []
        for entry in requested:
            if entry.get("port"):
                port = self.state.ports.get(entry["port"])
                if port is None or port["project_id"] != self.h.project_id:
                    raise ApiError(404, f"Port id {entry['port']} could not be found.")
                if port["device_id"]:
                    raise ApiError(409, f"Port {port['id']} is still in use.")
                result.append({"port": port["id"]})
                continue
            network = self.state.networks.get(str(entry.get("uuid")))
            if network is None or (network["project_id"] != self.h.project_id and not network["shared"]):
                raise ApiError(400, f"Network {entry.get('uuid')} could not be found.")
            result.append({"uuid": network["id"], "fixed_ip": entry.get("fixed_ip")})
        return result

    def security_groups(self, requested: list[dict[str, Any]]) -> list[str]:
        names = []
        for entry in requested:
            ref = entry.get("name")
            group = next((g for g in self.state.security_groups.values()
                          if g["project_id"] == self.h.project_id and ref in (g["name"], g["id"])), None)
            if group is None:
                raise ApiError(400, f"Security group {ref} not found.")
            names.append(group["name"])
        return list(dict.fromkeys(names))

    def block_devices(self, mappings: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Check ``block_device_mapping_v2``; volumes to attach get ``volume_id``."""
        result = []
        for bdm in mappings:
            source, dest = bdm.get("source_type"), bdm.get("destination_type", "volume")
            boot_index = bdm.get("boot_index")
            entry: dict[str, Any] = {"boot_index": int(boot_index) if boot_index not in (None, "none") else None,
                                     "delete_on_termination": bool(bdm.get("delete_on_termination", False)),
                                     "tag": bdm.get("tag")}
            if source == "volume" and dest == "volume":
                volume = self.state.volumes.get(str(bdm.get("uuid")))
                if volume is None or volume.project_id != self.h.project_id:
                    raise ApiError(400, f"Block Device Mapping is Invalid: failed to get volume {bdm.get('uuid')}.")
                if volume.status != "available":
                    raise ApiError(400, f"Invalid volume: volume '{volume.id}' status must be 'available'. "
                                        f"Currently in '{volume.status}'")
                entry["volume_id"] = volume.id
            elif source == "image" and dest == "local":
                entry["image_id"] = _ref_id(bdm.get("uuid"))
            elif source in ("image", "blank") and dest == "volume":
                size = int(bdm.get("volume_size") or 1)
                volume = self.sim.compute.create_volume(self.h.project_id, self.h.token.user.id, size,
                                                name="", image_id=_ref_id(bdm["uuid"]) if source == "image"
                                                else None)
                entry["volume_id"] = volume.id
                entry["created"] = True
            else:
                raise ApiError(400, f"Block Device Mapping is Invalid: source_type {source} with "
                                    f"destination_type {dest} is not supported by the simulator.")
            result.append(entry)
        return result

    def reserve_volumes(self, bdms: list[dict[str, Any]]) -> None:
        for bdm in bdms:
            if bdm.get("volume_id") and not bdm.get("created"):
                volume = self.state.volumes[bdm["volume_id"]]
                volume.status = "reserved"
                volume.touch()


class ServerHandler(NovaHandler):
    """``GET``/``PUT``/``DELETE /servers/{id}``."""

    def get(self, server_id: str) -> None:
        self.send_json({"server": self.server_view(self.find_server(server_id))})

    def put(self, server_id: str) -> None:
        server = self.find_server(server_id)
        body = self.json_body("server")
        if "name" in body:
            server.name = str(body["name"])
        if "description" in body and self.version_at_least("2.19"):
            server.description = body["description"]
        if "accessIPv4" in body:
            server.ip = body["accessIPv4"] or server.ip
        server.touch()
        self.send_json({"server": self.server_view(server)})

    def delete(self, server_id: str) -> None:
        server = self.find_server(server_id)
        if server.task_state != "deleting":
            self.sim.compute.delete(server)
        self.no_content()


class ServerActionHandler(NovaHandler):
    """``POST /servers/{id}/action``: start, stop, reboot, console output, security groups."""

    POWER_STATES = {"os-stop": ("active",), "os-start": ("stopped",), "reboot": ("active", "stopped")}

    def post(self, server_id: str) -> None:
        server = self.find_server(server_id)
        body = self.json_body()
        if not isinstance(body, dict) or len(body) != 1:
            raise ApiError(400, "Malformed request body")
        (action, args), = body.items()
        if action in self.POWER_STATES:
            if server.vm_state not in self.POWER_STATES[action] or server.task_state is not None:
                where = f"task_state {server.task_state}" if server.task_state else f"vm_state {server.vm_state}"
                raise ApiError(409, f"Cannot '{action.removeprefix('os-')}' instance {server.id} while it is "
                                    f"in {where}")
            self.sim.compute.power(server, action)
            return self.no_content(202)
        if action == "os-getConsoleOutput":
            path = self.sim.compute.console_log(server)
            text = path.read_text(errors="replace") if path.exists() else ""
            length = (args or {}).get("length")
            if length not in (None, -1, "-1"):
                text = "".join(text.splitlines(keepends=True)[-int(length):])
            return self.send_json({"output": text})
        if action in ("addSecurityGroup", "removeSecurityGroup"):
            return self.security_group(server, action, (args or {}).get("name"))
        raise ApiError(400, f"There is no such action: {action}")

    def security_group(self, server: Server, action: str, name: Any) -> None:
        state = self.sim.state
        group = next((g for g in state.security_groups.values()
                      if g["project_id"] == server.project_id and name in (g["name"], g["id"])), None)
        if group is None:
            raise ApiError(404, f"Security group {name} not found for project {server.project_id}.")
        for port_id in server.port_ids:
            groups = state.ports[port_id]["security_groups"]
            if action == "addSecurityGroup" and group["id"] not in groups:
                groups.append(group["id"])
            elif action == "removeSecurityGroup" and group["id"] in groups:
                groups.remove(group["id"])
        if action == "addSecurityGroup" and group["name"] not in server.security_groups:
            server.security_groups.append(group["name"])
        elif action == "removeSecurityGroup" and group["name"] in server.security_groups:
            server.security_groups.remove(group["name"])
        self.no_content(202)


class ServerIpsHandler(NovaHandler):
    def get(self, server_id: str) -> None:
        view = self.server_view(self.find_server(server_id))
        self.send_json({"addresses": {net: [{"version": a["version"], "addr": a["addr"]} for a in addrs]
                                      for net, addrs in view["addresses"].items()}})


# -------------------------------------------------------------------- metadata and tags


class MetadataHandler(NovaHandler):
    """``/servers/{id}/metadata``: GET, PUT (replace), POST (merge)."""

    def get(self, server_id: str) -> None:
        self.send_json({"metadata": dict(self.find_server(server_id).metadata)})

    def put(self, server_id: str) -> None:
        self._update(server_id, replace=True)

    def post(self, server_id: str) -> None:
        self._update(server_id, replace=False)

    def _update(self, server_id: str, replace: bool) -> None:
        server = self.find_server(server_id)
        body = self.json_body()
        metadata = validate_metadata((body or {}).get("metadata") if isinstance(body, dict) else None)
        server.metadata = metadata if replace else {**server.metadata, **metadata}
        server.touch()
        self.send_json({"metadata": dict(server.metadata)})


class MetadataItemHandler(NovaHandler):
    """``/servers/{id}/metadata/{key}``: GET, PUT, DELETE."""

    def get(self, server_id: str, key: str) -> None:
        server = self.find_server(server_id)
        if key not in server.metadata:
            raise ApiError(404, "Metadata item was not found")
        self.send_json({"meta": {key: server.metadata[key]}})

    def put(self, server_id: str, key: str) -> None:
        server = self.find_server(server_id)
        meta = self.json_body("meta")
        if list(meta) != [key]:
            raise ApiError(400, "Request body and URI mismatch")
        server.metadata.update(validate_metadata(meta))
        server.touch()
        self.send_json({"meta": meta})

    def delete(self, server_id: str, key: str) -> None:
        server = self.find_server(server_id)
        if server.metadata.pop(key, None) is None:
            raise ApiError(404, "Metadata item was not found")
        server.touch()
        self.no_content()


class TagsHandler(NovaHandler):
    """``/servers/{id}/tags`` (microversion >= 2.26): GET, PUT (replace), DELETE (all)."""

    def get(self, server_id: str) -> None:
        self.require_version("2.26")
        self.send_json({"tags": list(self.find_server(server_id).tags)})

    def put(self, server_id: str) -> None:
        self.require_version("2.26")
        server = self.find_server(server_id)
        body = self.json_body()
        server.tags = validate_tags(body.get("tags") if isinstance(body, dict) else None)
        server.touch()
        self.send_json({"tags": list(server.tags)})

    def delete(self, server_id: str) -> None:
        self.require_version("2.26")
        server = self.find_server(server_id)
        server.tags = []
        server.touch()
        self.no_content()


class TagHandler(NovaHandler):
    """``/servers/{id}/tags/{tag}``: GET (check), PUT (add), DELETE (remove)."""

    def get(self, server_id: str, tag: str) -> None:
        self.require_version("2.26")
        if tag not in self.find_server(server_id).tags:
            raise ApiError(404, f"Tag {tag} could not be found.")
        self.no_content()

    def put(self, server_id: str, tag: str) -> None:
        self.require_version("2.26")
        server = self.find_server(server_id)
        if tag in server.tags:
            return self.no_content()
        server.tags = validate_tags([*server.tags, tag])
        server.touch()
        self.set_header("Location", f"{self.base}/servers/{server_id}/tags/{tag}")
        self.no_content(201)

    def delete(self, server_id: str, tag: str) -> None:
        self.require_version("2.26")
        server = self.find_server(server_id)
        if tag not in server.tags:
            raise ApiError(404, f"Tag {tag} could not be found.")
        server.tags.remove(tag)
        server.touch()
        self.no_content()


# -------------------------------------------------------------------- volume attachments


class VolumeAttachmentsHandler(NovaHandler):
    """``/servers/{id}/os-volume_attachments``: list and attach."""

    def attachment_view(self, a: Any) -> dict[str, Any]:
        body = {"device": a.device, "serverId": a.server_id, "volumeId": a.volume_id}
        if not self.version_at_least("2.89"):
            body["id"] = a.volume_id
        if self.version_at_least("2.70"):
            body["tag"] = a.tag
        if self.version_at_least("2.79"):
            body["delete_on_termination"] = a.delete_on_termination
        if self.version_at_least("2.89"):
            body.update(attachment_id=a.id, bdm_uuid=a.id)
        return body

    def get(self, server_id: str) -> None:
        server = self.find_server(server_id)
        self.send_json({"volumeAttachments": [self.attachment_view(a) for a in server.attachments]})

    def post(self, server_id: str) -> None:
        server = self.find_server(server_id)
        body = self.json_body("volumeAttachment")
        volume = self.sim.state.volumes.get(str(body.get("volumeId")))
        if volume is None or volume.project_id != self.project_id:
            raise ApiError(404, f"Volume {body.get('volumeId')} could not be found.")
        if server.vm_state not in ("active", "stopped", "paused") and not self.sim.allow_attach_while_building:
            raise ApiError(409, f"Cannot 'attach_volume' instance {server.id} while it is in vm_state "
                                f"{server.vm_state}")
        if volume.status != "available":
            raise ApiError(400, f"Invalid volume: volume '{volume.id}' status must be 'available'. "
                                f"Currently in '{volume.status}'")
        attachment = self.sim.compute.attach(
            server, volume, delete_on_termination=bool(body.get("delete_on_termination", False))
            if self.version_at_least("2.79") else False, tag=body.get("tag"))
        self.send_json({"volumeAttachment": self.attachment_view(attachment)})


class VolumeAttachmentHandler(VolumeAttachmentsHandler):
    """``/servers/{id}/os-volume_attachments/{volume_id}``: show and detach."""

    def _find(self, server_id: str, volume_id: str) -> tuple[Server, Any]:
        server = self.find_server(server_id)
        attachment = next((a for a in server.attachments if a.volume_id == volume_id), None)
        if attachment is None:
            raise ApiError(404, f"volume_id not found: {volume_id}")
        return server, attachment

    def get(self, server_id: str, volume_id: str) -> None:  # type: ignore[override]
        _, attachment = self._find(server_id, volume_id)
        self.send_json({"volumeAttachment": self.attachment_view(attachment)})

    def delete(self, server_id: str, volume_id: str) -> None:
        server, _ = self._find(server_id, volume_id)
        self.sim.compute.detach(server, self.sim.state.volumes[volume_id])
        self.no_content(202)


# -------------------------------------------------------------------- flavors, keypairs, limits, AZs


class FlavorsHandler(NovaHandler):
    def initialize(self, sim: OpenStackSimulator, template: str, detail: bool = False) -> None:
        super().initialize(sim, template)
        self.detail = detail

    def get(self) -> None:
        flavors = sorted(self.sim.state.flavors.values(), key=lambda f: (f.ram, f.id))
        for key, attr in (("minRam", "ram"), ("minDisk", "disk")):
            value = self.query(key)
            if value:
                flavors = [f for f in flavors if getattr(f, attr) >= int(value)]
        self.send_json({"flavors": [self.flavor_view(f, self.detail) for f in flavors]})


class FlavorHandler(NovaHandler):
    def get(self, flavor_id: str) -> None:
        flavor = self.sim.state.flavors.get(flavor_id)
        if flavor is None:
            raise ApiError(404, f"Flavor {flavor_id} could not be found.")
        self.send_json({"flavor": self.flavor_view(flavor)})


class FlavorExtraSpecsHandler(NovaHandler):
    def get(self, flavor_id: str) -> None:
        flavor = self.sim.state.flavors.get(flavor_id)
        if flavor is None:
            raise ApiError(404, f"Flavor {flavor_id} could not be found.")
        self.send_json({"extra_specs": dict(flavor.extra_specs)})


class KeypairsHandler(NovaHandler):
    """``/os-keypairs``: list and import (``public_key`` required; no key generation)."""

    def get(self) -> None:
        pairs = self.sim.keypairs.get(self.token.user.id, {})
        self.send_json({"keypairs": [{"keypair": {k: p[k] for k in ("name", "public_key", "fingerprint", "type")}}
                                     for p in pairs.values()]})

    def post(self) -> None:
        body = self.json_body("keypair")
        name, public_key = body.get("name"), body.get("public_key")
        if not name or not public_key:
            raise ApiError(400, "The simulator only imports keypairs: 'name' and 'public_key' are required.")
        pairs = self.sim.keypairs.setdefault(self.token.user.id, {})
        if name in pairs:
            raise ApiError(409, f"Key pair '{name}' already exists.")
        digest = hashlib.md5(public_key.encode(), usedforsecurity=False).hexdigest()
        pairs[name] = {"name": name, "public_key": public_key, "type": body.get("type", "ssh"),
                       "fingerprint": ":".join(digest[i:i + 2] for i in range(0, 32, 2)),
                       "user_id": self.token.user.id}
        self.send_json({"keypair": pairs[name]})


class KeypairHandler(NovaHandler):
    def _pair(self, name: str) -> dict[str, Any]:
        pair = self.sim.keypairs.get(self.token.user.id, {}).get(name)
        if pair is None:
            raise ApiError(404, f"Keypair {name} not found for user {self.token.user.id}")
        return pair

    def get(self, name: str) -> None:
        self.send_json({"keypair": self._pair(name)})

    def delete(self, name: str) -> None:
        self._pair(name)
        del self.sim.keypairs[self.token.user.id][name]
        self.no_content(202 if not self.version_at_least("2.2") else 204)


class LimitsHandler(NovaHandler):
    """``GET /limits``: absolute limits and usage of the token's project."""

    def get(self) -> None:
        quota = self.sim.state.quota(self.project_id)
        used = self.sim.state.compute_usage(self.project_id)
        absolute: dict[str, int] = {
            "maxImageMeta": 128, "maxServerMeta": 128, "maxServerGroupMembers": 10, "maxServerGroups": 10,
            "maxTotalCores": quota.cores, "maxTotalInstances": quota.instances,
            "maxTotalKeypairs": 100, "maxTotalRAMSize": quota.ram,
            "totalCoresUsed": used["cores"], "totalInstancesUsed": used["instances"],
            "totalRAMUsed": used["ram"], "totalServerGroupsUsed": 0,
        }
        if not self.version_at_least("2.57"):
            absolute.update(maxPersonality=5, maxPersonalitySize=10240)
        if not self.version_at_least("2.36"):
            absolute.update(maxSecurityGroupRules=-1, maxSecurityGroups=-1,
                            maxTotalFloatingIps=quota.floating_ips, totalSecurityGroupsUsed=0,
                            totalFloatingIpsUsed=self.sim.state.floating_ip_usage(self.project_id))
        self.send_json({"limits": {"absolute": absolute, "rate": []}})


class QuotaSetHandler(NovaHandler):
    """``GET /os-quota-sets/{project_id}[/detail]``."""

    def initialize(self, sim: OpenStackSimulator, template: str, detail: bool = False) -> None:
        super().initialize(sim, template)
        self.detail = detail

    def get(self, project_id: str) -> None:
        quota = self.sim.state.quota(project_id)
        used = self.sim.state.compute_usage(project_id)
        limits = {"cores": quota.cores, "instances": quota.instances, "ram": quota.ram, "key_pairs": 100,
                  "metadata_items": 128, "server_groups": 10, "server_group_members": 10}
        body: dict[str, Any] = {"id": project_id}
        for key, limit in limits.items():
            body[key] = {"limit": limit, "in_use": used.get(key, 0), "reserved": 0} if self.detail else limit
        self.send_json({"quota_set": body})


class AvailabilityZonesHandler(NovaHandler):
    def get(self) -> None:
        self.send_json({"availabilityZoneInfo": [{"zoneName": "nova", "zoneState": {"available": True},
                                                  "hosts": None}]})


def routes() -> list[tuple[str, type[SimHandler], dict[str, Any]]]:
    base = "/compute/v2.1"
    server = f"{base}/servers/{{server_id}}"
    return [
        ("/compute", VersionHandler, {"document": versions_document}),
        (base, VersionHandler, {"document": version_document}),
        (f"{base}/servers", ServersHandler, {}),
        (f"{base}/servers/detail", ServersHandler, {"detail": True}),
        (server, ServerHandler, {}),
        (f"{server}/action", ServerActionHandler, {}),
        (f"{server}/ips", ServerIpsHandler, {}),
        (f"{server}/metadata", MetadataHandler, {}),
        (f"{server}/metadata/{{key}}", MetadataItemHandler, {}),
        (f"{server}/tags", TagsHandler, {}),
        (f"{server}/tags/{{tag}}", TagHandler, {}),
        (f"{server}/os-volume_attachments", VolumeAttachmentsHandler, {}),
        (f"{server}/os-volume_attachments/{{volume_id}}", VolumeAttachmentHandler, {}),
        (f"{base}/flavors", FlavorsHandler, {}),
        (f"{base}/flavors/detail", FlavorsHandler, {"detail": True}),
        (f"{base}/flavors/{{flavor_id}}", FlavorHandler, {}),
        (f"{base}/flavors/{{flavor_id}}/os-extra_specs", FlavorExtraSpecsHandler, {}),
        (f"{base}/os-keypairs", KeypairsHandler, {}),
        (f"{base}/os-keypairs/{{name}}", KeypairHandler, {}),
        (f"{base}/limits", LimitsHandler, {}),
        (f"{base}/os-quota-sets/{{project_id}}", QuotaSetHandler, {}),
        (f"{base}/os-quota-sets/{{project_id}}/detail", QuotaSetHandler, {"detail": True}),
        (f"{base}/os-availability-zone", AvailabilityZonesHandler, {}),
    ]
