"""A minimal stand-in for ``jupyterhub-singleuser``, for load tests and benchmarks with hundreds of instances.

Answers every GET with 200 and a small JSON body naming the user it runs for (``JUPYTERHUB_USER``) and the
path asked, with the ``X-JupyterHub-Version`` header the hub looks for; other methods get 405. It listens
where JupyterHub tells a real server to: ``JUPYTERHUB_SERVICE_URL`` (local processes), or ``--ip=`` /
``--port=`` arguments (simulated VMs, whose user_data passes them).

A start costs about 20 ms of CPU and 10 MB: it imports only ``socket`` and ``threading`` (not ``http.server``,
``json`` or ``importlib.metadata``, which took three times that), because 500 of them start during a load run
on the same 2 cores as the hub under test. 500 JupyterLabs (≈100 MB and 1-2 s of CPU each) would not fit.

It proves that the hub started a process for her and that the proxy routes her requests to it; what JupyterLab
itself does is tested with the real ``jupyterhub-singleuser`` elsewhere. Run: ``python -m
visa_hub.testing.standin_lab``.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from jupyterhub._version import __version__ as HUB_VERSION  # noqa: N812  (jupyterhub's package is not imported)

#: Longest request head read; more is refused (the hub and the proxy send a few hundred bytes).
MAX_HEAD = 64 * 1024


def json_string(text: str) -> str:
    """``text`` as a JSON string literal (what :func:`json.dumps` gives for a str)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'


def response(method: str, path: str, user: str | None) -> bytes:
    """The whole HTTP response to one request."""
    if method != "GET":
        status, body = "405 Method Not Allowed", b""
    else:
        status = "200 OK"
        body = ('{"version": "stand-in", "user": ' + (json_string(user) if user is not None else "null") +
                ', "path": ' + json_string(path) + "}").encode()
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-JupyterHub-Version: {HUB_VERSION}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode("latin-1") + body


def serve_one(connection: socket.socket, user: str | None) -> None:
    """Read one request head, answer it, close the connection."""
    with connection:
        connection.settimeout(30)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                head += chunk
            request_line = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            if len(request_line) != 3:
                return
            method, path, _ = request_line
            connection.sendall(response(method, path, user))
        except OSError:  # the client went away
            return


def listen_address(argv: list[str], env: dict[str, str]) -> tuple[str, int]:
    """``--ip=``/``--port=`` if given, else the host and port of ``JUPYTERHUB_SERVICE_URL``."""
    options = dict(arg[2:].split("=", 1) for arg in argv if arg.startswith("--") and "=" in arg)
    if "port" in options:
        return options.get("ip", "127.0.0.1"), int(options["port"])
    # JUPYTERHUB_SERVICE_URL is http://host:port/... (urllib.parse is avoided for the start-up cost)
    netloc = env["JUPYTERHUB_SERVICE_URL"].split("://", 1)[-1].split("/", 1)[0]
    if netloc.startswith("["):  # [::1]:8888
        host, _, port = netloc[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = netloc.partition(":")
    return host or "127.0.0.1", int(port or 80)


def main() -> None:
    user = os.environ.get("JUPYTERHUB_USER")
    with socket.create_server(listen_address(sys.argv[1:], dict(os.environ)), backlog=128) as server:
        try:
            while True:
                connection, _ = server.accept()
                threading.Thread(target=serve_one, args=(connection, user), daemon=True).start()
        except KeyboardInterrupt:  # JupyterHub stops a local server with SIGINT first: a clean stop
            return


if __name__ == "__main__":
    main()
