"""Neutron v2.0: networks, subnets, ports, security groups and rules, floating IPs.

Resources are dicts shaped like the API's bodies. Lists accept Neutron's
generic attribute filters (``?device_id=...&port_id=...``), ``fields``,
``tags``/``tags-any`` and ``limit``/``marker``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import ApiError, SimHandler, VersionHandler
from .state import AddressPool, isotime, new_uuid, utcnow

if TYPE_CHECKING:
    from .app import OpenStackSimulator


@dataclass(frozen=True)
class Kind:
    """One Neutron resource type."""

    singular: str  # body key: "port"
    plural: str  # collection key and URL: "ports"
    store: str  # SimState attribute
    not_found: str  # exception type
    message: str  # not-found message, with {id}

    @property
    def url(self) -> str:
        return self.plural.replace("_", "-")


NETWORK = Kind("network", "networks", "networks", "NetworkNotFound", "Network {id} could not be found.")
SUBNET = Kind("subnet", "subnets", "subnets", "SubnetNotFound", "Subnet {id} could not be found.")
PORT = Kind("port", "ports", "ports", "PortNotFound", "Port {id} could not be found.")
SECURITY_GROUP = Kind("security_group", "security_groups", "security_groups", "SecurityGroupNotFound",
                      "Security group {id} does not exist")
SECURITY_GROUP_RULE = Kind("security_group_rule", "security_group_rules", "security_group_rules",
                           "SecurityGroupRuleNotFound", "Security group rule {id} does not exist")
FLOATING_IP = Kind("floatingip", "floatingips", "floating_ips", "FloatingIPNotFound",
                   "Floating IP {id} could not be found")
KINDS = (NETWORK, SUBNET, PORT, SECURITY_GROUP, SECURITY_GROUP_RULE, FLOATING_IP)

EXTENSIONS = ["agent", "allowed-address-pairs", "binding", "dns-integration", "external-net",
              "fip-port-details", "network-ip-availability", "port-security", "project-id", "quotas",
              "router", "security-group", "standard-attr-description", "standard-attr-revisions",
              "standard-attr-tag", "standard-attr-timestamp", "subnet_allocation"]


def _common(project_id: str, name: str = "", description: str = "") -> dict[str, Any]:
    now = isotime(utcnow())
    return {"id": new_uuid(), "name": name, "description": description, "project_id": project_id,
            "tenant_id": project_id, "tags": [], "created_at": now, "updated_at": now,
            "revision_number": 0}


def _touch(resource: dict[str, Any]) -> None:
    resource["updated_at"] = isotime(utcnow())
    resource["revision_number"] += 1


# -------------------------------------------------------------------- builders (also used by seeding)


def create_network(sim: OpenStackSimulator, project_id: str, name: str, cidr: str,
                   external: bool = False, shared: bool = False) -> dict[str, Any]:
    """A network with one IPv4 subnet whose addresses come from an :class:`AddressPool`."""
    state = sim.state
    network = {**_common(project_id, name), "admin_state_up": True, "status": "ACTIVE", "subnets": [],
               "shared": shared, "router:external": external, "mtu": 1500,
               "port_security_enabled": True, "availability_zones": ["nova"],
               "availability_zone_hints": [], "ipv4_address_scope": None, "ipv6_address_scope": None,
               "is_default": external, "l2_adjacency": True}
    pool = AddressPool(cidr)
    subnet = {**_common(project_id, f"{name}-subnet"), "network_id": network["id"],
              "cidr": str(pool.network), "ip_version": 4, "gateway_ip": pool.gateway,
              "allocation_pools": [{"start": pool.first_host, "end": pool.last_host}],
              "enable_dhcp": True, "dns_nameservers": [], "host_routes": [],
              "ipv6_address_mode": None, "ipv6_ra_mode": None, "subnetpool_id": None,
              "service_types": []}
    network["subnets"].append(subnet["id"])
    state.networks[network["id"]] = network
    state.subnets[subnet["id"]] = subnet
    state.pools[subnet["id"]] = pool
    return network


def create_security_group(sim: OpenStackSimulator, project_id: str, name: str,
                          description: str = "") -> dict[str, Any]:
    """A security group with Neutron's two default egress rules."""
    group = {**_common(project_id, name, description), "security_group_rules": [], "stateful": True,
             "shared": False}
    sim.state.security_groups[group["id"]] = group
    for ethertype in ("IPv4", "IPv6"):
        create_security_group_rule(sim, project_id, {"security_group_id": group["id"],
                                                     "direction": "egress", "ethertype": ethertype})
    return group


def create_security_group_rule(sim: OpenStackSimulator, project_id: str,
                               body: dict[str, Any]) -> dict[str, Any]:
    group = sim.state.security_groups.get(str(body.get("security_group_id")))
    if group is None or group["project_id"] != project_id:
        raise ApiError(404, SECURITY_GROUP.message.format(id=body.get("security_group_id")),
                       SECURITY_GROUP.not_found)
    direction = body.get("direction")
    if direction not in ("ingress", "egress"):
        raise ApiError(400, f"Invalid input for direction. Reason: {direction!r} is not in "
                            "['ingress', 'egress'].", "HTTPBadRequest")
    prefix = body.get("remote_ip_prefix")
    rule = {**_common(project_id), "security_group_id": group["id"], "direction": direction,
            "ethertype": body.get("ethertype", "IPv4"), "protocol": body.get("protocol"),
            "port_range_min": body.get("port_range_min"), "port_range_max": body.get("port_range_max"),
            "remote_ip_prefix": prefix, "normalized_cidr": prefix,
            "remote_group_id": body.get("remote_group_id"), "remote_address_group_id": None,
            "description": body.get("description", ""),
            "belongs_to_default_sg": group["name"] == "default"}
    del rule["name"], rule["tags"]
    duplicate = next((r for r in group["security_group_rules"]
                      if all(r[k] == rule[k] for k in ("direction", "ethertype", "protocol",
                                                         "port_range_min", "port_range_max",
                                                         "remote_ip_prefix", "remote_group_id"))), None)
    if duplicate is not None:
        raise ApiError(409, f"Security group rule already exists. Rule id is {duplicate['id']}.",
                       "SecurityGroupRuleExists")
    sim.state.security_group_rules[rule["id"]] = rule
    group["security_group_rules"].append(rule)
    _touch(group)
    return rule


def create_port(sim: OpenStackSimulator, project_id: str, network_id: str, *, name: str = "",
                fixed_ip: str | None = None, subnet_id: str | None = None,
                security_group_ids: list[str] | None = None,
                security_group_names: list[str] | None = None,
                device_id: str = "", device_owner: str = "") -> dict[str, Any]:
    """A port with one fixed IP from the network's (first) subnet."""
    state = sim.state
    network = state.networks.get(network_id)
    if network is None:
        raise ApiError(404, NETWORK.message.format(id=network_id), NETWORK.not_found)
    subnet_id = subnet_id or network["subnets"][0]
    pool = state.pools[subnet_id]
    try:
        address = pool.allocate(fixed_ip)
    except ValueError:
        raise ApiError(409, f"IP address {fixed_ip} already allocated in subnet {subnet_id}",
                       "IpAddressAlreadyAllocated") from None
    except LookupError:
        raise ApiError(409, f"No more IP addresses available on network {network_id}.",
                       "IpAddressGenerationFailure") from None
    if security_group_ids is None:
        names = security_group_names or ["default"]
        security_group_ids = [g["id"] for g in state.security_groups.values()
                              if g["project_id"] == project_id and (g["name"] in names or g["id"] in names)]
    mac = "fa:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3))
    port = {**_common(project_id, name), "network_id": network_id, "admin_state_up": True,
            "status": "DOWN", "mac_address": mac,
            "fixed_ips": [{"subnet_id": subnet_id, "ip_address": address}],
            "device_id": device_id, "device_owner": device_owner,
            "security_groups": security_group_ids, "port_security_enabled": True,
            "allowed_address_pairs": [], "extra_dhcp_opts": [], "binding:vnic_type": "normal",
            "dns_name": "", "dns_assignment": [], "qos_policy_id": None, "propagate_uplink_status": False}
    state.ports[port["id"]] = port
    return port


def delete_port(sim: OpenStackSimulator, port: dict[str, Any]) -> None:
    """Remove a port, free its addresses and disassociate its floating IPs."""
    state = sim.state
    state.ports.pop(port["id"], None)
    for fixed in port["fixed_ips"]:
        state.pools[fixed["subnet_id"]].release(fixed["ip_address"])
    for fip in state.floating_ips.values():
        if fip["port_id"] == port["id"]:
            fip.update(port_id=None, fixed_ip_address=None, status="DOWN", router_id=None)
            _touch(fip)


def create_floating_ip(sim: OpenStackSimulator, project_id: str, body: dict[str, Any]) -> dict[str, Any]:
    state = sim.state
    network = state.networks.get(str(body.get("floating_network_id")))
    if network is None:
        raise ApiError(404, NETWORK.message.format(id=body.get("floating_network_id")), NETWORK.not_found)
    if not network["router:external"]:
        raise ApiError(400, f"Bad floatingip request: Network {network['id']} is not a valid external "
                            "network.", "BadRequest")
    limit = state.quota(project_id).floating_ips
    if 0 <= limit <= state.floating_ip_usage(project_id):
        raise ApiError(409, "Quota exceeded for resources: ['floatingip'].", "OverQuota")
    subnet_id = network["subnets"][0]
    fip = {**_common(project_id, description=body.get("description", "")),
           "floating_ip_address": state.pools[subnet_id].allocate(body.get("floating_ip_address")),
           "floating_network_id": network["id"], "router_id": None, "port_id": None,
           "fixed_ip_address": None, "status": "DOWN", "port_details": None, "dns_domain": "",
           "dns_name": "", "qos_policy_id": None, "port_forwardings": []}
    del fip["name"]
    fip["_subnet_id"] = subnet_id
    state.floating_ips[fip["id"]] = fip
    if body.get("port_id"):
        associate_floating_ip(sim, fip, body["port_id"], body.get("fixed_ip_address"))
    return fip


def associate_floating_ip(sim: OpenStackSimulator, fip: dict[str, Any], port_id: str | None,
                          fixed_ip: str | None = None) -> None:
    if port_id is None:
        fip.update(port_id=None, fixed_ip_address=None, status="DOWN", router_id=None, port_details=None)
    else:
        port = sim.state.ports.get(port_id)
        if port is None:
            raise ApiError(404, PORT.message.format(id=port_id), PORT.not_found)
        fip.update(port_id=port_id, fixed_ip_address=fixed_ip or port["fixed_ips"][0]["ip_address"],
                   status="ACTIVE", router_id=sim.router_id,
                   port_details={"name": port["name"], "network_id": port["network_id"],
                                 "mac_address": port["mac_address"], "admin_state_up": True,
                                 "status": port["status"], "device_id": port["device_id"],
                                 "device_owner": port["device_owner"]})
    _touch(fip)


# -------------------------------------------------------------------- views and filters

PAGING = {"fields", "limit", "marker", "sort_key", "sort_dir", "page_reverse", "tags", "tags-any",
          "not-tags", "not-tags-any"}


def public_view(resource: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if not k.startswith("_")}


def _matches(resource: dict[str, Any], key: str, wanted: list[str]) -> bool:
    if key == "fixed_ips":
        pairs = [w.split("=", 1) for w in wanted if "=" in w]
        return all(any(str(ip.get(k)) == v for ip in resource["fixed_ips"]) for k, v in pairs)
    if key not in resource:
        return True  # Neutron ignores filters on unknown attributes (with a warning)
    value = resource[key]
    if isinstance(value, bool):
        return str(value).lower() in [w.lower() for w in wanted]
    if isinstance(value, list):
        return any(w in value for w in wanted)
    return ("" if value is None else str(value)) in wanted


def filter_resources(resources: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    result = [r for r in resources if all(_matches(r, k, v) for k, v in query.items() if k not in PAGING)]
    for key, check in (("tags", all), ("tags-any", any)):
        if key in query:
            tags = [t for value in query[key] for t in value.split(",")]
            result = [r for r in result if check(t in r.get("tags", []) for t in tags)]
    return result


# -------------------------------------------------------------------- handlers


class NeutronHandler(SimHandler):
    style = "neutron"
    kind: Kind

    def initialize(self, sim: OpenStackSimulator, template: str, kind: Kind | None = None) -> None:
        super().initialize(sim, template)
        if kind is not None:
            self.kind = kind

    @property
    def store(self) -> dict[str, dict[str, Any]]:
        return getattr(self.sim.state, self.kind.store)

    def visible(self, resource: dict[str, Any]) -> bool:
        return (resource.get("project_id") == self.project_id or resource.get("shared", False)
                or resource.get("router:external", False))

    def lookup(self, resource_id: str) -> dict[str, Any]:
        resource = self.store.get(resource_id)
        if resource is None or not self.visible(resource):
            raise ApiError(404, self.kind.message.format(id=resource_id), self.kind.not_found)
        return resource

    def render(self, resource: dict[str, Any]) -> dict[str, Any]:
        fields = self.get_query_arguments("fields")
        view = public_view(resource)
        return {k: v for k, v in view.items() if k in fields} if fields else view

    def query_lists(self) -> dict[str, list[str]]:
        return {k: [v.decode() for v in values] for k, values in self.request.query_arguments.items()}


class CollectionHandler(NeutronHandler):
    """``GET``/``POST`` on ``/network/v2.0/<plural>``."""

    def get(self) -> None:
        query = self.query_lists()
        resources = filter_resources([r for r in self.store.values() if self.visible(r)], query)
        body: dict[str, Any] = {}
        marker, limit = self.query("marker"), self.query("limit")
        if marker:
            ids = [r["id"] for r in resources]
            resources = resources[ids.index(marker) + 1:] if marker in ids else []
        if limit and int(limit) < len(resources):
            resources = resources[: int(limit)]
            body[f"{self.kind.plural}_links"] = [{
                "rel": "next",
                "href": f"{self.sim.url}/network/v2.0/{self.kind.url}?limit={limit}&marker={resources[-1]['id']}",
            }]
        body[self.kind.plural] = [self.render(r) for r in resources]
        self.send_json(body)

    def post(self) -> None:
        body = self.json_body(self.kind.singular)
        project_id = self.project_id
        if self.kind is PORT:
            resource = create_port(
                self.sim, project_id, str(body.get("network_id")), name=body.get("name", ""),
                fixed_ip=(body.get("fixed_ips") or [{}])[0].get("ip_address"),
                subnet_id=(body.get("fixed_ips") or [{}])[0].get("subnet_id"),
                security_group_ids=body.get("security_groups"),
                device_id=body.get("device_id", ""), device_owner=body.get("device_owner", ""))
            if "description" in body:
                resource["description"] = body["description"]
        elif self.kind is SECURITY_GROUP:
            resource = create_security_group(self.sim, project_id, body.get("name", ""),
                                             body.get("description", ""))
        elif self.kind is SECURITY_GROUP_RULE:
            resource = create_security_group_rule(self.sim, project_id, body)
        elif self.kind is FLOATING_IP:
            resource = create_floating_ip(self.sim, project_id, body)
        else:
            raise ApiError(403, f"Creating {self.kind.plural} is not supported by the simulator.",
                           "PolicyNotAuthorized")
        self.send_json({self.kind.singular: self.render(resource)}, 201)


class MemberHandler(NeutronHandler):
    """``GET``/``PUT``/``DELETE`` on ``/network/v2.0/<plural>/{id}``."""

    UPDATABLE = {
        "port": {"name", "description", "security_groups", "device_id", "device_owner", "admin_state_up"},
        "security_group": {"name", "description"},
        "floatingip": {"port_id", "fixed_ip_address", "description"},
        "network": {"name", "description"},
        "subnet": {"name", "description"},
    }

    def get(self, resource_id: str) -> None:
        self.send_json({self.kind.singular: self.render(self.lookup(resource_id))})

    def put(self, resource_id: str) -> None:
        resource = self.lookup(resource_id)
        body = self.json_body(self.kind.singular)
        allowed = self.UPDATABLE.get(self.kind.singular, set())
        unknown = set(body) - allowed
        if unknown:
            raise ApiError(400, f"Cannot update read-only attribute {sorted(unknown)[0]}", "HTTPBadRequest")
        if self.kind is FLOATING_IP and "port_id" in body:
            associate_floating_ip(self.sim, resource, body["port_id"], body.get("fixed_ip_address"))
        resource.update({k: v for k, v in body.items() if k not in ("port_id", "fixed_ip_address")})
        _touch(resource)
        self.send_json({self.kind.singular: self.render(resource)})

    def delete(self, resource_id: str) -> None:
        resource = self.lookup(resource_id)
        state = self.sim.state
        if resource["project_id"] != self.project_id:
            raise ApiError(403, "Not authorized.", "PolicyNotAuthorized")
        if self.kind is PORT:
            delete_port(self.sim, resource)
        elif self.kind is SECURITY_GROUP:
            if resource["name"] == "default":
                raise ApiError(409, "Insufficient rights for removing default security group.",
                               "SecurityGroupCannotRemoveDefault")
            if any(resource_id in p["security_groups"] for p in state.ports.values()):
                raise ApiError(409, f"Security Group {resource_id} in use.", "SecurityGroupInUse")
            for rule in resource["security_group_rules"]:
                state.security_group_rules.pop(rule["id"], None)
            state.security_groups.pop(resource_id)
        elif self.kind is SECURITY_GROUP_RULE:
            state.security_group_rules.pop(resource_id)
            group = state.security_groups[resource["security_group_id"]]
            group["security_group_rules"] = [r for r in group["security_group_rules"] if r["id"] != resource_id]
            _touch(group)
        elif self.kind is FLOATING_IP:
            state.floating_ips.pop(resource_id)
            state.pools[resource["_subnet_id"]].release(resource["floating_ip_address"])
        else:
            raise ApiError(409, f"Deleting {self.kind.plural} is not supported by the simulator.",
                           "InUse")
        self.no_content()


class ExtensionsHandler(NeutronHandler):
    def get(self) -> None:
        self.send_json({"extensions": [{"alias": a, "name": a, "description": a, "links": [],
                                        "updated": "2024-01-01T00:00:00-00:00"} for a in EXTENSIONS]})


class QuotaHandler(NeutronHandler):
    def get(self, project_id: str) -> None:
        quota = self.sim.state.quota(project_id)
        self.send_json({"quota": {"floatingip": quota.floating_ips, "network": 100, "port": 500,
                                  "rbac_policy": 10, "router": 10, "security_group": 10,
                                  "security_group_rule": 100, "subnet": 100, "subnetpool": -1}})


def _versions(sim: Any) -> dict[str, Any]:
    return {"versions": [{"id": "v2.0", "status": "CURRENT",
                          "links": [{"href": f"{sim.url}/network/v2.0/", "rel": "self"}]}]}


def _resources(sim: Any) -> dict[str, Any]:
    return {"resources": [{"name": k.singular, "collection": k.plural,
                           "links": [{"href": f"{sim.url}/network/v2.0/{k.url}", "rel": "self"}]}
                          for k in KINDS]}


def routes() -> list[tuple[str, type[SimHandler], dict[str, Any]]]:
    base = "/network/v2.0"
    table: list[tuple[str, type[SimHandler], dict[str, Any]]] = [
        ("/network", VersionHandler, {"document": _versions}),
        (base, VersionHandler, {"document": _resources}),
        (f"{base}/extensions", ExtensionsHandler, {}),
        (f"{base}/quotas/{{project_id}}", QuotaHandler, {}),
    ]
    for kind in KINDS:
        table.append((f"{base}/{kind.url}", CollectionHandler, {"kind": kind}))
        table.append((f"{base}/{kind.url}/{{resource_id}}", MemberHandler, {"kind": kind}))
    return table

