"""The hub's copy of every session's provenance record (FAIR: kept when an instance and its disk are gone).

``POST /hub/api/visa/provenance/{user}/{record}``  an instance copies its record (JSON); the server's own token
    (JUPYTERHUB_API_TOKEN) authorises it through its ``users:activity!user`` scope, so an instance can only
    write its owner's records
``GET  /hub/api/visa/provenance/{user}``           her records (ids, experiment, app versions)
``GET  /hub/api/visa/provenance/{user}/{record}``  one record (needs ``read:users`` on her: herself, admins)

Registered with ``JupyterHub.extra_handlers`` (:func:`provenance_handlers`, see :mod:`visa_hub.hubconfig`);
records are files ``<directory>/<user>/<record>.json``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

from .provenance import SCHEMA

MAX_BYTES = 1 << 20
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}$")


def check_record(data: Any, user: str, record: str) -> str | None:
    """Why ``data`` is not an acceptable record for ``user``/``record`` (pure), or ``None``."""
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return f"not a visa-hub provenance record (schema {SCHEMA} expected)"
    if data.get("id") != record:
        return f"the record's id {data.get('id')!r} is not {record!r}"
    if data.get("user") != user:
        return f"the record belongs to {data.get('user')!r}, not {user!r}"
    apps = data.get("apps")
    if not isinstance(apps, list):
        return "apps must be a list"
    for index, entry in enumerate(apps):
        if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("app", "version", "digest")):
            return f"apps[{index}] must have app, version and digest"
    return None


class ProvenanceHandler(APIHandler):
    def initialize(self, directory: str) -> None:
        self.directory = Path(directory)

    def _path(self, user: str, record: str | None = None) -> Path:
        if not _ID.match(user) or (record is not None and not _ID.match(record)):
            raise web.HTTPError(400, "Invalid user or record name.")
        folder = self.directory / user
        return folder if record is None else folder / f"{record}.json"

    @needs_scope("users:activity")
    def post(self, user_name: str, record: str) -> None:  # user_name: needs_scope filters on it
        if len(self.request.body) > MAX_BYTES:
            raise web.HTTPError(413, "Provenance record too large.")
        try:
            data = json.loads(self.request.body)
        except ValueError:
            raise web.HTTPError(400, "The body must be a JSON provenance record.") from None
        problem = check_record(data, user_name, record)
        if problem:
            raise web.HTTPError(400, f"Provenance record refused: {problem}.")
        path = self._path(user_name, record)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = path.with_name(f".{path.name}.{os.getpid()}")
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        temporary.replace(path)
        self.set_status(201)
        self.finish(json.dumps({"stored": record}))

    @needs_scope("read:users")
    def get(self, user_name: str, record: str | None = None) -> None:
        if record:
            path = self._path(user_name, record)
            if not path.exists():
                raise web.HTTPError(404, f"No provenance record {record} for {user_name}.")
            self.finish(path.read_text())
            return
        records = []
        folder = self._path(user_name)
        for path in sorted(folder.glob("*.json")) if folder.exists() else []:
            try:
                data = json.loads(path.read_text())
            except ValueError:
                continue
            records.append({"id": data.get("id"), "experiment": data.get("session", {}).get("experiment", {}).get(
                "code"), "updated_at": data.get("updated_at"),
                "apps": [f"{e['app']}@{e['version']}" for e in data.get("apps", [])]})
        self.finish(json.dumps({"records": records}))


def provenance_handlers(directory: str | Path) -> list[tuple[str, type, dict[str, str]]]:
    """The ``JupyterHub.extra_handlers`` entries (the hub puts them under ``/hub/``)."""
    kwargs = {"directory": str(directory)}
    return [
        (r"/api/visa/provenance/(?P<user_name>[^/]+)/?", ProvenanceHandler, kwargs),
        (r"/api/visa/provenance/(?P<user_name>[^/]+)/(?P<record>[^/]+)", ProvenanceHandler, kwargs),
    ]
