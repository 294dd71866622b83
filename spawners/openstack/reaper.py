"""The reaper: delete this hub's servers that no spawner owns, and finish deletes that failed.

Runs after every successful poll cycle on that cycle's snapshot (no extra list call). A server carrying the
hub's tag is *owned* when a spawner holds its id (in state, or mid-spawn by its spawn id). An unowned server
is deleted once it has been seen unowned for ``grace`` seconds, and once it is older than ``grace`` (a server
created a moment ago may simply not be recorded yet). ``dry_run`` only logs. Each server gets one log line
per decision. Deletes that fail are simply tried again at a later cycle. Floating IPs the hub created are
swept every ``sweep_every`` cycles when they lost their server.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from .cloud import Cloud
from .errors import status_code
from .poller import ServerView, Snapshot

FLOATING_IP_MARKER = "visa-hub {hub_id}"  # a floating IP's description starts with it, then "<user>/<server>"


def floating_ip_description(hub_id: str, instance: str) -> str:
    """The description of an instance's floating IP: this hub's marker and the instance (``user/server``)."""
    return f"{FLOATING_IP_MARKER.format(hub_id=hub_id)} {instance}"[:255]


def is_hub_floating_ip(description: str, hub_id: str) -> bool:
    """Made by this hub (not by another hub whose id merely starts the same)."""
    marker = FLOATING_IP_MARKER.format(hub_id=hub_id)
    return description == marker or description.startswith(marker + " ")


class Reaper:
    def __init__(self, cloud: Cloud, hub_id: str, grace: float, dry_run: bool, log: logging.Logger,
                 retry_delete_after: float = 10.0, sweep_floating_ips: bool = False, sweep_every: int = 12):
        self.cloud, self.hub_id, self.grace, self.dry_run, self.log = cloud, hub_id, grace, dry_run, log
        self.retry_delete_after = retry_delete_after
        self.sweep_floating_ips, self.sweep_every = sweep_floating_ips, sweep_every
        self.owned: set[str] = set()
        self.spawning: set[str] = set()  # spawn ids (server metadata visa_spawn) of spawns in progress
        self.unowned_since: dict[str, float] = {}
        self.deleting: dict[str, float] = {}  # server id -> when we last asked the cloud to delete it
        self.reaped: list[str] = []  # ids deleted by the reaper (for tests and the log)

    # ------------------------------------------------------------ ownership, told by spawners

    def own(self, server_id: str) -> None:
        self.owned.add(server_id)
        self.unowned_since.pop(server_id, None)

    def disown(self, server_id: str, *, failed_delete: bool = False) -> None:
        """A spawner let go of a server; after a failed delete the reaper retries without a grace period."""
        self.owned.discard(server_id)
        if failed_delete:
            self.unowned_since[server_id] = float("-inf")

    def owner_of_spawn(self, spawn_id: str) -> bool:
        return spawn_id in self.spawning

    # ------------------------------------------------------------ the decision, per cycle

    def _age(self, server: ServerView) -> float:
        if not server.created_at:
            return float("inf")
        created = dt.datetime.fromisoformat(server.created_at.replace("Z", "+00:00"))
        if created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        return (dt.datetime.now(dt.UTC) - created).total_seconds()

    def orphans(self, snapshot: Snapshot) -> list[ServerView]:
        """Servers to delete now (updates the unowned-since bookkeeping)."""
        now = time.monotonic()
        for gone in set(self.unowned_since) - set(snapshot.servers):
            self.unowned_since.pop(gone, None)
            self.deleting.pop(gone, None)
        due = []
        for server in snapshot.servers.values():
            if server.id in self.owned or server.metadata.get("visa_spawn") in self.spawning:
                self.unowned_since.pop(server.id, None)
                continue
            since = self.unowned_since.setdefault(server.id, now)
            if now - since < self.grace or self._age(server) < self.grace:
                continue
            if server.task_state == "deleting" and now - self.deleting.get(server.id, now) < 60:
                continue
            if now - self.deleting.get(server.id, float("-inf")) < self.retry_delete_after:
                continue
            due.append(server)
        return due

    async def after_cycle(self, snapshot: Snapshot) -> None:
        for server in self.orphans(snapshot):
            await self._reap(server)
        if self.sweep_floating_ips and snapshot.cycle % self.sweep_every == 0:
            await self.sweep(snapshot)

    async def _reap(self, server: ServerView) -> None:
        who = (f"{server.name} ({server.id}, user {server.metadata.get('visa_user', '?')}, experiment "
               f"{server.metadata.get('visa_experiment', '?')}, status {server.status})")
        if self.dry_run:
            self.log.warning("Reaper [dry run]: would delete server %s: no spawner owns it", who)
            self.deleting[server.id] = time.monotonic()
            return
        self.deleting[server.id] = time.monotonic()
        try:
            await self.cloud.call(f"reaping server {server.id}", delete_server, server.id, retries=1)
        except Exception as exc:
            self.log.warning("Reaper: deleting server %s failed (%s); will try again", who, exc)
            return
        self.log.warning("Reaper: deleted server %s: no spawner owns it", who)
        self.reaped.append(server.id)

    async def sweep(self, snapshot: Snapshot) -> None:
        """Delete the hub's floating IPs that lost their server (one list call, every few cycles)."""
        try:
            ips = await self.cloud.call("listing the hub's floating IPs", _floating_ips, self.hub_id, retries=0)
        except Exception as exc:
            self.log.warning("Reaper: listing floating IPs failed (%s); will try again", exc)
            return
        for fip in ips:
            if fip["port_id"]:
                continue  # still on a server's port (created and associated in one call, never loose)
            what = f"{fip['address']} ({fip['description']})"
            if self.dry_run:
                self.log.warning("Reaper [dry run]: would delete floating IP %s: its server is gone", what)
                continue
            try:
                await self.cloud.call("deleting a floating IP", delete_floating_ip, fip["id"], retries=1)
                self.log.warning("Reaper: deleted floating IP %s: its server is gone", what)
            except Exception as exc:
                self.log.warning("Reaper: deleting floating IP %s failed (%s)", fip["address"], exc)


def delete_server(conn: Any, server_id: str) -> None:
    """Delete a server; one that is already gone is fine."""
    try:
        conn.compute.delete_server(server_id, ignore_missing=True)
    except Exception as exc:
        if status_code(exc) != 404:
            raise


def _floating_ips(conn: Any, hub_id: str) -> list[dict[str, Any]]:
    """The project's floating IPs this hub made (one list call; Neutron filters descriptions only exactly)."""
    return [{"id": f.id, "address": f.floating_ip_address, "port_id": f.port_id, "description": f.description}
            for f in conn.network.ips() if is_hub_floating_ip(f.description or "", hub_id)]


def delete_floating_ip(conn: Any, fip_id: str) -> None:
    """Release a floating IP; one that is already gone is fine."""
    conn.network.delete_ip(fip_id, ignore_missing=True)
