"""``{base_url}visa-dask/<port>/``: the owner's Dask dashboards, proxied from their private Unix sockets.

Every scheduler its owner starts serves its dashboard on ``~/.visa/dask/run/<port>.sock`` (see
:mod:`visa_hub.dask.dashboard`), which nobody else on the machine can open; dask's ``dashboard_link`` points here.
Only dashboards started from this instance are served (her other instances share the socket directory, and may be
shared with other people).
The handler is jupyter-server-proxy's (HTTP and websockets, authentication on every request: under JupyterHub
only people the hub grants access to this server get past it, everyone else gets 403), pointed at that socket.
On top, it asks the server's authorizer for ``read`` on :data:`DASK_RESOURCE`, so a sharing policy can keep
guests away from the dashboards.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from jupyter_server.utils import ensure_async, url_path_join
from jupyter_server_proxy.handlers import LocalProxyHandler
from tornado import web

from ..dask.dashboard import served_by, socket_path
from ..dask.per_instance import instance_key

#: The resource the dashboards authorize against.
DASK_RESOURCE = "visa-dask"
PATH = "visa-dask"


class DaskDashboardHandler(LocalProxyHandler):
    """jupyter-server-proxy's local proxy, to the dashboard socket named by the port in the URL."""

    async def prepare(self, *args: Any, **kwargs: Any) -> None:
        await super().prepare(*args, **kwargs)  # 403 / login redirect for anyone not allowed on this server
        user = self.current_user
        if user is not None and not await ensure_async(
                self.authorizer.is_authorized(self, user, "read", DASK_RESOURCE)):
            raise web.HTTPError(403, "read access to the Dask dashboards is not granted")

    def _use_socket(self, port: str) -> None:
        path = socket_path(int(port), Path.home())
        if not path.is_socket() or served_by(path) != instance_key(os.environ):
            raise web.HTTPError(404, f"No Dask dashboard {port} is running in this instance.")
        self.unix_socket = str(path)
        self.proxy_base = f"{PATH}/{port}"  # redirects are rewritten under our path, not /proxy/<port>

    def proxy(self, port: str, proxied_path: str) -> Any:
        self._use_socket(port)
        return super().proxy(port, proxied_path)

    async def open(self, port: str, proxied_path: str) -> None:
        self._use_socket(port)
        return await super().open(port, proxied_path)


def setup_dask_dashboards(web_app: Any) -> None:
    """Add the dashboards' route under the server's base URL."""
    base_url = web_app.settings["base_url"]
    web_app.add_handlers(".*$", [(url_path_join(base_url, PATH, r"(\d+)(.*)"), DaskDashboardHandler)])
