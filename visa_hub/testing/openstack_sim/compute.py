"""Server and volume lifecycles: what happens behind Nova's and Cinder's API calls.

Booting walks a server through Nova's task states, wires its Neutron port and
volumes, then runs its ``user_data`` as root in a sandbox that looks like a VM
(:mod:`.sandbox`). Deleting stops that process group, frees the port and
detaches the volumes.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import string
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import neutron
from .base import ApiError
from .metadata import metadata_url
from .sandbox import (
    SandboxUnavailable,
    bwrap_command,
    check_available,
    image_etc,
    image_sbin,
    prepare_root_disk,
    volume_device,
)
from .state import Flavor, Server, Volume, VolumeAttachment, new_uuid, utcnow
from .userdata import UserDataError, build_script, decode_user_data, start_process, stop_process

if TYPE_CHECKING:
    from .app import OpenStackSimulator

log = logging.getLogger(__name__)

# Nova power states
NOSTATE, RUNNING, SHUTDOWN = 0, 1, 4
USER_DATA_DIR = "var/lib/cloud/instance/scripts"  # where cloud-init keeps a VM's user_data script (root only)


class Compute:
    """Owns the background work of servers and volumes; called by the API handlers."""

    def __init__(self, sim: OpenStackSimulator) -> None:
        self.sim = sim
        self.state = sim.state
        self._tasks: set[asyncio.Task[None]] = set()
        self._image_lock = threading.Lock()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("simulator task failed", exc_info=task.exception())

    # ---------------------------------------------------------------- quotas

    def check_compute_quota(self, project_id: str, flavor: Flavor, count: int = 1) -> None:
        """Raise Nova's 403 when ``count`` more servers of ``flavor`` do not fit."""
        quota = self.state.quota(project_id)
        used = self.state.compute_usage(project_id)
        wanted = {"instances": count, "cores": flavor.vcpus * count, "ram": flavor.ram * count}
        allowed = {"instances": quota.instances, "cores": quota.cores, "ram": quota.ram}
        overs = [r for r in ("cores", "instances", "ram")
                 if allowed[r] >= 0 and used[r] + wanted[r] > allowed[r]]
        if overs:
            def join(values: dict[str, int]) -> str:
                return ", ".join(str(values[r]) for r in overs)

            names = ", ".join(overs)
            raise ApiError(
                403,
                f"Quota exceeded for {names}: Requested {join(wanted)}, but already used "
                f"{join(used)} of {join(allowed)} {names}",
            )

    # ---------------------------------------------------------------- boot

    def boot(self, server: Server) -> None:
        """Start the asynchronous build of a freshly created server."""
        self._spawn(self._boot(server))

    async def _boot(self, server: Server) -> None:
        step = self.sim.boot_delay / 5
        fault = self.sim.faults.take_server_fault()
        await asyncio.sleep(step)
        if server.deleted or server.task_state == "deleting":
            return
        if fault is not None:
            self._to_error(server, fault.code, fault.message)
            return
        server.task_state, server.progress = "networking", 0
        server.touch()
        try:
            self._wire_networks(server)
        except ApiError as exc:
            self._to_error(server, 500, f"Build of instance {server.id} aborted: {exc.message}")
            return
        await asyncio.sleep(step)
        if server.deleted or server.task_state == "deleting":  # (a delete may have finished meanwhile)
            return
        server.task_state = "block_device_mapping"
        server.touch()
        for bdm in server.block_devices:
            volume = self.state.volumes.get(bdm["volume_id"])
            if volume is not None:
                self.attach(server, volume, delete_on_termination=bdm["delete_on_termination"],
                            tag=bdm.get("tag"))
        await asyncio.sleep(step)
        if server.deleted or server.task_state == "deleting":
            return
        server.task_state, server.progress = "spawning", 0
        server.touch()
        for progress in (30, 60, 90):
            await asyncio.sleep(step / 3)
            if server.task_state != "spawning":
                return
            server.progress = progress
        await asyncio.sleep(step)
        if server.task_state != "spawning":
            return
        server.status, server.vm_state, server.task_state = "ACTIVE", "active", None
        server.power_state, server.progress = RUNNING, 100
        server.launched_at = utcnow()
        server.touch()
        await self._start_user_data(server)

    def _to_error(self, server: Server, code: int, message: str) -> None:
        for bdm in server.block_devices:  # a failed build unreserves its volumes
            volume = self.state.volumes.get(bdm["volume_id"])
            if volume is not None and volume.status == "reserved":
                volume.status = "available"
        server.status, server.vm_state, server.task_state = "ERROR", "error", None
        server.power_state = NOSTATE
        server.fault = {"code": code, "message": message, "created": utcnow()}
        server.touch()

    def _wire_networks(self, server: Server) -> None:
        """Create (or bind) one Neutron port per requested network; the first gives the server its IP."""
        for request in server.requested_networks:
            if "port" in request:
                port = self.state.ports[request["port"]]
                port.update(device_id=server.id, device_owner="compute:nova", status="ACTIVE")
            else:
                port = neutron.create_port(
                    self.sim, server.project_id, request["uuid"],
                    fixed_ip=request.get("fixed_ip"),
                    security_group_names=server.security_groups,
                    device_id=server.id, device_owner="compute:nova",
                )
                port["status"] = "ACTIVE"
                server.created_port_ids.append(port["id"])
            server.port_ids.append(port["id"])
        addresses = [ip["ip_address"] for pid in server.port_ids for ip in self.state.ports[pid]["fixed_ips"]]
        server.ip = addresses[0] if addresses else self.sim.spare_pool.allocate()

    # ---------------------------------------------------------------- user data

    def _server_dir(self, server: Server) -> Any:
        path = self.sim.workdir / "servers" / server.id
        path.mkdir(parents=True, exist_ok=True)
        server.workdir = path
        return path

    def console_log(self, server: Server) -> Any:
        return self._server_dir(server) / "console.log"

    async def _start_user_data(self, server: Server) -> None:
        """Boot the VM: its root disk, then its user_data as root in its sandbox (see :mod:`.sandbox`).

        The root disk is prepared on a worker thread (copying the image's /etc takes a while on a busy
        machine, and the API must keep answering); the process is started from the loop's thread, which
        outlives it (bubblewrap's --die-with-parent follows the thread that started it).
        """
        workdir = self._server_dir(server)
        console = self.console_log(server)
        with console.open("a") as fh:
            fh.write(f"[visa-sim] {server.name} ({server.id}) booted with address {server.ip}\n")
        if not server.user_data:
            return
        rootfs = workdir / "rootfs"
        hostname = re.sub(r"[^a-z0-9-]+", "-", server.name.lower()).strip("-")[:63] or "vm"
        user_data = server.user_data

        def prepare() -> tuple[Path | None, Path]:
            check_available()
            with self._image_lock:
                template = image_etc(self.sim.workdir / "image-etc")
                sbin = image_sbin(self.sim.workdir / "image-sbin")
            prepare_root_disk(rootfs, template, hostname, server.ip or "", image_paths=list(self.sim.image_files))
            return build_script(decode_user_data(user_data), rootfs / USER_DATA_DIR), sbin

        try:
            script, sbin = await asyncio.to_thread(prepare)
        except (SandboxUnavailable, UserDataError, ValueError, OSError, KeyError) as exc:
            with console.open("a") as fh:
                fh.write(f"[visa-sim] user_data not run: {exc}\n")
            log.error("user_data of server %s not run: %s", server.id, exc)
            return
        if script is None or server.deleted or server.task_state in ("deleting", "powering-off", "rebooting"):
            return
        volumes = [(self.state.volumes[a.volume_id].path, volume_device(a.volume_id)) for a in server.attachments
                   if a.volume_id in self.state.volumes]
        env = {
            "VISA_SIM_SERVER_IP": server.ip or "",
            "VISA_SIM_SERVER_ID": server.id,
            "VISA_SIM_SERVER_NAME": server.name,
            "VISA_SIM_METADATA_URL": metadata_url(self.sim, server.id),
            "VISA_SIM_VOLUMES": ":".join(guest for _, guest in volumes),
        }
        env.update({f"VISA_SIM_VOLUME_{n}": guest for n, (_, guest) in enumerate(volumes)})
        command = bwrap_command(rootfs, f"/{USER_DATA_DIR}/user-data", hostname=hostname, env=env,
                                image_files=self.sim.image_files, volumes=volumes, sbin=sbin,
                                file_server=self.sim.file_server)
        server.process = start_process(command, console)

    async def stop_user_data(self, server: Server) -> None:
        process, server.process = server.process, None
        if process is not None:
            await stop_process(process, grace=self.sim.kill_grace)

    # ---------------------------------------------------------------- power actions

    def power(self, server: Server, action: str) -> None:
        """``os-stop``, ``os-start`` or ``reboot`` (which re-runs user_data, like a boot would)."""
        self._spawn(self._power(server, action))

    async def _power(self, server: Server, action: str) -> None:
        server.task_state = {"os-stop": "powering-off", "os-start": "powering-on", "reboot": "rebooting"}[action]
        if action == "reboot":
            server.status = "REBOOT"
        server.touch()
        if action in ("os-stop", "reboot"):
            await self.stop_user_data(server)
        if action == "os-stop":
            server.status, server.vm_state, server.power_state = "SHUTOFF", "stopped", SHUTDOWN
        else:
            server.status, server.vm_state, server.power_state = "ACTIVE", "active", RUNNING
        server.task_state = None
        server.touch()
        if action != "os-stop":
            await self._start_user_data(server)

    # ---------------------------------------------------------------- delete

    def delete(self, server: Server) -> None:
        server.task_state = "deleting"
        server.touch()
        self._spawn(self._delete(server))

    async def _delete(self, server: Server) -> None:
        if self.sim.delete_delay:
            await asyncio.sleep(self.sim.delete_delay)
        await self.stop_user_data(server)
        for attachment in list(server.attachments):
            volume = self.state.volumes.get(attachment.volume_id)
            if volume is not None:
                self._detach_now(server, volume)
                if attachment.delete_on_termination:
                    self.delete_volume_now(volume)
        for port_id in server.port_ids:
            port = self.state.ports.get(port_id)
            if port is None:
                continue
            if port_id in server.created_port_ids:
                neutron.delete_port(self.sim, port)
            else:
                port.update(device_id="", device_owner="", status="DOWN")
        if server.ip and not server.port_ids:
            self.sim.spare_pool.release(server.ip)
        server.deleted = True
        server.status, server.vm_state, server.task_state = "DELETED", "deleted", None
        server.power_state = NOSTATE
        server.terminated_at = utcnow()
        server.touch()

    # ---------------------------------------------------------------- volumes

    def next_device(self, server: Server) -> str:
        used = {a.device for a in server.attachments}
        return next(f"/dev/vd{c}" for c in string.ascii_lowercase[1:] if f"/dev/vd{c}" not in used)

    def attach(self, server: Server, volume: Volume, delete_on_termination: bool = False,
               tag: str | None = None, device: str | None = None) -> VolumeAttachment:
        attachment = VolumeAttachment(
            id=new_uuid(), server_id=server.id, volume_id=volume.id,
            device=device or self.next_device(server), attached_at=utcnow(),
            delete_on_termination=delete_on_termination, tag=tag,
        )
        server.attachments.append(attachment)
        volume.attachments.append(attachment)
        volume.status = "attaching"
        volume.touch()
        self._later(self._set_volume_status, volume, "attaching", "in-use")
        return attachment

    def detach(self, server: Server, volume: Volume) -> None:
        volume.status = "detaching"
        volume.touch()
        self._later(self._finish_detach, server, volume)

    def _finish_detach(self, server: Server, volume: Volume) -> None:
        if volume.status == "detaching":
            self._detach_now(server, volume)

    def _detach_now(self, server: Server, volume: Volume) -> None:
        server.attachments = [a for a in server.attachments if a.volume_id != volume.id]
        volume.attachments = [a for a in volume.attachments if a.server_id != server.id]
        volume.status = "in-use" if volume.attachments else "available"
        volume.touch()

    def create_volume(self, project_id: str, user_id: str, size: int, name: str | None = None,
                      description: str | None = None, metadata: dict[str, str] | None = None,
                      image_id: str | None = None) -> Volume:
        """Check Cinder's quotas, then create a volume (``creating`` -> ``available``) and its directory."""
        quota = self.state.quota(project_id)
        used = self.state.volume_usage(project_id)
        if 0 <= quota.volumes <= used["volumes"]:
            raise ApiError(413, f"VolumeLimitExceeded: Maximum number of volumes allowed ({quota.volumes}) "
                                "exceeded for quota 'volumes'.")
        if 0 <= quota.gigabytes < used["gigabytes"] + size:
            raise ApiError(413, "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed "
                                f"gigabytes quota. Requested {size}G, quota is {quota.gigabytes}G and "
                                f"{used['gigabytes']}G has been consumed.")
        now = utcnow()
        volume_id = new_uuid()
        volume = Volume(id=volume_id, name=name, project_id=project_id, user_id=user_id, size=size,
                        path=self.sim.workdir / "volumes" / volume_id, created_at=now, updated_at=now,
                        description=description, metadata=dict(metadata or {}), image_id=image_id,
                        bootable=image_id is not None)
        volume.path.mkdir(parents=True, exist_ok=True)
        self.state.volumes[volume.id] = volume
        self._later(self._set_volume_status, volume, "creating", "available")
        return volume

    def delete_volume(self, volume: Volume) -> None:
        volume.status = "deleting"
        volume.touch()
        self._later(self.delete_volume_now, volume)

    def delete_volume_now(self, volume: Volume) -> None:
        self.state.volumes.pop(volume.id, None)
        shutil.rmtree(volume.path, ignore_errors=True)

    def _set_volume_status(self, volume: Volume, expected: str, status: str) -> None:
        if volume.status == expected:
            volume.status = status
            volume.touch()

    def _later(self, callback: Any, *args: Any) -> None:
        asyncio.get_running_loop().call_later(self.sim.volume_delay, callback, *args)

    # ---------------------------------------------------------------- shutdown

    async def shutdown(self) -> None:
        """Cancel background work and stop every server process."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(self.stop_user_data(s) for s in self.state.servers.values()),
                             return_exceptions=True)
