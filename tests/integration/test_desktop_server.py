"""The desktop in a real Jupyter Server: real Xvnc, real session, websockets through jupyter-server-proxy.

Checks what the browser cannot show: who may open the websockets, that the view-only path really drops input
(a keystroke sent through it never reaches the terminal), that nothing listens on TCP, and that a missing Xvnc
gives a message instead of a blank screen.
"""

from __future__ import annotations

import os
import shutil
import stat
import struct
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import missing_peer

from jupyter_server_process import JupyterServer, launch_jupyter_server

pytestmark = pytest.mark.integration

XK_RETURN = 0xFF0D


@dataclass
class Server(JupyterServer):
    """A Jupyter server whose desktop keeps its private directory under ``runtime``."""

    runtime: Path


def _start(tmp: Path, *args: str) -> Server:
    root, runtime = tmp / "home", tmp / "rt"
    root.mkdir()
    runtime.mkdir()
    started = launch_jupyter_server(tmp, root=root, args=[f"--VisaDesktop.runtime_dir={runtime}", *args])
    server = Server(**vars(started), runtime=runtime)
    server.wait_until_up(30)
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if shutil.which("Xvnc") is None:
        missing_peer("Xvnc not installed (scripts/install-desktop.sh)")
    started = _start(tmp_path_factory.mktemp("desktop"))
    yield started
    started.stop()


class Rfb:
    """A minimal RFB client over the desktop websocket (handshake, key events, raw messages)."""

    def __init__(self, url: str, token: str | None):
        import websocket

        headers = [f"Authorization: token {token}"] if token else []
        self.ws = websocket.create_connection(url, header=headers, subprotocols=["binary"], timeout=20)
        self.buffer = b""

    def recv(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self.ws.recv()
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def handshake(self) -> tuple[int, int, str]:
        assert self.recv(12).startswith(b"RFB 003.")
        self.send(b"RFB 003.008\n")
        count = self.recv(1)[0]
        assert 1 in self.recv(count), "the desktop must offer security type None on its private socket"
        self.send(b"\x01")
        assert self.recv(4) == b"\x00\x00\x00\x00"
        self.send(b"\x01")
        width, height = struct.unpack(">HH", self.recv(4))
        self.recv(16)
        (length,) = struct.unpack(">I", self.recv(4))
        return width, height, self.recv(length).decode()

    def send(self, data: bytes) -> None:
        self.ws.send_binary(data)

    def type(self, text: str) -> None:
        for char in text:
            keysym = XK_RETURN if char == "\n" else ord(char)
            self.send(struct.pack(">BBxxI", 4, 1, keysym) + struct.pack(">BBxxI", 4, 0, keysym))
            time.sleep(0.01)

    def request_update(self) -> int:
        """Ask for a full frame; the first server message's type (0 = FramebufferUpdate) proves the link lives."""
        self.send(struct.pack(">BBHHHH", 3, 0, 0, 0, 64, 64))
        self.ws.settimeout(10)
        return self.recv(1)[0]

    def close(self) -> None:
        self.ws.close()


def wait_for_terminal(runtime: Path, timeout: float = 20) -> None:
    """Wait until the desktop's terminal window is mapped (xdotool on the desktop's own display and cookie)."""
    if shutil.which("xdotool") is None:
        missing_peer("xdotool not installed (scripts/install-desktop.sh)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for log in runtime.glob("visa-desktop-*/desktop.log"):
            display = next((line.split("display :")[1].split(",")[0] for line in log.read_text().splitlines()
                            if "Xvnc on display :" in line), None)
            if display is None:
                continue
            env = {**os.environ, "DISPLAY": f":{display}", "XAUTHORITY": str(log.parent / "Xauthority")}
            found = subprocess.run(["xdotool", "search", "--onlyvisible", "--class", "xterm"], env=env,
                                   capture_output=True, text=True)
            if found.stdout.strip():
                time.sleep(0.5)  # the window manager gives it the focus
                return
        time.sleep(0.2)
    pytest.fail("the desktop's terminal did not appear")


def _wait_for(path: Path, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.2)
    return False


def test_status_api_says_the_desktop_can_start(server: Server) -> None:
    body = server.get("visa/api/desktop").json()
    assert body["available"] is True, body
    assert body["view_only"] is False
    assert body["websocket_path"] == "visa-desktop/"
    assert server.get("visa/api/desktop", token=False).status_code in (401, 403)


def test_websockets_without_credentials_are_refused(server: Server) -> None:
    import websocket

    for path in ("visa-desktop/", "visa-desktop-view/"):
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(server.ws_url(path), timeout=10)
        assert refused.value.status_code == 403


def test_owner_gets_the_desktop_on_a_private_unix_socket_only(server: Server) -> None:
    rfb = Rfb(server.ws_url("visa-desktop/"), server.token)
    width, height, name = rfb.handshake()
    rfb.close()
    assert (width, height, name) == (1280, 800, "VISA desktop")

    (private,) = server.runtime.glob("visa-desktop-*")
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    sock = private / "vnc.sock"
    assert stat.S_ISSOCK(sock.stat().st_mode) and stat.S_IMODE(sock.stat().st_mode) == 0o600
    xvnc = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).count(str(sock))]
    assert xvnc, "no Xvnc process serves the socket"
    for proc in xvnc:
        assert not _tcp_listeners(proc), f"Xvnc listens on TCP: {_cmdline(proc)}"


def test_view_only_path_drops_keys_pointer_clipboard_and_resizing(server: Server) -> None:
    full = Rfb(server.ws_url("visa-desktop/"), server.token)
    full.handshake()
    wait_for_terminal(server.runtime)
    guest = Rfb(server.ws_url("visa-desktop-view/"), server.token)
    assert guest.handshake()[:2] == (1280, 800)
    # everything a guest might try: typing a command, clicking, pasting, resizing the screen
    guest.type("touch viewonly-was-here\n")
    guest.send(struct.pack(">BBHH", 5, 1, 600, 300) + struct.pack(">BBHH", 5, 0, 600, 300))
    guest.send(struct.pack(">BxxxI", 6, 14) + b"touch pasted\n\n")
    guest.send(struct.pack(">BxHHBx", 251, 640, 480, 1) + struct.pack(">IHHHHI", 0, 0, 0, 640, 480, 0))
    assert guest.request_update() == 0, "the view-only connection still receives frames"
    # the owner's keystrokes do reach the terminal
    full.type("touch owner-was-here\n")
    assert _wait_for(server.root / "owner-was-here"), "the owner's command did not run in the desktop terminal"
    time.sleep(1)
    assert not (server.root / "viewonly-was-here").exists(), "a keystroke sent through the view-only path ran"
    assert not (server.root / "pasted").exists()
    again = Rfb(server.ws_url("visa-desktop-view/"), server.token)
    assert again.handshake()[:2] == (1280, 800), "a guest resized the desktop"
    for rfb in (full, guest, again):
        rfb.close()


def test_view_only_path_closes_on_bytes_it_does_not_understand(server: Server) -> None:
    import websocket

    guest = Rfb(server.ws_url("visa-desktop-view/"), server.token)
    guest.handshake()
    guest.send(bytes([7, 0, 0, 0, 0, 0, 0, 0]))
    guest.ws.settimeout(5)
    closed = False
    for _ in range(200):  # frames may still be in flight before the close
        try:
            if not guest.ws.recv():
                closed = True
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            closed = True
        if closed:
            break
    assert closed, "the view-only connection stayed open after an unknown message"


def test_missing_xvnc_is_explained_not_a_blank_screen(tmp_path: Path) -> None:
    import websocket

    server = _start(tmp_path, "--VisaDesktop.xvnc=/nonexistent/Xvnc")
    try:
        body = server.get("visa/api/desktop").json()
        assert body["available"] is False
        assert "not installed" in body["message"] and "install-desktop.sh" in body["message"]
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(server.ws_url("visa-desktop/"),
                                        header=[f"Authorization: token {server.token}"], timeout=10)
        assert refused.value.status_code == 503
    finally:
        server.stop()


def test_the_desktop_stops_with_the_server(tmp_path: Path) -> None:
    if shutil.which("Xvnc") is None:
        missing_peer("Xvnc not installed (scripts/install-desktop.sh)")
    server = _start(tmp_path)
    Rfb(server.ws_url("visa-desktop/"), server.token).handshake()
    (private,) = server.runtime.glob("visa-desktop-*")
    sock = str(private / "vnc.sock")
    server.stop()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _processes_with(sock):
        time.sleep(0.2)
    assert not _processes_with(sock), "Xvnc outlived the Jupyter server"
    assert not private.exists(), "the private directory was left behind"


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _processes_with(text: str) -> list[Path]:
    return [p for p in Path("/proc").iterdir() if p.name.isdigit() and text in _cmdline(p)]


def _tcp_listeners(proc: Path) -> list[str]:
    """Listening TCP sockets (IPv4 and IPv6) among the open files of ``proc``."""
    inodes = set()
    for fd in (proc / "fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A = LISTEN
                listening.append(fields[1])
    return listening

