"""The status of what the hub depends on, for the operator console: the User Office, the cloud, the cluster.

Backends register a *status source* (``register(name, source)``): an async function returning a
:class:`Status` dict — ``{"name", "kind", "reachable" (True/False/None: not known yet), "detail",
"quota": [{"resource", "used", "limit"}]}``. ``visa_hub`` imports no backend: the OpenStack fleet registers
itself when it is created. The User Office's status is built in (:func:`user_office_status`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypedDict

from .. import metrics


class QuotaUse(TypedDict):
    resource: str
    used: float
    limit: float | None  # None: unlimited


class Status(TypedDict, total=False):
    name: str
    kind: str
    reachable: bool | None
    detail: str
    quota: list[QuotaUse]


StatusSource = Callable[[], Awaitable[Status]]

_sources: dict[str, StatusSource] = {}


def register(name: str, source: StatusSource) -> None:
    """Add (or replace) the status source called ``name``."""
    _sources[name] = source


def unregister(name: str) -> None:
    _sources.pop(name, None)


async def user_office_status(user_office: Any, timeout: float = 5.0) -> Status:
    """Ask the User Office something trivial (GraphQL: ``__typename``; the file backend: read its file)."""
    kind = "graphql" if hasattr(user_office, "query") else "file"
    began = time.monotonic()
    try:
        if kind == "graphql":
            await asyncio.wait_for(user_office.query("query VisaPing { __typename }", {}), timeout)
        else:
            await asyncio.wait_for(asyncio.to_thread(user_office._load), timeout)  # noqa: SLF001
    except Exception as exc:  # noqa: BLE001  (whatever it is, the operator reads it)
        return {"name": "User Office", "kind": kind, "reachable": False, "quota": [],
                "detail": f"not answering: {exc or type(exc).__name__}"}
    detail = f"answered in {1000 * (time.monotonic() - began):.0f} ms"
    if kind == "file":
        detail += f" (demo file {getattr(user_office, 'path', '') or 'built in'})"
        metrics.useroffice_reachable("file", True)
    return {"name": "User Office", "kind": kind, "reachable": True, "detail": detail, "quota": []}


async def collect(first: list[Awaitable[Status]] = (), timeout: float = 8.0) -> list[Status]:
    """``first`` (e.g. the User Office's check), then every registered source's status; a source that fails or
    takes longer than ``timeout`` seconds is reported as not reachable, with the reason."""
    names = ["status"] * len(first) + list(_sources)
    calls = [*first, *(source() for source in _sources.values())]
    answers = await asyncio.gather(*(asyncio.wait_for(call, timeout) for call in calls), return_exceptions=True)
    statuses: list[Status] = []
    for name, answer in zip(names, answers, strict=True):
        if isinstance(answer, BaseException):
            statuses.append({"name": name, "kind": "", "reachable": False, "quota": [],
                             "detail": f"status unknown: {type(answer).__name__} {answer}"})
        else:
            statuses.append(answer)
    return statuses
