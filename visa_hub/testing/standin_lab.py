"""A minimal stand-in for ``jupyterhub-singleuser``, for load tests and benchmarks with hundreds of instances.

Answers every GET with 200 and a small JSON body naming the user it runs for (``JUPYTERHUB_USER``) and the
path asked, with the ``X-JupyterHub-Version`` header the hub looks for. It listens where JupyterHub tells a
real server to: ``JUPYTERHUB_SERVICE_URL`` (local processes), or ``--ip=`` / ``--port=`` arguments (simulated
VMs, whose user_data passes them). About 10 MB and 50 ms of CPU per start: 500 of them fit on 2 cores, where
500 JupyterLabs (≈100 MB and 1-2 s of CPU each) would not.

It proves that the hub started a process for her and that the proxy routes her requests to it; what JupyterLab
itself does is tested with the real ``jupyterhub-singleuser`` elsewhere. Run: ``python -m
visa_hub.testing.standin_lab``.
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from urllib.parse import urlsplit

HUB_VERSION = version("jupyterhub")


class StandInHandler(BaseHTTPRequestHandler):
    """GET anything: 200 with ``{"version": "stand-in", "user": ..., "path": ...}``."""

    def do_GET(self) -> None:  # noqa: N802  (http.server's naming)
        body = json.dumps({"version": "stand-in", "user": os.environ.get("JUPYTERHUB_USER"),
                           "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", HUB_VERSION)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def listen_address(argv: list[str], env: dict[str, str]) -> tuple[str, int]:
    """``--ip=``/``--port=`` if given, else the host and port of ``JUPYTERHUB_SERVICE_URL``."""
    options = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    if "port" in options:
        return options.get("ip", "127.0.0.1"), int(options["port"])
    url = urlsplit(env["JUPYTERHUB_SERVICE_URL"])
    return url.hostname or "127.0.0.1", int(url.port or 80)


def main() -> None:
    ThreadingHTTPServer(listen_address(sys.argv[1:], dict(os.environ)), StandInHandler).serve_forever()


if __name__ == "__main__":
    main()
