"""The simulated cloud's data: identity, compute, image, network and volume resources.

Nova servers and Cinder volumes are dataclasses because they have behaviour (a
lifecycle, a process, a directory); Glance images and Neutron resources are
plain dicts shaped like their API bodies, as those APIs are generic.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def utcnow() -> dt.datetime:
    """Current time, timezone-aware UTC."""
    return dt.datetime.now(dt.UTC)


def isotime(when: dt.datetime | None, micro: bool = False, zulu: bool = True) -> str | None:
    """Format a time the way the OpenStack services do (``2024-01-01T10:00:00Z``)."""
    if when is None:
        return None
    text = when.strftime("%Y-%m-%dT%H:%M:%S.%f" if micro else "%Y-%m-%dT%H:%M:%S")
    return text + ("Z" if zulu else "")


def new_uuid() -> str:
    """A dashed UUID, as Nova, Neutron, Glance and Cinder use."""
    return str(uuid.uuid4())


def new_hex_id() -> str:
    """A 32-character hex id, as Keystone uses."""
    return uuid.uuid4().hex


# ---------------------------------------------------------------- identity


@dataclass
class Project:
    id: str
    name: str
    domain_id: str = "default"


@dataclass
class User:
    id: str
    name: str
    password: str
    default_project_id: str
    domain_id: str = "default"


@dataclass
class AppCredential:
    id: str
    name: str
    secret: str
    user_id: str
    project_id: str


@dataclass
class Token:
    id: str
    user: User
    project: Project
    methods: list[str]
    issued_at: dt.datetime
    expires_at: dt.datetime
    app_credential: AppCredential | None = None
    audit_id: str = field(default_factory=lambda: secrets.token_urlsafe(16))


@dataclass
class Quota:
    """Per-project limits; -1 means unlimited."""

    instances: int = 10
    cores: int = 20
    ram: int = 51200
    volumes: int = 10
    gigabytes: int = 1000
    floating_ips: int = 50


# ---------------------------------------------------------------- compute


@dataclass
class Flavor:
    id: str
    name: str
    vcpus: int
    ram: int
    disk: int
    ephemeral: int = 0
    swap: int = 0
    is_public: bool = True
    description: str | None = None
    extra_specs: dict[str, str] = field(default_factory=dict)


@dataclass
class VolumeAttachment:
    """One volume attached to one server (Nova's view and Cinder's)."""

    id: str
    server_id: str
    volume_id: str
    device: str
    attached_at: dt.datetime
    delete_on_termination: bool = False
    tag: str | None = None


@dataclass
class Server:
    id: str
    name: str
    project_id: str
    user_id: str
    flavor: Flavor
    image_id: str | None
    created: dt.datetime
    updated: dt.datetime
    status: str = "BUILD"
    vm_state: str = "building"
    task_state: str | None = "scheduling"
    power_state: int = 0
    progress: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    user_data: str | None = None
    requested_networks: list[dict[str, Any]] = field(default_factory=list)
    security_groups: list[str] = field(default_factory=list)  # names
    block_devices: list[dict[str, Any]] = field(default_factory=list)
    key_name: str | None = None
    description: str | None = None
    availability_zone: str = "nova"
    ip: str | None = None
    port_ids: list[str] = field(default_factory=list)
    created_port_ids: list[str] = field(default_factory=list)
    attachments: list[VolumeAttachment] = field(default_factory=list)
    launched_at: dt.datetime | None = None
    terminated_at: dt.datetime | None = None
    fault: dict[str, Any] | None = None
    deleted: bool = False
    process: subprocess.Popen[bytes] | None = None
    workdir: Path | None = None
    admin_pass: str = field(default_factory=lambda: secrets.token_urlsafe(9))

    def touch(self) -> None:
        self.updated = utcnow()

    @property
    def rootfs(self) -> Path | None:
        """The VM's root disk on the host (after its first boot)."""
        return self.workdir / "rootfs" if self.workdir else None


# ---------------------------------------------------------------- block storage


@dataclass
class Volume:
    id: str
    name: str | None
    project_id: str
    user_id: str
    size: int
    path: Path
    created_at: dt.datetime
    updated_at: dt.datetime
    status: str = "creating"
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    volume_type: str = "__DEFAULT__"
    availability_zone: str = "nova"
    bootable: bool = False
    image_id: str | None = None
    attachments: list[VolumeAttachment] = field(default_factory=list)

    def touch(self) -> None:
        self.updated_at = utcnow()


# ---------------------------------------------------------------- addresses


class AddressPool:
    """Hands out loopback addresses from a subnet, never the same one twice in a row.

    127.0.0.0/8 is local on Linux, so a process can bind any address handed out here.
    Last octets 0, 1 and 255 are skipped (network-ish, gateway, broadcast-ish).
    """

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        self.gateway = str(next(self.network.hosts()))
        self._in_use: set[str] = set()
        self._cursor = self._candidates()

    def _candidates(self) -> Iterator[str]:
        while True:
            for address in self.network.hosts():
                if address.packed[-1] in (0, 1, 255):
                    continue
                yield str(address)

    def allocate(self, wanted: str | None = None) -> str:
        if wanted is not None:
            if ipaddress.ip_address(wanted) not in self.network or wanted in self._in_use:
                raise ValueError(wanted)
            self._in_use.add(wanted)
            return wanted
        for _ in range(self.network.num_addresses):
            candidate = next(self._cursor)
            if candidate not in self._in_use:
                self._in_use.add(candidate)
                return candidate
        raise LookupError(f"no free address in {self.network}")

    def release(self, address: str) -> None:
        self._in_use.discard(address)

    @property
    def first_host(self) -> str:
        return str(next(a for a in self.network.hosts() if a.packed[-1] not in (0, 1, 255)))

    @property
    def last_host(self) -> str:
        return str(self.network.broadcast_address - 1)


# ---------------------------------------------------------------- the whole cloud


@dataclass
class SimState:
    """Everything the simulated cloud knows. Mutated only on the simulator's event loop."""

    projects: dict[str, Project] = field(default_factory=dict)
    users: dict[str, User] = field(default_factory=dict)
    app_credentials: dict[str, AppCredential] = field(default_factory=dict)
    memberships: set[tuple[str, str]] = field(default_factory=set)  # (user id, project id)
    tokens: dict[str, Token] = field(default_factory=dict)
    quotas: dict[str, Quota] = field(default_factory=dict)
    flavors: dict[str, Flavor] = field(default_factory=dict)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    servers: dict[str, Server] = field(default_factory=dict)
    volumes: dict[str, Volume] = field(default_factory=dict)
    networks: dict[str, dict[str, Any]] = field(default_factory=dict)
    subnets: dict[str, dict[str, Any]] = field(default_factory=dict)
    ports: dict[str, dict[str, Any]] = field(default_factory=dict)
    security_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    security_group_rules: dict[str, dict[str, Any]] = field(default_factory=dict)
    floating_ips: dict[str, dict[str, Any]] = field(default_factory=dict)
    pools: dict[str, AddressPool] = field(default_factory=dict)  # subnet id -> pool

    # ---- identity helpers

    def find_project(self, ref: dict[str, Any]) -> Project | None:
        """Look a project up by ``{"id": ...}`` or ``{"name": ..., "domain": {...}}``."""
        if "id" in ref:
            return self.projects.get(ref["id"])
        domain = _domain_id(ref.get("domain", {}))
        return next(
            (p for p in self.projects.values() if p.name == ref.get("name") and p.domain_id == domain),
            None,
        )

    def find_user(self, ref: dict[str, Any]) -> User | None:
        """Look a user up by ``{"id": ...}`` or ``{"name": ..., "domain": {...}}``."""
        if "id" in ref:
            return self.users.get(ref["id"])
        domain = _domain_id(ref.get("domain", {}))
        return next(
            (u for u in self.users.values() if u.name == ref.get("name") and u.domain_id == domain),
            None,
        )

    def quota(self, project_id: str) -> Quota:
        return self.quotas.setdefault(project_id, Quota())

    # ---- usage, as the quota checks count it

    def live_servers(self, project_id: str | None = None) -> list[Server]:
        return [
            s
            for s in self.servers.values()
            if not s.deleted and (project_id is None or s.project_id == project_id)
        ]

    def compute_usage(self, project_id: str) -> dict[str, int]:
        servers = self.live_servers(project_id)
        return {
            "instances": len(servers),
            "cores": sum(s.flavor.vcpus for s in servers),
            "ram": sum(s.flavor.ram for s in servers),
        }

    def volume_usage(self, project_id: str) -> dict[str, int]:
        volumes = [v for v in self.volumes.values() if v.project_id == project_id]
        return {"volumes": len(volumes), "gigabytes": sum(v.size for v in volumes)}

    def floating_ip_usage(self, project_id: str) -> int:
        return sum(1 for f in self.floating_ips.values() if f["project_id"] == project_id)

    def default_security_group(self, project_id: str) -> dict[str, Any] | None:
        return next(
            (
                g
                for g in self.security_groups.values()
                if g["project_id"] == project_id and g["name"] == "default"
            ),
            None,
        )


def _domain_id(ref: dict[str, Any]) -> str:
    if "id" in ref:
        return str(ref["id"])
    name = ref.get("name", "Default")
    return "default" if name == "Default" else str(name)
