"""A minimal stand-in for jupyterhub-singleuser: answers every GET with 200, on --ip/--port.

Used only by tests about cloud bookkeeping (25 instances across a hub restart, the fault matrix), where
25 real JupyterLab servers would not fit on a 2-core CI machine. It runs where Lab would (in the simulated
VM, as the person, from the instance environment: the tests put this file into the VM image) and proves the
hub reaches the instance through the address the cloud gave it; at start it asks the hub who its API token
belongs to, so a test sees that the token reached the instance. The Lab-through-proxy test uses the real
jupyterhub-singleuser.
"""

import json
import os
import sys
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version

HUB_VERSION = version("jupyterhub")


def token_owner() -> str | None:
    """Whose token this server has, as the hub says (its API at JUPYTERHUB_API_URL, the connect URL)."""
    request = urllib.request.Request(f"{os.environ['JUPYTERHUB_API_URL']}/user",
                                     headers={"Authorization": f"token {os.environ['JUPYTERHUB_API_TOKEN']}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response).get("name")
    except OSError:
        return None


class Handler(BaseHTTPRequestHandler):
    status: bytes = b"{}"

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-JupyterHub-Version", HUB_VERSION)
        self.send_header("Content-Length", str(len(self.status)))
        self.end_headers()
        self.wfile.write(self.status)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    options = dict(arg[2:].split("=", 1) for arg in sys.argv[1:] if arg.startswith("--") and "=" in arg)
    Handler.status = json.dumps({"version": "stand-in", "user": os.environ.get("JUPYTERHUB_USER"),
                                 "home": os.environ.get("HOME"), "uid": os.getuid(), "python": sys.prefix,
                                 "token_owner": token_owner()}).encode()
    ThreadingHTTPServer((options["ip"], int(options["port"])), Handler).serve_forever()


if __name__ == "__main__":
    main()
