"""The instance's app API (``{base_url}visa/api/apps...``) and its background duties.

``GET  visa/api/apps``            app versions for this session (default, kernel name, marks), problems, revision
``POST visa/api/apps/launch``     ``{"ref": "NAME@VERSION", "args": [...]}``: start a command or desktop app
``POST visa/api/apps/bundle``     ``{"cycle": ..., "references_only": false}``: write the cycle's bundle into her
                                  files (``visa-bundles/``) and answer its contents path and manifest
``GET  visa/api/apps/records``    her provenance records
``POST visa/api/apps/reproduce``  ``{"record": ID}``: check a record's versions against their digests, start its
                                  kernels (answered, so Lab opens them) and its other apps

Every few seconds the server also writes the apps as desktop entries for the desktop's menus, and copies this
session's provenance record to the hub when it changed (``POST {hub}/api/visa/provenance/{user}/{record}``
with the server's own token, see :mod:`visa_hub.apps.hubstore`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.ioloop import PeriodicCallback

from ..apps.bundle import BundleError, write_bundle
from ..apps.catalog import AppCatalog, AppError
from ..apps.cli import CliError, reproduction_plan, self_command
from ..apps.images import ImageError
from ..apps.kernelspecs import kernel_name
from ..apps.launch import check_version
from ..apps.menu import desktop_entries, sync_desktop_entries
from ..apps.provenance import ProvenanceError, ensure_record, find_record, list_records, read_record, record_path
from ..apps.settings import AppSettings
from ..apps.source import CatalogSource
from ..sitedata import SiteDataError
from .jsonapi import JsonApiHandler

AUTH_RESOURCE = "visa"
SYNC_SECONDS = 3.0


class AppsState:
    """What the handlers and the background loop share: settings and the live catalog."""

    def __init__(self, settings: AppSettings, root_dir: Path, log: Any):
        self.settings, self.root_dir, self.log = settings, root_dir, log
        self.source = CatalogSource(settings)
        self.entries_dir = settings.data_dir / "applications"
        self._synced_record: tuple | None = None

    def catalog(self) -> AppCatalog:
        try:
            return self.source.load()
        except SiteDataError as exc:
            raise web.HTTPError(503, f"The app catalog cannot be read: {exc}") from None

    def listing(self) -> dict[str, Any]:
        catalog = self.catalog()
        cycle = self.source.cycle(catalog)
        apps = []
        for app in catalog.apps:
            if not app.serves(self.settings.instrument):
                continue
            default = catalog.default_version(app, cycle)
            for version in app.versions:
                command_line = " ".join(shlex.quote(a) for a in [*self_command(), "run", version.ref])
                apps.append({**version.to_dict(), "default": version is default, "command_line": command_line,
                             "kernel_name": kernel_name(version) if version.kernel else None,
                             "desktop_entry": f"visa-app-{version.app}-{version.version}"
                                              f"{'-user' if version.user_provided else ''}"})
        body = {"cycle": cycle.name if cycle else None, "cycles": [c.name for c in catalog.cycles],
                "experiment": self.settings.experiment_code, "apps": apps, "problems": list(catalog.problems)}
        body["revision"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
        return body

    # -- background ---------------------------------------------------------------------------------------------
    def sync_desktop_entries(self) -> None:
        try:
            catalog = self.source.load()
        except SiteDataError:
            return
        if sync_desktop_entries(self.entries_dir, desktop_entries(catalog, self.settings.instrument, self_command())):
            self.log.info("visa-hub apps: desktop entries updated in %s", self.entries_dir)

    async def sync_provenance(self) -> None:
        """Copy this session's record to the hub when it changed since the last copy."""
        url, token = os.environ.get("JUPYTERHUB_API_URL"), os.environ.get("JUPYTERHUB_API_TOKEN")
        path = record_path(self.settings)
        if not url or not token or not path.exists():
            return
        stat = path.stat()
        mark = (stat.st_mtime_ns, stat.st_size)
        if mark == self._synced_record:
            return
        body = path.read_bytes()
        record = json.loads(body)
        target = url_path_join(url, "visa/provenance", self.settings.user, record["id"])
        request = HTTPRequest(target, method="POST", body=body, request_timeout=20,
                              headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
        try:
            await AsyncHTTPClient().fetch(request)
        except (HTTPClientError, OSError) as exc:
            self.log.warning("visa-hub apps: provenance record not copied to the hub yet: %s", exc)
            return
        self._synced_record = mark
        self.log.info("visa-hub apps: provenance record %s copied to the hub", record["id"])

    async def tick(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.sync_desktop_entries)
            await self.sync_provenance()
        except Exception:  # the loop must survive anything
            self.log.exception("visa-hub apps: background sync failed")


class AppsHandler(JsonApiHandler):
    auth_resource = AUTH_RESOURCE

    def initialize(self, state: AppsState) -> None:
        self.state = state

    def spawn(self, argv: list[str], name: str) -> int:
        """Start ``visa-app`` detached; its output goes to a log file in her data directory."""
        logs = self.state.settings.private_data_dir() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        log = logs / f"{name.replace('@', '-')}-{stamp}.log"
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, cwd=str(self.state.settings.home))
        asyncio.get_running_loop().run_in_executor(None, process.wait)  # reap it
        return process.pid


class ListHandler(AppsHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.answer(self.state.listing())


class LaunchHandler(AppsHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        data = self.body()
        ref, args = data.get("ref"), data.get("args", [])
        if not isinstance(ref, str) or not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise web.HTTPError(400, 'Send {"ref": "NAME@VERSION", "args": [strings]}.')
        catalog = self.state.catalog()
        try:
            version = catalog.resolve(ref, self.state.source.cycle(catalog))
            await asyncio.get_running_loop().run_in_executor(None, check_version, version, self.state.settings)
        except (AppError, ImageError) as exc:
            raise web.HTTPError(400, str(exc)) from None
        pid = self.spawn([*self_command(), "run", version.ref, *args], version.ref)
        self.answer({"ref": version.ref, "label": version.label, "pid": pid}, 201)


class BundleHandler(AppsHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        data = self.body()
        catalog = self.state.catalog()
        cycle = catalog.cycle(data["cycle"]) if data.get("cycle") else self.state.source.cycle(catalog)
        if cycle is None:
            known = ", ".join(c.name for c in catalog.cycles) or "none"
            raise web.HTTPError(404, f"No proposal cycle {data.get('cycle') or 'for this session'} (cycles: {known}).")
        folder = self.state.root_dir / "visa-bundles"
        output = folder / f"visa-apps-{cycle.name}.tar"
        try:
            manifest = await asyncio.get_running_loop().run_in_executor(
                None, lambda: write_bundle(output, catalog, cycle, self.state.settings,
                                           include_images=not data.get("references_only")))
        except (BundleError, ImageError) as exc:
            raise web.HTTPError(409, str(exc)) from None
        self.answer({"path": output.relative_to(self.state.root_dir).as_posix(), "manifest": manifest}, 201)


class RecordsHandler(AppsHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.answer({"current": record_path(self.state.settings).stem, "records": list_records(self.state.settings)})


class ReproduceHandler(AppsHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Kernels are started here (Lab opens them); other apps by ``visa-app reproduce`` in the background."""
        name = self.body().get("record")
        if not isinstance(name, str) or not name:
            raise web.HTTPError(400, 'Send {"record": ID}.')
        settings = self.state.settings
        loop = asyncio.get_running_loop()
        try:
            record = read_record(find_record(settings, name))
            try:
                plan = reproduction_plan(record, self.state.catalog())
            except CliError as exc:
                raise web.HTTPError(409, str(exc)) from None
            for version, entry in plan:
                await loop.run_in_executor(None, lambda v=version, e=entry: check_version(v, settings, e["digest"]))
        except (ProvenanceError, ImageError) as exc:
            raise web.HTTPError(409, str(exc)) from None
        kernels, started = [], []
        manager = self.settings["kernel_manager"]
        for version, entry in plan:
            hows = {launch.get("how") for launch in entry.get("launches", [])}
            if "kernel" in hows and version.kernel:
                kernel_id = await manager.start_kernel(kernel_name=kernel_name(version),
                                                       env={**os.environ, "VISA_APP_EXPECT_DIGEST": entry["digest"]})
                kernels.append({"id": kernel_id, "name": kernel_name(version), "ref": version.ref})
            if hows - {"kernel"}:
                started.append(version.ref)
        if started:
            self.spawn([*self_command(), "reproduce", str(find_record(settings, name))], f"reproduce-{record['id']}")
        self.answer({"record": record.get("id"), "kernels": kernels, "started": started}, 201)


def put_visa_app_on_path(environ: dict[str, str] | Any = os.environ) -> None:
    """Terminals, the desktop's menus and kernels started by this server find ``visa-app`` (after her own PATH)."""
    bin_dir = str(Path(sys.executable).parent)
    parts = [p for p in environ.get("PATH", os.defpath).split(os.pathsep) if p]
    if bin_dir not in parts and (Path(bin_dir) / "visa-app").exists():
        environ["PATH"] = os.pathsep.join([*parts, bin_dir])


def setup_apps(serverapp: Any, environ: dict[str, str] | None = None) -> AppsState:
    """Register the app API, create this session's provenance record, start the background sync."""
    put_visa_app_on_path()
    settings = AppSettings.from_environ(environ)
    state = AppsState(settings, Path(serverapp.root_dir).expanduser().resolve(), serverapp.log)
    if settings.session is not None:
        try:
            ensure_record(settings)
        except OSError as exc:
            serverapp.log.error("visa-hub apps: cannot write the provenance record: %s", exc)
    web_app = serverapp.web_app
    base = url_path_join(web_app.settings["base_url"], "visa/api/apps")
    kwargs = {"state": state}
    web_app.add_handlers(".*$", [
        (base, ListHandler, kwargs),
        (url_path_join(base, "launch"), LaunchHandler, kwargs),
        (url_path_join(base, "bundle"), BundleHandler, kwargs),
        (url_path_join(base, "records"), RecordsHandler, kwargs),
        (url_path_join(base, "reproduce"), ReproduceHandler, kwargs),
    ])
    PeriodicCallback(state.tick, SYNC_SECONDS * 1000).start()
    serverapp.log.info("visa-hub apps: catalog %s, runtime %s, API at %s",
                       ":".join(settings.catalog_locations) or "(none: VISA_APPS_CATALOG is not set)",
                       settings.runtime, base)
    return state

