"""A minimal stand-in for jupyterhub-singleuser: answers every GET with 200, on --ip/--port.

Used only by tests about cloud bookkeeping (25 instances across a hub restart, the fault matrix), where
25 real JupyterLab servers would not fit on a 2-core CI machine. It proves the hub reaches the instance
through the address the cloud gave it; the Lab-through-proxy test uses the real jupyterhub-singleuser.
"""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version

HUB_VERSION = version("jupyterhub")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = json.dumps({"version": "stand-in", "user": os.environ.get("JUPYTERHUB_USER"),
                           "home": os.environ.get("HOME")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", HUB_VERSION)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    options = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--") and "=" in arg)
    ThreadingHTTPServer((options["ip"], int(options["port"])), Handler).serve_forever()


if __name__ == "__main__":
    main()
