"""The simulator: one tornado application on one loopback port, a path prefix per service.

    sim = OpenStackSimulator(workdir=tmp_path)
    await sim.start()              # inside a running asyncio loop
    conn = openstack.connect(**sim.connect_kwargs())
    ...
    await sim.stop()

openstacksdk is synchronous: from synchronous code use :class:`SimulatorThread`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import socket
import tempfile
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

from . import cinder, glance, keystone, neutron, nova
from .admin import admin_routes
from .base import SimHandler, route
from .compute import Compute
from .faults import Faults, RequestStats
from .metadata import metadata_routes
from .sandbox import file_server_root
from .state import AddressPool, AppCredential, Flavor, Project, Quota, SimState, Token, User, new_hex_id, utcnow

log = logging.getLogger(__name__)

DEFAULT_FLAVORS = [
    # name, vcpus, ram MB, disk GB
    ("m1.tiny", 1, 512, 1),
    ("m1.small", 1, 2048, 20),
    ("m1.medium", 2, 4096, 40),
    ("m1.large", 4, 8192, 80),
    ("m1.xlarge", 8, 16384, 160),
]
DEFAULT_IMAGES = ["visa-instance", "cirros-0.6.2-x86_64-disk", "ubuntu-22.04"]


class OpenStackSimulator:
    """A small OpenStack cloud (Keystone, Nova, Glance, Neutron, Cinder) for tests and the demo.

    One project, user and application credential are seeded (see the ``project``,
    ``username``, ``password``, ``app_credential_*`` arguments); add more with
    :meth:`add_user`. Timing knobs (``boot_delay`` etc.) may be changed at any time.
    Servers run their user_data in a sandbox that looks like a VM (:mod:`.sandbox`; needs root and bubblewrap);
    ``image_files`` adds files of the image, e.g. a provisioned instance environment. ``file_server`` is the
    site's NFS server the VMs can mount exports of (:meth:`export_directory`).
    """

    def __init__(
        self,
        workdir: str | Path | None = None,
        *,
        host: str = "127.0.0.1",
        boot_delay: float = 0.5,
        delete_delay: float = 0.0,
        volume_delay: float = 0.05,
        kill_grace: float = 3.0,
        token_lifetime: float = 3600.0,
        project: str = "demo",
        username: str = "demo",
        password: str = "demo-password",
        app_credential_name: str = "demo-app-credential",
        app_credential_secret: str = "demo-app-credential-secret",
        quota: Quota | None = None,
        flavors: list[tuple[str, int, int, int]] | None = None,
        images: list[str] | None = None,
        private_cidr: str | None = None,
        public_cidr: str | None = None,
        allow_attach_while_building: bool = False,
        image_files: dict[str, str | Path] | None = None,
    ) -> None:
        if workdir is None:
            self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(prefix="os-sim-")
            workdir = self._tmp.name
        else:
            self._tmp = None
        self.workdir = Path(workdir).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = 0
        self.boot_delay = boot_delay
        self.delete_delay = delete_delay
        self.volume_delay = volume_delay
        self.kill_grace = kill_grace
        self.token_lifetime = token_lifetime
        self.allow_attach_while_building = allow_attach_while_building
        # what every image holds besides the host's /usr: path in the VM → host file or directory (read-only),
        # e.g. {"/opt/visa-instance": <a provisioned instance environment>}
        self.image_files = {guest: Path(host) for guest, host in (image_files or {}).items()}
        # the site's NFS file server: <file_server>/<server>/<path> is the export <server>:<path> (see .sandbox)
        self.file_server = file_server_root(self.workdir / "file-server")
        self.region = "RegionOne"
        self.state = SimState()
        self.faults = Faults()
        self.stats_counter = RequestStats()
        self.compute = Compute(self)
        self.keypairs: dict[str, dict[str, dict[str, Any]]] = {}  # user id -> name -> keypair
        self.member_role_id, self.reader_role_id = new_hex_id(), new_hex_id()
        self.router_id = neutron.new_uuid()
        self._server: tornado.httpserver.HTTPServer | None = None
        # Random /16s inside 127.0.0.0/8 so that simulators running side by side rarely collide.
        octets = random.sample(range(64, 250), 3)
        self.private_cidr = private_cidr or f"127.{octets[0]}.0.0/16"
        self.public_cidr = public_cidr or f"127.{octets[1]}.0.0/16"
        self.spare_pool = AddressPool(f"127.{octets[2]}.0.0/16")  # servers booted with networks="none"

        self.project = self.add_project(project, quota)
        self.user, self.app_credential = self.add_user(
            username, password, self.project, app_credential_name, app_credential_secret)
        for name, vcpus, ram, disk in flavors or DEFAULT_FLAVORS:
            self.add_flavor(name, vcpus, ram, disk)
        for name in images or DEFAULT_IMAGES:
            self.add_image(name)
        self.public_network = neutron.create_network(self, self.project.id, "public", self.public_cidr,
                                                     external=True, shared=False)
        self.private_network = neutron.create_network(self, self.project.id, "private", self.private_cidr)

    # ---------------------------------------------------------------- seeding

    def export_directory(self, export: str) -> Path:
        """The host directory behind the file server's export ``<server>:<path>`` (made by the caller, as a
        site's account provisioning makes homes on its file server)."""
        server, _, path = export.partition(":")
        parts = [part for part in path.split("/") if part]
        if not server or not path.startswith("/") or ".." in parts or "/" in server:
            raise ValueError(f"not an export <server>:/<path>: {export!r}")
        return self.file_server.joinpath(server, *parts)

    def add_project(self, name: str, quota: Quota | None = None) -> Project:
        """A project with its ``default`` security group and quota."""
        project = Project(id=new_hex_id(), name=name)
        self.state.projects[project.id] = project
        self.state.quotas[project.id] = dataclasses.replace(quota) if quota else Quota()
        neutron.create_security_group(self, project.id, "default", "Default security group")
        return project

    def add_user(self, name: str, password: str, project: Project, app_credential_name: str | None = None,
                 app_credential_secret: str | None = None) -> tuple[User, AppCredential | None]:
        """A user who is a member of ``project``, optionally with an application credential for it."""
        user = User(id=new_hex_id(), name=name, password=password, default_project_id=project.id)
        self.state.users[user.id] = user
        self.state.memberships.add((user.id, project.id))
        credential = None
        if app_credential_name and app_credential_secret:
            credential = AppCredential(id=new_hex_id(), name=app_credential_name, secret=app_credential_secret,
                                       user_id=user.id, project_id=project.id)
            self.state.app_credentials[credential.id] = credential
        return user, credential

    def add_flavor(self, name: str, vcpus: int, ram: int, disk: int, **extra: Any) -> Flavor:
        flavor = Flavor(id=new_hex_id()[:8] + "-" + name.replace(".", "-"), name=name, vcpus=vcpus, ram=ram,
                        disk=disk, **extra)
        self.state.flavors[flavor.id] = flavor
        return flavor

    def add_image(self, name: str, **properties: Any) -> dict[str, Any]:
        image = glance.make_image(name, owner=self.project.id, **properties)
        self.state.images[image["id"]] = image
        return image

    def set_quota(self, project: Project | str | None = None, **limits: int) -> Quota:
        """Change a project's limits, e.g. ``sim.set_quota(cores=4)`` (shrinking below usage is allowed)."""
        project_id = project.id if isinstance(project, Project) else project or self.project.id
        quota = self.state.quota(project_id)
        for key, value in limits.items():
            if not hasattr(quota, key):
                raise ValueError(f"unknown quota {key!r}; known: {[f.name for f in dataclasses.fields(quota)]}")
            setattr(quota, key, int(value))
        return quota

    # ---------------------------------------------------------------- identity

    def valid_token(self, token_id: str) -> Token | None:
        token = self.state.tokens.get(token_id) if token_id else None
        if token is None or token.expires_at <= utcnow():
            return None
        return token

    def catalog(self, project_id: str) -> list[dict[str, Any]]:
        """Keystone's service catalog for a project token."""
        services = [
            ("identity", "keystone", f"{self.url}/identity"),
            ("compute", "nova", f"{self.url}/compute/v2.1"),
            ("image", "glance", f"{self.url}/image"),
            ("network", "neutron", f"{self.url}/network"),
            ("block-storage", "cinder", f"{self.url}/volume/v3/{project_id}"),
            ("volumev3", "cinderv3", f"{self.url}/volume/v3/{project_id}"),
        ]
        return [
            {"id": f"{kind}-service", "type": kind, "name": name,
             "endpoints": [{"id": f"{kind}-{interface}", "interface": interface, "region_id": self.region,
                            "region": self.region, "url": url} for interface in ("public", "internal")]}
            for kind, name, url in services
        ]

    # ---------------------------------------------------------------- HTTP

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234``."""
        return f"http://{self.host}:{self.port}"

    @property
    def auth_url(self) -> str:
        return f"{self.url}/identity/v3"

    def make_app(self) -> tornado.web.Application:
        handlers: list[Any] = []
        for table in (keystone.routes(), nova.routes(), glance.routes(), neutron.routes(), cinder.routes()):
            for template, handler, kwargs in table:
                handlers.append((route(template), handler, {"sim": self, "template": template, **kwargs}))
        handlers += admin_routes(self)
        handlers += metadata_routes(self)
        handlers.append((r".*", NotFoundHandler, {"sim": self, "template": "*"}))
        return tornado.web.Application(handlers, log_function=self._log_request)

    def _log_request(self, handler: tornado.web.RequestHandler) -> None:
        request = handler.request
        version = request.headers.get("OpenStack-API-Version", "")
        log.debug("%s %s%s -> %s (%.1f ms)", request.method, request.uri, f" [{version}]" if version else "",
                  handler.get_status(), 1000 * request.request_time())

    async def start(self, port: int = 0) -> None:
        """Listen on ``host:port`` (0: any free port) in the running event loop."""
        sockets = tornado.netutil.bind_sockets(port, self.host, family=socket.AF_INET)
        self.port = sockets[0].getsockname()[1]
        self._server = tornado.httpserver.HTTPServer(self.make_app())
        self._server.add_sockets(sockets)
        log.info("OpenStack simulator listening on %s (work dir %s)", self.url, self.workdir)

    async def stop(self) -> None:
        """Stop listening, then stop every server's process group."""
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()
            self._server = None
        await self.compute.shutdown()
        if self._tmp is not None:
            self._tmp.cleanup()

    # ---------------------------------------------------------------- tests and benchmarks

    def stats(self) -> dict[str, int]:
        """Requests per ``"METHOD /path/{template}"`` since start or the last :meth:`reset_stats`."""
        return self.stats_counter.snapshot()

    def reset_stats(self) -> None:
        self.stats_counter.reset()

    def server_by_name(self, name: str) -> Any:
        """The live server with this name (for assertions), or ``None``."""
        return next((s for s in self.state.servers.values() if s.name == name and not s.deleted), None)

    # ---------------------------------------------------------------- client configuration

    def connect_kwargs(self, use_app_credential: bool = False) -> dict[str, Any]:
        """Keyword arguments for ``openstack.connect(**kwargs)`` (ignores any clouds.yaml and OS_* vars)."""
        cloud = self.clouds_yaml(use_app_credential)["clouds"]["visa-sim"]
        return {**cloud, "load_yaml_config": False, "load_envvars": False}

    def clouds_yaml(self, use_app_credential: bool = False, cloud_name: str = "visa-sim") -> dict[str, Any]:
        """A ``clouds.yaml`` document (as a dict) for this simulator."""
        if use_app_credential and self.app_credential is not None:
            auth_type = "v3applicationcredential"
            auth: dict[str, Any] = {"auth_url": self.auth_url,
                                    "application_credential_id": self.app_credential.id,
                                    "application_credential_secret": self.app_credential.secret}
        else:
            auth_type = "v3password"
            auth = {"auth_url": self.auth_url, "username": self.user.name, "password": self.user.password,
                    "project_name": self.project.name, "user_domain_name": "Default",
                    "project_domain_name": "Default"}
        return {"clouds": {cloud_name: {"auth_type": auth_type, "auth": auth, "region_name": self.region,
                                        "interface": "public", "identity_api_version": 3}}}


class NotFoundHandler(SimHandler):
    """Anything unrouted: 404 (counted, so benchmarks see stray calls)."""

    requires_auth = False

    def prepare(self) -> None:  # type: ignore[override]
        self.sim.stats_counter.count(self.request.method or "GET", f"UNKNOWN {self.request.path}")
        self.set_status(404)
        self.set_header("Content-Type", "application/json")
        self.finish('{"message": "The resource could not be found.", "code": "404 Not Found", '
                    '"title": "Not Found"}')


__all__ = ["OpenStackSimulator"]
