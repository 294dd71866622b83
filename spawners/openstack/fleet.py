"""Everything the spawners of one hub share: the cloud connections, the poller, the reaper, look-up caches.

:func:`fleet_for` returns one :class:`Fleet` per (cloud account, hub id) in this process, created on first
use inside the running event loop. Its methods are the cloud operations a spawner needs, each one call (or
a few) on an action worker with the retry policy of :class:`~.cloud.Cloud`; none runs on the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from visa_hub.ops import status as ops_status

from . import reaper
from .cloud import Cloud, CloudSettings
from .errors import cloud_message, status_code
from .poller import ServerPoller
from .reaper import Reaper, floating_ip_description


@dataclass(frozen=True)
class FleetSettings:
    """Hub-wide settings (taken from the first spawner that needs the fleet; all share one config)."""

    cloud: CloudSettings
    hub_id: str
    network: str = ""
    poll_interval: float = 10.0
    poll_fast_interval: float = 1.0
    reaper_grace: float = 300.0
    reaper_dry_run: bool = False
    floating_ip_network: str = ""
    adopt_attempts: int = 10  # seconds to look for the server of a timed-out create that holds the volume

    @property
    def tag(self) -> str:
        return hub_tag(self.hub_id)


def hub_tag(hub_id: str) -> str:
    """The Nova tag on every server of this hub (tags: 1-60 characters, no '/' or ',')."""
    return safe_tag(f"visa-hub-{hub_id}")


def safe_tag(text: str) -> str:
    return re.sub(r"[/,]", "-", text)[:60]


@dataclass
class VolumeInfo:
    id: str
    status: str
    server_ids: list[str] = field(default_factory=list)
    created: bool = False


class Fleet:
    """The cloud as the spawners of one hub see it."""

    def __init__(self, settings: FleetSettings, log: logging.Logger):
        self.settings = settings
        self.log = log
        self.cloud = Cloud(settings.cloud, log)
        self.reaper = Reaper(self.cloud, settings.hub_id, settings.reaper_grace, settings.reaper_dry_run, log,
                             sweep_floating_ips=bool(settings.floating_ip_network))
        self.poller = ServerPoller(self.cloud, settings.tag, settings.network, settings.poll_interval,
                                   settings.poll_fast_interval, log, after_cycle=self.reaper.after_cycle)
        self._ids: dict[tuple[str, str], str] = {}  # (kind, name) -> cloud id: flavours, images, networks
        self._locks: dict[str, asyncio.Lock] = {}
        self._limits: tuple[float, list[dict[str, Any]]] | None = None  # (when read, quota use)
        ops_status.register(f"openstack:{settings.hub_id}", self.operator_status)

    def lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    # ---------------------------------------------------------------- names → ids (cached)

    async def resolve(self, kind: str, name: str) -> str | None:
        """Id of a flavour / image / network by name (or id), ``None`` if the cloud has none."""
        key = (kind, name)
        if key not in self._ids:
            found = await self.cloud.call(f"looking up {kind} {name}", _find, kind, name)
            if found is None:
                return None
            self._ids[key] = found
        return self._ids[key]

    # ---------------------------------------------------------------- security groups, volumes

    async def ensure_security_group(self, name: str, description: str, rules: list[dict[str, Any]]) -> str:
        """The experiment's security group, created with its rules the first time (one hub-wide lock)."""
        async with self.lock(f"sg:{name}"):
            cached = self._ids.get(("security_group", name))
            if cached:
                return cached
            group_id = await self.cloud.call(f"preparing security group {name}", _ensure_security_group, name,
                                             description, rules)
            self._ids[("security_group", name)] = group_id
            return group_id

    async def find_or_create_volume(self, metadata: dict[str, str], name: str, size: int,
                                    volume_type: str) -> VolumeInfo:
        async with self.lock(f"volume:{name}"):
            found = await self.cloud.call(f"looking up volume {name}", _find_volume, metadata)
            if found is not None:
                return found
            return await self.cloud.call(f"creating volume {name}", _create_volume, name, size, metadata,
                                         volume_type, retries=0)

    async def volume(self, volume_id: str) -> VolumeInfo | None:
        return await self.cloud.call(f"checking volume {volume_id}", _get_volume, volume_id)

    # ---------------------------------------------------------------- servers

    async def create_server(self, spec: dict[str, Any], spawn_id: str) -> str:
        """Create a server; if a create timed out or failed with 5xx, adopt what it made before retrying."""

        async def adopt(_exc: BaseException) -> str | None:
            found = await self.cloud.call("checking for a half-created server", _find_by_spawn,
                                          self.settings.tag, spec["name"], spawn_id)
            if found:
                self.log.info("Server %s was created despite the error; using it", spec["name"])
            return found

        try:
            return await self.cloud.call(f"creating server {spec['name']}", _create_server, spec, on_retry=adopt)
        except Exception as exc:
            if not _volume_taken(exc):
                raise
            # a try that timed out went through after all and holds the home volume: its server is on its way
            for _ in range(self.settings.adopt_attempts):
                await asyncio.sleep(1.0)
                found = await adopt(exc)
                if found:
                    return found
            raise

    async def console_tail(self, server_id: str, lines: int = 40) -> str:
        """The last lines of a server's console (what its start-up script printed)."""
        return await self.cloud.call(f"reading the console of {server_id}", _console_tail, server_id, lines,
                                     retries=0)

    async def delete_server(self, server_id: str) -> None:
        await self.cloud.call(f"deleting server {server_id}", reaper.delete_server, server_id)

    async def delete_leftover_ports(self, server_id: str) -> int:
        return await self.cloud.call(f"cleaning up ports of {server_id}", _delete_ports, server_id)

    async def attach_floating_ip(self, server_id: str, instance: str) -> tuple[str, str]:
        """A floating IP on the server's port, described as this hub's and this instance's
        (``visa-hub <hub id> <user>/<server name>``)."""
        description = floating_ip_description(self.settings.hub_id, instance)
        return await self.cloud.call(f"adding a floating IP to {server_id}", _create_floating_ip,
                                     self.settings.floating_ip_network, server_id, description, retries=0)

    async def ensure_floating_ip(self, server_id: str, instance: str) -> tuple[str, str]:
        """The server's floating IP (one taken before a hub restart is found again by its port), else a new one."""
        description = floating_ip_description(self.settings.hub_id, instance)
        return await self.cloud.call(f"finding or adding the floating IP of {server_id}", _ensure_floating_ip,
                                     self.settings.floating_ip_network, server_id, description, retries=0)

    async def delete_floating_ip(self, fip_id: str) -> None:
        await self.cloud.call(f"deleting floating IP {fip_id}", reaper.delete_floating_ip, fip_id)

    async def operator_status(self, limits_max_age: float = 60.0) -> dict[str, Any]:
        """The operator console's view: is the cloud answering, and how much of the project's quota is used
        (Nova's limits, read at most once per ``limits_max_age`` seconds)."""
        snapshot, failures = self.poller.snapshot, self.poller.failures
        name = f"OpenStack ({self.settings.cloud.cloud_name or 'cloud'}, hub id {self.settings.hub_id})"
        if snapshot.cycle == 0:
            reachable, detail = (False if failures else None), "no successful server list yet"
        else:
            reachable = not snapshot.stale
            age = time.monotonic() - snapshot.taken_at
            detail = (f"{len(snapshot.servers)} servers of this hub, listed {age:.0f} s ago" if reachable else
                      f"the last {failures} server lists failed; last success {age:.0f} s ago")
        if self._limits is None or time.monotonic() - self._limits[0] > limits_max_age:
            try:
                self._limits = (time.monotonic(), await self.cloud.call("reading the project's limits", _limits,
                                                                        retries=0))
            except Exception as exc:  # noqa: BLE001  (shown to the operator)
                reachable = False
                detail += f"; reading the quota failed: {exc}"
        return {"name": name, "kind": "openstack", "reachable": reachable, "detail": detail,
                "quota": self._limits[1] if self._limits else []}

    async def close(self) -> None:
        ops_status.unregister(f"openstack:{self.settings.hub_id}")
        await self.poller.stop()
        self.cloud.close()


_fleets: dict[tuple, Fleet] = {}


def fleet_for(settings: FleetSettings, log: logging.Logger) -> Fleet:
    """The process-wide fleet for these settings (one per cloud account and hub id)."""
    key = (settings.cloud.key, settings.hub_id)
    fleet = _fleets.get(key)
    if fleet is None:
        fleet = _fleets[key] = Fleet(settings, log)
    return fleet


# -------------------------------------------------------------------- the calls (run on worker threads)


def _volume_taken(exc: BaseException) -> bool:
    """Nova's 400 for a boot volume that is no longer 'available' (reserved or attached by another create)."""
    return status_code(exc) == 400 and bool(re.search(r"[Vv]olume .*status must be 'available'", cloud_message(exc)))


def _limits(conn: Any) -> list[dict[str, Any]]:
    """The project's compute quota use (Nova's absolute limits); a limit of -1 is unlimited (``None``)."""
    absolute = conn.compute.get_limits().absolute
    rows = [("instances", absolute.instances_used, absolute.instances),
            ("cores", absolute.total_cores_used, absolute.total_cores),
            ("RAM MB", absolute.total_ram_used, absolute.total_ram)]
    return [{"resource": name, "used": used or 0, "limit": None if limit is None or limit < 0 else limit}
            for name, used, limit in rows]


def _find(conn: Any, kind: str, name: str) -> str | None:
    finder = {"flavour": conn.compute.find_flavor, "image": conn.image.find_image,
              "network": conn.network.find_network}[kind]
    found = finder(name, ignore_missing=True)
    return found.id if found is not None else None


def _ensure_security_group(conn: Any, name: str, description: str, rules: Iterable[dict[str, Any]]) -> str:
    group = conn.network.find_security_group(name, ignore_missing=True)
    if group is None:
        group = conn.network.create_security_group(name=name, description=description)
    existing = {(r.direction, r.protocol, r.port_range_min, r.port_range_max, r.remote_ip_prefix,
                 r.remote_group_id) for r in conn.network.security_group_rules(security_group_id=group.id)}
    for rule in rules:
        body = {"direction": "ingress", "ethertype": "IPv4", **rule}
        if body.get("remote_group_id") == "self":
            body["remote_group_id"] = group.id
        key = (body["direction"], body.get("protocol"), body.get("port_range_min"), body.get("port_range_max"),
               body.get("remote_ip_prefix"), body.get("remote_group_id"))
        if key not in existing:
            try:
                conn.network.create_security_group_rule(security_group_id=group.id, **body)
            except Exception as exc:
                if status_code(exc) != 409:  # created meanwhile: fine
                    raise
    return group.id


def _volume_info(volume: Any, created: bool = False) -> VolumeInfo:
    return VolumeInfo(volume.id, volume.status, [a.get("server_id") for a in volume.attachments or []], created)


def _find_volume(conn: Any, metadata: dict[str, str]) -> VolumeInfo | None:
    # openstacksdk sends a dict filter as its keys only; Cinder takes a literal under ``metadata``
    volumes = [v for v in conn.block_storage.volumes(properties=json.dumps(metadata))
               if all((v.metadata or {}).get(k) == val for k, val in metadata.items())]
    if not volumes:
        return None
    return _volume_info(min(volumes, key=lambda v: (v.created_at or "", v.id)))  # the first is the home


def _create_volume(conn: Any, name: str, size: int, metadata: dict[str, str], volume_type: str) -> VolumeInfo:
    extra = {"volume_type": volume_type} if volume_type else {}
    volume = conn.block_storage.create_volume(name=name, size=size, metadata=metadata,
                                              description="visa-hub persistent home", **extra)
    return _volume_info(volume, created=True)


def _get_volume(conn: Any, volume_id: str) -> VolumeInfo | None:
    try:
        return _volume_info(conn.block_storage.get_volume(volume_id))
    except Exception as exc:
        if status_code(exc) == 404:
            return None
        raise


def _create_server(conn: Any, spec: dict[str, Any]) -> str:
    return conn.compute.create_server(**spec).id


def _console_tail(conn: Any, server_id: str, lines: int) -> str:
    return str((conn.compute.get_server_console_output(server_id, length=lines) or {}).get("output") or "")


def _find_by_spawn(conn: Any, tag: str, name: str, spawn_id: str) -> str | None:
    for server in conn.compute.servers(details=True, tags=tag, name=f"^{re.escape(name)}$"):
        if (server.metadata or {}).get("visa_spawn") == spawn_id:
            return server.id
    return None


def _delete_ports(conn: Any, server_id: str) -> int:
    ports = list(conn.network.ports(device_id=server_id))
    for port in ports:
        conn.network.delete_port(port, ignore_missing=True)
    return len(ports)


def _ensure_floating_ip(conn: Any, network: str, server_id: str, description: str) -> tuple[str, str]:
    for port in conn.network.ports(device_id=server_id):
        for fip in conn.network.ips(port_id=port.id):
            return fip.id, fip.floating_ip_address
    return _create_floating_ip(conn, network, server_id, description)


def _create_floating_ip(conn: Any, network: str, server_id: str, description: str) -> tuple[str, str]:
    (port, *_) = list(conn.network.ports(device_id=server_id)) or [None]
    if port is None:
        raise RuntimeError(f"server {server_id} has no port for a floating IP")
    external = conn.network.find_network(network, ignore_missing=False)
    fip = conn.network.create_ip(floating_network_id=external.id, port_id=port.id, description=description)
    return fip.id, fip.floating_ip_address
