"""Dask dashboards only their owner can open: a distributed preload (``distributed.scheduler.preload``).

A scheduler's dashboard is a plain HTTP server with no authentication, and a port on the loopback interface is
open to every person logged in to the same machine (a shared Slurm node, the local backend). So the instance's
dask configuration names this module as a preload of every scheduler and worker its owner starts (plain
``SLURMCluster()``, :class:`~visa_hub.dask.clusters.SessionCluster`, ``LocalCluster``, dask-labextension's
clusters), and when one starts:

- a **scheduler** stops listening on TCP (the configuration binds it to ``127.0.0.1`` for the moment before) and
  serves the same dashboard on a Unix socket, ``~/.visa/dask/run/<port>.sock`` in a directory only its owner may
  enter (0700). Her Jupyter server proxies it at ``<server>/visa-dask/<port>/`` (see
  :mod:`visa_hub.singleuser.dask_dashboard`), which the hub lets only her and whom she shares with reach;
  ``<port>`` is the port the dashboard had (another number if a live dashboard already has that name: the
  port is free again once closed), and dask's ``dashboard_link`` shows it. Her instances share her home, so
  ``<port>.instance`` next to the socket names the instance whose kernel or terminal started the scheduler
  (:func:`~visa_hub.dask.per_instance.instance_key`), and only that instance's server proxies it: whom she shares
  one instance with never sees the dashboards of another;
- a **worker** (a Slurm job on a compute node) stops its HTTP endpoint (metrics, health): nothing needs it, and
  every user of that node could read it.

Everything is stopped first and then moved: if the socket cannot be made, the dashboard is gone (and the log says
why), never left open.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import stat
from pathlib import Path
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_unix_socket

from .per_instance import instance_key

log = logging.getLogger("visa_hub.dask")

MODULE = __name__  # what the configuration lists under distributed.{scheduler,worker}.preload
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux
_served: dict[int, tuple[HTTPServer, Path]] = {}  # id(scheduler) → the Unix socket server


class DashboardSocketError(OSError):
    """The dashboard's socket directory is unsafe or its path too long."""


def socket_dir(home: Path | None = None) -> Path:
    """Where the owner's dashboards listen: ``~/.visa/dask/run``."""
    return (home or Path.home()) / ".visa" / "dask" / "run"


def socket_path(port: int, home: Path | None = None) -> Path:
    """The Unix socket of the dashboard that had TCP port ``port``."""
    return socket_dir(home) / f"{int(port)}.sock"


def private_socket_dir(home: Path | None = None) -> Path:
    """The socket directory, made 0700 and checked to belong to this process's user."""
    directory = socket_dir(home)
    for parent in (directory.parent.parent, directory.parent, directory):
        parent.mkdir(mode=0o700, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise DashboardSocketError(f"{directory} is not a directory of this user: not serving a dashboard there")
    directory.chmod(0o700)
    return directory


def owner_file(path: Path) -> Path:
    """The file next to a dashboard socket that names the instance it belongs to."""
    return path.with_suffix(".instance")


def served_by(path: Path) -> str | None:
    """The instance (its :func:`~visa_hub.dask.per_instance.instance_key`) whose dashboard ``path`` is, if known."""
    try:
        return owner_file(path).read_text().strip() or None
    except OSError:
        return None


def _claim_for_instance(directory: Path, port: int) -> tuple[int, Path]:
    """A socket name for this dashboard, marked as this instance's before the socket exists."""
    number, path = _claim(directory, port)
    marker = owner_file(path)
    partial = marker.with_suffix(".instance.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(instance_key(os.environ))
    partial.replace(marker)
    return number, path


def _in_use(path: Path) -> bool:
    """Whether a live server answers on the Unix socket ``path``."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _claim(directory: Path, port: int) -> tuple[int, Path]:
    """A socket name for this dashboard: its port, or a number no live dashboard of hers uses."""
    for number in (port, *(100_000 + secrets.randbelow(900_000) for _ in range(20))):
        path = directory / socket_path(number).name
        if not _in_use(path):
            return number, path
    raise DashboardSocketError(f"no free name for a dashboard socket in {directory}")


async def _stop_tcp(server: HTTPServer) -> None:
    server.stop()  # no new connections
    await server.close_all_connections()  # nor the ones opened before this ran


async def dask_setup(dask_server: Any) -> None:
    """Called by distributed when a scheduler or worker of this session has started."""
    http_server = getattr(dask_server, "http_server", None)
    if http_server is None:
        return
    from distributed.scheduler import Scheduler

    await _stop_tcp(http_server)
    if not isinstance(dask_server, Scheduler):
        log.info("visa-hub: this worker's HTTP endpoint is closed (only its owner's dashboard is served)")
        return
    try:
        number, path = _claim_for_instance(private_socket_dir(), http_server.port)
        if len(os.fsencode(path)) > SOCKET_PATH_MAX:
            raise DashboardSocketError(f"the socket path {path} is too long for a Unix socket")
        unix_server = HTTPServer(dask_server.http_application)
        unix_server.add_socket(bind_unix_socket(str(path), mode=0o600))
    except OSError as exc:
        log.error("visa-hub: the Dask dashboard is not available (%s); the scheduler works without it", exc)
        return
    http_server.port = number  # what dask's dashboard_link shows: the name of the socket
    _served[id(dask_server)] = (unix_server, path)
    log.info("visa-hub: Dask dashboard on %s, only for its owner", path)


async def dask_teardown(dask_server: Any) -> None:
    """Called by distributed when the scheduler closes: stop serving and remove the socket."""
    served = _served.pop(id(dask_server), None)
    if served is None:
        return
    unix_server, path = served
    await _stop_tcp(unix_server)
    for used in (path, owner_file(path)):
        with contextlib.suppress(FileNotFoundError):
            used.unlink()
