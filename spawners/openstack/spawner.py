"""OpenStackSpawner: one VM per instance, created from the SessionPlan with openstacksdk.

Per spawn: the experiment's security group (created once, shared by the experiment's instances), her home —
a persistent Cinder volume (created once, found again by its metadata, never deleted with an instance; one
instance at a time) or her directory on the site's file server (``home_source``; any number of instances at
once) — then one server with the flavour and image of the plan, the site network, metadata and tags naming
user, instance, experiment and hub, and user_data that creates her unix account, mounts her home (and the
experiment's data directory, ``experiment_data_source``) and starts jupyterhub-singleuser as her from the
image's instance environment (``instance_prefix``); the server's API token reaches the instance only through a
one-time bootstrap code (see :mod:`visa_hub.bootstrap`). Status comes from the hub-wide poller (one list call
per cycle for all instances); a reaper deletes the hub's servers that no spawner owns. Spawner state holds the
server id, so a restarted hub re-attaches each instance to its own server; a spawn the hub did not live to
record is found again by its metadata (user and instance name).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import secrets
import time
from typing import Any

from jupyterhub.spawner import Spawner
from jupyterhub.utils import maybe_future
from traitlets import Bool, Callable, Dict, Float, Integer, List, TraitError, Tuple, Unicode, default, validate

from visa_hub.instances import instance_name, session_summary
from visa_hub.metrics import timed_spawn

from ..base import VisaSpawnerMixin
from ..bootstrap import BootstrapCodes
from .account import DEFAULT_UID_RANGE, AccountError, InstanceAccount, checked_uid, default_uid, unix_name
from .cloud import CloudSettings
from .errors import (
    CloudUnavailable,
    InstanceError,
    NoCapacity,
    fault_message,
    is_auth,
    is_quota,
    is_transient,
    quota_message,
    unavailable_message,
)
from .fleet import Fleet, FleetSettings, fleet_for, safe_tag
from .homes import (
    ExportTemplate,
    ShareSettingError,
    data_mount_point,
    experiment_group,
    instance_label,
    parse_data_source,
    parse_home_source,
    volume_home_conflict,
)
from .poller import ServerView
from .redact import route_sdk_logs
from .userdata import FAILED_MARK, DataMount, build_user_data, encode

GONE_STATUSES = {"DELETED", "SOFT_DELETED", "SHELVED_OFFLOADED"}
DEAD_STATUSES = {"ERROR", "SHUTOFF", "SUSPENDED", "SHELVED", *GONE_STATUSES}


def build_progress(view: ServerView) -> tuple[int, str]:
    """Nova's state of a building server → (percent, message) for the spawn page."""
    if view.status == "ACTIVE":
        return 75, f"Your instance is running at {view.ip}; its operating system is booting"
    task = view.task_state or "scheduling"
    if task == "scheduling":
        return 35, "The cloud is choosing a host for your instance (scheduling)"
    if task == "networking":
        return 45, "Connecting your instance to the network"
    if task in ("block_device_mapping", "prepare_block_device"):
        return 50, "Attaching your persistent home volume"
    if task == "spawning":
        return 55 + view.progress // 6, f"Building the virtual machine ({view.progress} %)"
    return 40, f"The cloud is building your instance ({task.replace('_', ' ')})"


class OpenStackSpawner(VisaSpawnerMixin, BootstrapCodes, Spawner):
    """Experiment-aware JupyterLab on an OpenStack VM."""

    # ---------------------------------------------------------------- the cloud account
    cloud_name = Unicode(
        "", config=True,
        help="Cloud name in clouds.yaml (found via OS_CLIENT_CONFIG_FILE or the standard places). "
             "Empty: openstacksdk's defaults (OS_CLOUD, OS_* variables).",
    )
    cloud_auth = Dict(
        {}, config=True,
        help="Explicit openstack.connect() arguments (auth_type, auth={...}, region_name, ...) instead of "
             "clouds.yaml. Never logged.",
    )
    api_timeout = Float(30.0, config=True, help="Seconds before one cloud API request counts as timed out.")
    api_retries = Integer(
        3, config=True, help="Retries of a cloud call after a 5xx answer or a timeout (quota and other 4xx "
                             "answers are never retried).")
    api_backoff = Float(1.0, config=True, help="First retry delay in seconds; doubles with every retry.")
    api_workers = Integer(
        4, config=True, help="Cloud connections (each on its own thread) for creates and deletes; polling has "
                             "its own.")
    log_cloud_requests = Bool(
        False, config=True,
        help="Log every cloud API request at DEBUG in the hub log (bodies with user_data, passwords and "
             "tokens masked).",
    )

    # ---------------------------------------------------------------- what an instance is made of
    hub_id = Unicode(
        "visa-hub", config=True,
        help="Names this hub in the cloud: servers are tagged visa-hub-<hub_id> and the reaper deletes only "
             "those. Give every hub sharing a cloud project its own id.",
    )
    flavour_map = Dict(
        {}, config=True, help="Catalog flavour name → cloud flavour name, where they differ.")
    image_map = Dict(
        {}, config=True,
        help="Catalog image name → cloud image name, overriding the catalog's cloud_image.")
    network = Unicode(
        "", config=True, help="Name or id of the site network for instances. Empty: Nova's 'auto'.")
    floating_ip_network = Unicode(
        "", config=True,
        help="External network to take a floating IP from for each instance (deleted with it). Empty: none; "
             "the hub reaches instances on their fixed IP.",
    )
    lab_port = Integer(8888, config=True, help="Port jupyterhub-singleuser listens on inside the instance.")
    lab_ingress_cidrs = List(
        Unicode(), ["0.0.0.0/0"], config=True,
        help="Networks allowed to reach lab_port (the hub and proxy); restrict to the hub's subnet.",
    )
    experiment_rules = List(
        Dict(), [], config=True,
        help="Extra ingress rules in every experiment's security group, as Neutron rule fields "
             "(protocol, port_range_min, port_range_max, remote_ip_prefix); an 'instruments' list limits a "
             "rule to experiments on those instruments.",
    )
    home_source = Unicode(
        "volume", config=True,
        help="Where her home comes from. 'volume': a Cinder volume per person (home_volume_size_gb), created "
             "once and attached when an instance is created; a volume attaches to one instance at a time, so "
             "while one of her instances runs another is refused at once, with the name of the one that holds "
             "it. 'nfs://<server>/<path with {username}>' (e.g. nfs://files.example/export/homes/{username}, or "
             "a Manila share's NFS export location): her directory on the site's file server, mounted "
             "(shared_mount_options) by every instance of hers at the same time, so all of them see the same "
             "files. The site creates the directory owned by her uid on instances (uid_map / uid_hook, which "
             "must match the file server's), or leaves it empty and root's for her first instance to claim.",
    )
    shared_mount_options = Unicode(
        "hard,noatime", config=True,
        help="mount -o options for homes and experiment data on the file server (NFS), e.g. "
             "'vers=4.2,hard,noatime,sec=krb5' (the image needs an NFS client).",
    )
    experiment_data_source = Unicode(
        "", config=True,
        help="The experiments' data directories on the site's file server, "
             "'nfs://<server>/<path with {experiment}>' (the experiment's code), mounted on every instance of "
             "every member at experiment_data_mount; empty: none. On the instance the members share the "
             "experiment's unix group (exp-<code>, gid from experiment_gid_map or experiment_gid_range, or the "
             "image's own group of that name); a new, empty directory gets that group and mode 2770.",
    )
    experiment_data_mount = Unicode(
        "/data/{experiment}", config=True,
        help="Where an instance mounts its experiment's data directory ({experiment}: the experiment's code).",
    )
    experiment_gid_map = Dict(
        key_trait=Unicode(), value_trait=Integer(), default_value={}, config=True,
        help="Experiment code → gid of the experiment's group on instances and on the file server (e.g. the "
             "proposal's LDAP group). Experiments not listed get the default mapping (experiment_gid_range).",
    )
    experiment_gid_range = Tuple(
        Integer(), Integer(), default_value=(1_000_000_000, 2_000_000_000), config=True,
        help="Default gids of experiment groups: first + sha256(code) mod (last - first), apart from the "
             "persons' uid_range.",
    )
    home_volume_size_gb = Integer(10, config=True, help="Size of a user's persistent home volume, created once.")
    home_volume_type = Unicode("", config=True, help="Cinder volume type for home volumes (empty: default).")
    home_mount = Unicode(
        "/home/{username}", config=True,
        help="Where her home (volume or file-server directory, see home_source) is mounted in the instance "
             "({username}: her unix name there).")
    volume_wait_timeout = Float(
        120.0, config=True,
        help="Seconds to wait for a home volume to become available (e.g. still detaching from the last "
             "instance).",
    )

    # ---------------------------------------------------------------- who and what runs in an instance
    instance_prefix = Unicode(
        "/opt/visa-instance", config=True,
        help="The instance environment in the image (what scripts/provision-instance.sh PREFIX installed): "
             "jupyterhub-singleuser and visa-hub's start-up run from there, never from the hub's files.",
    )
    uid_map = Dict(
        key_trait=Unicode(), value_trait=Integer(), default_value={}, config=True,
        help="Hub username → uid of her unix account on instances, where the site fixes it (e.g. exported from "
             "LDAP). Users not listed get the default mapping (uid_range).",
    )
    uid_hook = Callable(
        None, allow_none=True, config=True,
        help="Called as hook(spawner) before each spawn (may be async); returns her uid on instances (e.g. from "
             "the User Office or LDAP) or None for uid_map / the default. An image whose NSS already knows her "
             "(SSSD) uses that account as it is.",
    )
    uid_range = Tuple(
        Integer(), Integer(), default_value=DEFAULT_UID_RANGE, config=True,
        help="Default uids: first + sha256(hub username) mod (last - first), the same on every instance, far "
             "above an image's own accounts. uids below 1000 and 65534 (nobody) are always refused.",
    )

    @default("cmd")
    def _cmd_default(self) -> list[str]:
        return [f"{self.instance_prefix.rstrip('/')}/bin/jupyterhub-singleuser"]

    @validate("home_source")
    def _valid_home_source(self, proposal: Any) -> str:
        try:
            parse_home_source(proposal["value"])
        except ShareSettingError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"].strip()

    @validate("experiment_data_source")
    def _valid_data_source(self, proposal: Any) -> str:
        try:
            parse_data_source(proposal["value"])
        except ShareSettingError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"].strip()

    @property
    def shared_home(self) -> ExportTemplate | None:
        """Her home's export template on the file server; ``None`` with Cinder volume homes."""
        return parse_home_source(self.home_source)

    # ---------------------------------------------------------------- polling and clean-up
    cloud_poll_interval = Float(
        10.0, config=True, help="Seconds between the hub-wide server list calls when nothing is starting.")
    cloud_poll_fast_interval = Float(
        1.0, config=True, help="Seconds between list calls while an instance starts or stops.")
    reaper_grace = Float(
        300.0, config=True,
        help="Seconds a server with this hub's tag may exist without a spawner owning it before the reaper "
             "deletes it.",
    )
    reaper_dry_run = Bool(False, config=True, help="Only log what the reaper would delete.")
    delete_timeout = Float(
        60.0, config=True,
        help="Seconds stop waits for a server to disappear; then the reaper finishes the delete.")

    # ---------------------------------------------------------------- runtime state
    server_id: str | None = None
    cloud_server_name: str | None = None
    instance_ip: str | None = None
    volume_id: str | None = None
    floating_ip_id: str | None = None
    _created_at: float = 0.0

    # ---------------------------------------------------------------- shared fleet

    @property
    def fleet(self) -> Fleet:
        settings = FleetSettings(
            cloud=CloudSettings(
                cloud_name=self.cloud_name, auth=json.dumps(self.cloud_auth, sort_keys=True) if self.cloud_auth else "",
                api_timeout=self.api_timeout, retries=self.api_retries, backoff=self.api_backoff,
                action_workers=self.api_workers),
            hub_id=self.hub_id, network=self.network, poll_interval=self.cloud_poll_interval,
            poll_fast_interval=self.cloud_poll_fast_interval, reaper_grace=self.reaper_grace,
            reaper_dry_run=self.reaper_dry_run, floating_ip_network=self.floating_ip_network,
        )
        fleet = fleet_for(settings, self.log)
        if not getattr(fleet, "_logs_routed", False):
            route_sdk_logs(self.log, self.log_cloud_requests)
            fleet._logs_routed = True  # type: ignore[attr-defined]
        with contextlib.suppress(RuntimeError):  # no running loop yet: the first await starts it
            fleet.poller.start()
        return fleet

    # ---------------------------------------------------------------- state

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        for key in ("server_id", "cloud_server_name", "instance_ip", "volume_id", "floating_ip_id"):
            if getattr(self, key):
                state[key] = getattr(self, key)
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        for key in ("server_id", "cloud_server_name", "instance_ip", "volume_id", "floating_ip_id"):
            setattr(self, key, state.get(key))
        if self.server_id:
            self.fleet.reaper.own(self.server_id)

    def clear_state(self) -> None:
        super().clear_state()
        self.server_id = self.cloud_server_name = self.instance_ip = self.volume_id = None
        self.floating_ip_id = None

    # ---------------------------------------------------------------- start

    def _names(self, code: str) -> tuple[str, str]:
        spawn_id = secrets.token_hex(4)
        user = re.sub(r"[^A-Za-z0-9_.@-]", "-", self.user.name)
        server = f"visa-{user}{'-' + self.name if self.name else ''}-{code}-{spawn_id}"
        return server[:255], spawn_id

    @timed_spawn
    async def start(self) -> str:
        plan = await self.prepare_session()
        fleet = self.fleet
        code, flavour = plan.experiment.code, plan.flavour.name
        name, spawn_id = self._names(code)
        fleet.reaper.spawning.add(spawn_id)
        try:
            with fleet.poller.urgent():
                return await self._start(fleet, plan, name, spawn_id)
        except BaseException as exc:
            await self._discard_failed_spawn(fleet, spawn_id)
            if isinstance(exc, InstanceError | asyncio.CancelledError):
                if isinstance(exc, InstanceError):
                    self.progress_log.emit(100, exc.jupyterhub_message, failed=True)
                    self.log.warning("Spawn of %s failed: %s %s", self._log_name, exc, exc.detail)
                raise
            raise self._explain(exc, f"starting your {flavour} instance for experiment {code}") from exc
        finally:
            fleet.reaper.spawning.discard(spawn_id)

    async def _start(self, fleet: Fleet, plan: Any, name: str, spawn_id: str) -> str:
        code, flavour = plan.experiment.code, plan.flavour.name
        account = await self.instance_account()
        data = self._data_mount(code)
        flavor_id, image_id, network_id = await self._resolve(fleet, plan)

        self.progress_log.emit(20, f"Preparing the firewall of experiment {code}")
        group = f"visa-{self.hub_id}-exp-{code}"
        await fleet.ensure_security_group(group, f"visa-hub instances of experiment {code}",
                                          self._rules(plan.instrument.name))

        shared = self.shared_home
        if shared is None:
            volume_id = await self._home_volume(fleet)
            home = {"volume_id": volume_id}
            disks = [{"source_type": "volume", "destination_type": "volume", "uuid": volume_id,
                      "boot_index": None, "delete_on_termination": False}]
        else:
            export = self._export(shared, username=account.name)
            self.progress_log.emit(25, f"Your home is {export.source} on the site's file server, shared by all "
                                       "your instances")
            home, disks = {"shared_home": export}, []
        self.progress_log.emit(30, f"Asking the cloud for a {plan.flavour.label} instance")
        spec = {
            "name": name, "flavor_id": flavor_id, "image_id": image_id,
            "networks": [{"uuid": network_id}] if network_id else "auto",
            "security_groups": [{"name": group}],
            "metadata": {
                "visa_hub": self.hub_id, "visa_user": self.user.name[:255], "visa_server_name": self.name,
                "visa_spawn": spawn_id, "visa_experiment": code, "visa_flavour": flavour,
                "visa_image": plan.image.name, "visa_expires_at": plan.expires_at.isoformat(),
                "visa_home": "volume" if shared is None else "shared",
            },
            "tags": [fleet.settings.tag, safe_tag(f"experiment-{code}")],
            "user_data": encode(self._user_data(account, data=data, **home)),
            **({"block_device_mapping": disks} if disks else {}),
        }
        self._save_state_now()  # the code's hash is in the database before any VM can present the code
        self.log.info("Creating server %s for %s: flavour %s, image %s, experiment %s", name, self._log_name,
                      flavour, plan.image.name, code)  # never the spec: user_data holds a bootstrap code
        started = time.monotonic()
        try:
            server_id = await fleet.create_server(spec, spawn_id)
        except Exception as exc:
            if is_quota(exc):
                raise NoCapacity(quota_message(flavour, code, exc), detail=str(exc)) from exc
            raise
        self.server_id, self.cloud_server_name, self._created_at = server_id, name, started
        fleet.reaper.own(server_id)
        self._record_state()

        view = await self._follow_build(fleet, plan)
        self.instance_ip = view.ip
        if fleet.settings.floating_ip_network:
            self.floating_ip_id, address = await fleet.attach_floating_ip(server_id, self._instance_id)
            self._record_state()
            self.log.info("Floating IP %s for %s (%s)", address, self._log_name, server_id)
        await self._wait_for_lab(fleet, plan)
        self.log.info("Server %s of %s is up at %s after %.1f s", server_id, self._log_name, view.ip,
                      time.monotonic() - started)
        return f"http://{view.ip}:{self.lab_port}"

    async def _resolve(self, fleet: Fleet, plan: Any) -> tuple[str, str, str | None]:
        flavour = self.flavour_map.get(plan.flavour.name, plan.flavour.name)
        image = self.image_map.get(plan.image.name) or plan.image.cloud_image or plan.image.name
        flavor_id = await fleet.resolve("flavour", flavour)
        image_id = await fleet.resolve("image", image)
        network_id = await fleet.resolve("network", self.network) if self.network else None
        missing = [f"flavour {flavour!r}" if flavor_id is None else "", f"image {image!r}" if image_id is None else "",
                   f"network {self.network!r}" if self.network and network_id is None else ""]
        missing = [m for m in missing if m]
        if missing:
            raise InstanceError(
                f"The cloud has no {' and no '.join(missing)} for {plan.flavour.name} instances of "
                f"experiment {plan.experiment.code}. This is a site configuration problem: please contact "
                "support.")
        return flavor_id, image_id, network_id  # type: ignore[return-value]

    def _rules(self, instrument: str) -> list[dict[str, Any]]:
        """The experiment's firewall: Lab from the hub, anything between the experiment's instances, extras."""
        rules: list[dict[str, Any]] = [
            {"protocol": "tcp", "port_range_min": self.lab_port, "port_range_max": self.lab_port,
             "remote_ip_prefix": cidr} for cidr in self.lab_ingress_cidrs]
        rules.append({"remote_group_id": "self"})
        for extra in self.experiment_rules:
            instruments = [i.casefold() for i in extra.get("instruments", [])]
            if not instruments or instrument.casefold() in instruments:
                rules.append({k: v for k, v in extra.items() if k != "instruments"})
        return rules

    async def _home_volume(self, fleet: Fleet) -> str:
        """The user's persistent home: found by metadata or created once; waits until it can be attached."""
        metadata = {"visa_hub": self.hub_id, "visa_user": self.user.name[:255], "visa_role": "home"}
        self.progress_log.emit(25, "Finding your persistent home volume")
        try:
            volume = await fleet.find_or_create_volume(metadata, f"visa-home-{self.user.name}"[:255],
                                                       self.home_volume_size_gb, self.home_volume_type)
        except Exception as exc:
            if is_quota(exc):
                raise NoCapacity(
                    "There is no room in the cloud project for your persistent home volume "
                    f"({self.home_volume_size_gb} GB). Please contact support.", detail=str(exc)) from exc
            raise
        if volume.created:
            self.progress_log.emit(27, f"Created your persistent home volume ({self.home_volume_size_gb} GB)")
            self.log.info("Created home volume %s for %s", volume.id, self._log_name)
        deadline = time.monotonic() + self.volume_wait_timeout
        told = False
        while volume.status != "available":
            if volume.status in ("error", "error_restoring", "error_extending"):
                raise InstanceError(
                    "Your persistent home volume is damaged (the cloud reports it in error). Your files are "
                    "kept; please contact support.", detail=f"volume {volume.id} status {volume.status}")
            if time.monotonic() > deadline:
                holders = [fleet.poller.snapshot.servers.get(server_id) for server_id in volume.server_ids]
                names = sorted({view.metadata.get("visa_experiment") or view.name for view in holders if view})
                holder = f" ({', '.join(names)})" if names else ""
                raise InstanceError(
                    f"Your persistent home volume is still attached to another instance{holder}. Stop that "
                    "instance and try again, or ask the site for shared homes.",
                    detail=f"volume {volume.id} {volume.status} on {volume.server_ids}")
            if not told and volume.status in ("in-use", "detaching", "attaching", "reserved"):
                self.progress_log.emit(28, "Waiting for your previous instance to release your home volume")
                told = True
            await asyncio.sleep(0.2 if volume.status == "creating" else 1.0)
            found = await fleet.volume(volume.id)
            if found is None:
                raise InstanceError("Your persistent home volume disappeared while starting. Please try again.")
            volume = found
        self.volume_id = volume.id
        return volume.id

    async def instance_account(self) -> InstanceAccount:
        """Her unix account on the instance: uid from uid_hook, uid_map or the default mapping."""
        try:
            uid = await maybe_future(self.uid_hook(self)) if self.uid_hook else None
            if uid is None:
                mapped = self.user.name in self.uid_map
                uid = self.uid_map[self.user.name] if mapped else default_uid(self.user.name, tuple(self.uid_range))
            uid = checked_uid(uid, self.user.name)
        except Exception as exc:  # the site's hook or mapping: a configuration problem, not the cloud's
            self.log.error("No instance account for %s: %s", self._log_name, exc, exc_info=not isinstance(
                exc, AccountError))
            raise InstanceError("Your account on instances could not be set up, so no instance was started. "
                                "Please contact support.", detail=str(exc)) from None
        name = unix_name(self.user.name)
        return InstanceAccount(name=name, uid=uid, home=self.home_mount.format(username=name))

    def _user_data(self, account: InstanceAccount, **home: Any) -> str:
        """The start-up script: a new one-time bootstrap code, never the API token (see userdata.py)."""
        return build_user_data(
            account=account, prefix=self.instance_prefix, command=[*self.cmd, *self.get_args()],
            env=self.get_env(), port=self.lab_port, base_url=self.server.base_url,
            bootstrap_code=self.issue_bootstrap_code(), mount_options=self.shared_mount_options, **home,
        )

    def _export(self, template: ExportTemplate, **values: str) -> Any:
        try:
            return template.export(**values)
        except ShareSettingError as exc:
            raise InstanceError(f"Your {'home' if 'username' in values else 'experiment data'} on the file "
                                f"server has no valid name, so no instance was started ({exc}). Please contact "
                                "support.") from None

    def _data_mount(self, experiment: str) -> DataMount | None:
        """The experiment's data directory on the file server, if the site has them."""
        template = parse_data_source(self.experiment_data_source)
        if template is None:
            return None
        export = self._export(template, experiment=experiment)
        try:
            mount_point = data_mount_point(self.experiment_data_mount, experiment)
            gid = self.experiment_gid_map.get(experiment) or default_uid(experiment, tuple(self.experiment_gid_range))
            gid = checked_uid(gid, f"experiment {experiment}")
        except (ShareSettingError, AccountError) as exc:
            raise InstanceError(f"The data directory of experiment {experiment} cannot be set up, so no instance "
                                "was started. This is a site configuration problem: please contact support.",
                                detail=str(exc)) from None
        return DataMount(export, mount_point, experiment_group(experiment), gid)

    @property
    def _instance_id(self) -> str:
        """Names this instance among all of the hub's: ``<user>/<server name>`` (as JupyterHub does)."""
        return f"{self.user.name}/{self.name}"

    def instance_conflict(self, for_new: bool = False) -> str | None:
        """With Cinder volume homes, a second instance while one of hers holds the volume: why it cannot
        start (checked with the policy, before anything is created in the cloud)."""
        if self.shared_home is not None:
            return None
        for name, other in sorted(self.user.spawners.items()):
            if (name == self.name and not for_new) or not isinstance(other, OpenStackSpawner) or not other.active:
                continue
            if other.volume_id or other.shared_home is None:
                summary = session_summary(other) or {}
                code = str((summary.get("experiment") or {}).get("code")
                           or (other.user_options or {}).get("experiment") or "")
                return volume_home_conflict(instance_label(code, name, instance_name(code, []) if code else ""))
        return None


    def get_args(self) -> list[str]:
        # --ip/--port come from the instance at boot (user_data), not from the hub's view of it
        return [a for a in super().get_args() if not a.startswith(("--ip=", "--port="))]

    async def _follow_build(self, fleet: Fleet, plan: Any) -> ServerView:
        """Report Nova's progress until the server is ACTIVE with an address; ERROR ends the spawn."""
        last: tuple[int, str] | None = None
        missing = 0
        while True:
            snapshot = await fleet.poller.next_cycle(timeout=fleet.settings.poll_fast_interval * 5)
            if snapshot.stale:
                continue
            view = snapshot.servers.get(self.server_id or "")
            if view is None:
                if snapshot.taken_at > self._created_at:
                    missing += 1
                    if missing >= 3:
                        raise InstanceError(
                            f"Your instance for experiment {plan.experiment.code} disappeared from the cloud "
                            "while it was being built. Please try again.")
                continue
            if view.status == "ERROR":
                raise InstanceError(fault_message(plan.flavour.name, plan.experiment.code, view.fault),
                                    detail=str(view.fault))
            if view.status in DEAD_STATUSES:
                raise InstanceError(
                    f"Your instance for experiment {plan.experiment.code} stopped while it was being built "
                    f"(cloud status {view.status}). Please try again.")
            event = build_progress(view)
            if event != last:
                self.progress_log.emit(*event)
                last = event
            if view.status == "ACTIVE" and view.ip:
                return view

    async def _wait_for_lab(self, fleet: Fleet, plan: Any) -> None:
        """Wait until the instance accepts connections on lab_port (the OS booted, Lab is listening)."""
        ip = self.instance_ip
        checked = time.monotonic()
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(ip, self.lab_port), timeout=2)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.25)
            else:
                writer.close()
                self.progress_log.emit(90, f"JupyterLab is starting for experiment {plan.experiment.code}")
                return
            if time.monotonic() - checked > 5:  # meanwhile, notice if the instance died or its start-up failed
                checked = time.monotonic()
                view = fleet.poller.snapshot.servers.get(self.server_id or "")
                if view is not None and view.status in DEAD_STATUSES:
                    raise InstanceError(
                        f"Your instance for experiment {plan.experiment.code} stopped while booting (cloud "
                        f"status {view.status}). Please try again.",
                        detail=str(view.fault))
                reason = await self._boot_failure(fleet)
                if reason:
                    raise InstanceError(
                        f"Your instance for experiment {plan.experiment.code} could not start: {reason}. It has "
                        "been removed; if this happens again, please contact support.", detail=reason)

    async def _boot_failure(self, fleet: Fleet) -> str | None:
        """The reason user_data gave up with (its ``FAILED`` line on the console), if it did."""
        try:
            console = await fleet.console_tail(self.server_id or "")
        except Exception as exc:  # the console is a help, not a must: keep waiting for Lab
            self.log.debug("Could not read the console of %s: %s", self._log_name, exc)
            return None
        for line in reversed(console.splitlines()):
            if line.startswith(FAILED_MARK):
                return line[len(FAILED_MARK):].strip()[:300] or "no reason given"
        return None

    async def _discard_failed_spawn(self, fleet: Fleet, spawn_id: str) -> None:
        """After a failed spawn: delete its server (found by id, or by spawn id if the create half-failed)."""
        ids = {self.server_id} if self.server_id else set()
        ids |= {s.id for s in fleet.poller.snapshot.servers.values() if s.metadata.get("visa_spawn") == spawn_id}
        for server_id in ids:
            if self.floating_ip_id:
                try:
                    await fleet.delete_floating_ip(self.floating_ip_id)
                except Exception as exc:
                    self.log.warning("Could not delete floating IP %s (reaper will): %s", self.floating_ip_id, exc)
            try:
                await fleet.delete_server(server_id)
                self.log.info("Deleted server %s of the failed spawn of %s", server_id, self._log_name)
                fleet.reaper.disown(server_id)
            except Exception as exc:
                self.log.warning("Could not delete server %s of the failed spawn of %s (the reaper will "
                                 "retry): %s", server_id, self._log_name, exc)
                fleet.reaper.disown(server_id, failed_delete=True)
        self.server_id = self.instance_ip = self.floating_ip_id = None

    def _explain(self, exc: BaseException, action: str) -> InstanceError:
        """Any other failure as an InstanceError a person can read (the traceback stays in the hub log)."""
        if is_auth(exc):
            error: InstanceError = InstanceError(
                "The hub could not log in to the cloud, so no instance was started. Please contact support.")
        elif is_transient(exc):
            error = CloudUnavailable(unavailable_message(action, exc))
        else:
            error = InstanceError(f"The cloud refused {action}: {str(exc)[:300]}. Please contact support.")
        self.log.error("Spawn of %s failed: %s", self._log_name, exc, exc_info=not is_transient(exc))
        self.progress_log.emit(100, error.jupyterhub_message, failed=True)
        return error

    # ---------------------------------------------------------------- poll, url, stop

    async def poll(self) -> int | None:
        fleet = self.fleet
        if not self.server_id and not self._adopt(await fleet.poller.fresh()):
            return 0
        snapshot = await fleet.poller.fresh()
        if snapshot.stale and snapshot.cycle == 0:
            return None  # the cloud cannot be asked right now: do not declare anything dead
        view = snapshot.servers.get(self.server_id or "")
        if view is None:
            if snapshot.stale or snapshot.taken_at < self._created_at:
                return None
            return 0
        if view.status in DEAD_STATUSES:
            return 1
        return None

    def _adopt(self, snapshot: Any) -> bool:
        """After a hub restart in the middle of a spawn: find our server by its metadata."""
        if self.server is None or getattr(self, "_start_pending", False):
            return False
        fleet = self.fleet
        mine = [s for s in snapshot.servers.values()
                if s.metadata.get("visa_user") == self.user.name[:255]
                and s.metadata.get("visa_server_name", "") == self.name
                and s.id not in fleet.reaper.owned and s.id not in fleet.reaper.deleting
                and s.status not in DEAD_STATUSES and s.task_state != "deleting"]
        if not mine:
            return False
        view = max(mine, key=lambda s: s.created_at or "")
        self.server_id, self.cloud_server_name, self.instance_ip = view.id, view.name, view.ip
        fleet.reaper.own(view.id)
        self._record_state()
        self.log.info("Re-attached %s to server %s (%s), found by its metadata", self._log_name, view.id,
                      view.status)
        return True

    def _record_state(self) -> None:
        """Put the server id in the hub's database record now (committed with the hub's next write), not
        only when start returns: a hub that dies mid-spawn then finds it in state, not just by metadata."""
        if self.orm_spawner is not None:
            self.orm_spawner.state = self.get_state()

    async def get_url(self) -> str:
        """The instance's URL; after a restart mid-spawn, waits for the cloud to give it an address."""
        fleet = self.fleet
        deadline = time.monotonic() + self.start_timeout
        while not self.instance_ip and self.server_id and time.monotonic() < deadline:
            with fleet.poller.urgent():
                snapshot = await fleet.poller.next_cycle(timeout=fleet.settings.poll_fast_interval * 5)
            view = snapshot.servers.get(self.server_id)
            if view is not None and view.ip:
                self.instance_ip = view.ip
            elif view is None and not snapshot.stale:
                break
        if not self.instance_ip:
            return await super().get_url()
        if fleet.settings.floating_ip_network and self.server_id and not self.floating_ip_id:
            # re-attached after a restart mid-spawn: the floating IP the spawn would have added (or had added)
            try:
                self.floating_ip_id, address = await fleet.ensure_floating_ip(self.server_id, self._instance_id)
                self._record_state()
                self.log.info("Floating IP %s for re-attached %s (%s)", address, self._log_name, self.server_id)
            except Exception as exc:  # noqa: BLE001  (the hub reaches it on its fixed IP all the same)
                self.log.warning("Could not give re-attached %s a floating IP: %s", self._log_name, exc)
        return f"http://{self.instance_ip}:{self.lab_port}"

    async def stop(self, now: bool = False) -> None:
        """Delete the server and its floating IP and ports; the home volume stays."""
        server_id = self.server_id
        if not server_id:
            return
        fleet = self.fleet
        if self.floating_ip_id:
            try:
                await fleet.delete_floating_ip(self.floating_ip_id)
            except Exception as exc:
                self.log.warning("Could not delete floating IP of %s (the reaper will): %s", self._log_name, exc)
        try:
            await fleet.delete_server(server_id)
        except Exception as exc:
            self.log.warning("Deleting server %s of %s failed (%s); the reaper will retry", server_id,
                             self._log_name, exc)
            fleet.reaper.disown(server_id, failed_delete=True)
            self._forget_server()
            return
        self.log.info("Deleting server %s of %s (its home volume stays)", server_id, self._log_name)
        deadline = time.monotonic() + self.delete_timeout
        with fleet.poller.urgent():
            while time.monotonic() < deadline:
                snapshot = await fleet.poller.next_cycle(timeout=fleet.settings.poll_fast_interval * 5)
                if not snapshot.stale and server_id not in snapshot.servers:
                    break
            else:
                self.log.warning("Server %s of %s still exists after %g s; the reaper will finish deleting it",
                                 server_id, self._log_name, self.delete_timeout)
                fleet.reaper.disown(server_id, failed_delete=True)
                self._forget_server()
                return
        fleet.reaper.disown(server_id)
        try:
            leftovers = await fleet.delete_leftover_ports(server_id)
            if leftovers:
                self.log.info("Deleted %d leftover port(s) of server %s", leftovers, server_id)
        except Exception as exc:
            self.log.warning("Could not check ports of deleted server %s: %s", server_id, exc)
        self._forget_server()

    def _forget_server(self) -> None:
        self.server_id = self.instance_ip = self.floating_ip_id = self.cloud_server_name = None
