"""The desktop in a real Jupyter Server: real Xvnc, real session, websockets through jupyter-server-proxy.

Checks what the browser cannot show: who may open the websockets, that the view-only path really drops input
(a keystroke sent through it never reaches the terminal, a paste never reaches the X clipboard, a pointer event
never moves the X pointer), that the owner's clipboard never reaches a guest, that a guest's huge clipboard
announcement neither grows the server's memory nor keeps the connection, that an asynchronous authorizer's "no"
is a no, that nothing listens on TCP, and that a missing Xvnc gives a message instead of a blank screen.
"""

from __future__ import annotations

import os
import secrets
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


TESTS = Path(__file__).resolve().parents[1]


def _start(tmp: Path, *args: str, env: dict[str, str] | None = None) -> Server:
    root, runtime = tmp / "home", tmp / "rt"
    root.mkdir()
    runtime.mkdir()
    started = launch_jupyter_server(tmp, root=root, env=env, args=[f"--VisaDesktop.runtime_dir={runtime}", *args])
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

    def drain(self, seconds: float) -> bytes:
        """Everything the server sends within ``seconds`` (frames, clipboard...), unparsed."""
        import websocket

        data, deadline = self.buffer, time.monotonic() + seconds
        self.buffer = b""
        while (left := deadline - time.monotonic()) > 0:
            self.ws.settimeout(left)
            try:
                data += self.ws.recv()
            except websocket.WebSocketTimeoutException:
                break
        return data

    def request_update(self) -> int:
        """Ask for a full frame; the first server message's type (0 = FramebufferUpdate) proves the link lives."""
        self.send(struct.pack(">BBHHHH", 3, 0, 0, 0, 64, 64))
        self.ws.settimeout(10)
        return self.recv(1)[0]

    def close(self) -> None:
        self.ws.close()


def desktop_env(runtime: Path) -> dict[str, str] | None:
    """The environment of an X client of the running desktop (its display and private cookie), if it runs."""
    for log in runtime.glob("visa-desktop-*/desktop.log"):
        display = next((line.split("display :")[1].split(",")[0] for line in log.read_text().splitlines()
                        if "Xvnc on display :" in line), None)
        if display is not None:
            return {**os.environ, "DISPLAY": f":{display}", "XAUTHORITY": str(log.parent / "Xauthority")}
    return None


def x_tool(runtime: Path, *argv: str) -> str:
    """Run an X client (xdotool, xclip) on the desktop; its output ('' when it fails, e.g. an empty clipboard)."""
    if shutil.which(argv[0]) is None:
        missing_peer(f"{argv[0]} not installed (scripts/install-desktop.sh)")
    env = desktop_env(runtime)
    assert env is not None, "the desktop does not run"
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=20)
    return done.stdout if done.returncode == 0 else ""


def wait_for_terminal(runtime: Path, timeout: float = 20) -> None:
    """Wait until the desktop's terminal window is mapped (xdotool on the desktop's own display and cookie)."""
    if shutil.which("xdotool") is None:
        missing_peer("xdotool not installed (scripts/install-desktop.sh)")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if desktop_env(runtime) and x_tool(runtime, "xdotool", "search", "--onlyvisible", "--class", "xterm").strip():
            time.sleep(0.5)  # the window manager gives it the focus
            return
        time.sleep(0.2)
    pytest.fail("the desktop's terminal did not appear")


def x_clipboard(runtime: Path) -> str:
    return x_tool(runtime, "xclip", "-o", "-selection", "clipboard")


def x_pointer(runtime: Path) -> tuple[int, int]:
    fields = dict(f.split(":") for f in x_tool(runtime, "xdotool", "getmouselocation").split())
    return int(fields["x"]), int(fields["y"])


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
    start = x_pointer(server.runtime)
    guest_text = f"guest-paste-{secrets.token_hex(4)}"
    # everything a guest might try: typing a command, moving and clicking, pasting, resizing the screen
    guest.type("touch viewonly-was-here\n")
    guest.send(struct.pack(">BBHH", 5, 0, 613, 307) + struct.pack(">BBHH", 5, 1, 613, 307)
               + struct.pack(">BBHH", 5, 0, 613, 307))
    guest.send(struct.pack(">BxxxI", 6, len(guest_text)) + guest_text.encode())
    guest.send(struct.pack(">BxHHBx", 251, 640, 480, 1) + struct.pack(">IHHHHI", 0, 0, 0, 640, 480, 0))
    assert guest.request_update() == 0, "the view-only connection still receives frames"
    # Xvnc handles a connection's messages in order: had they reached it, they would have taken effect by now
    assert x_pointer(server.runtime) == start != (613, 307), "a guest's pointer event moved the X pointer"
    assert guest_text not in x_clipboard(server.runtime), "a guest's paste reached the X clipboard"
    # the same messages from the owner do take effect, so the checks above can see them
    owner_text = f"owner-paste-{secrets.token_hex(4)}"
    full.send(struct.pack(">BBHH", 5, 0, 613, 307))
    full.send(struct.pack(">BxxxI", 6, len(owner_text)) + owner_text.encode())
    full.type("touch owner-was-here\n")
    assert _wait_for(server.root / "owner-was-here"), "the owner's command did not run in the desktop terminal"
    assert x_pointer(server.runtime) == (613, 307), "the owner's pointer event did not move the X pointer"
    assert x_clipboard(server.runtime) == owner_text, "the owner's paste did not reach the X clipboard"
    time.sleep(1)
    assert not (server.root / "viewonly-was-here").exists(), "a keystroke sent through the view-only path ran"
    again = Rfb(server.ws_url("visa-desktop-view/"), server.token)
    assert again.handshake()[:2] == (1280, 800), "a guest resized the desktop"
    for rfb in (full, guest, again):
        rfb.close()


def test_isolation_view_only_client_receives_no_clipboard_text_while_the_owners_does(server: Server) -> None:
    owner = Rfb(server.ws_url("visa-desktop/"), server.token)
    owner.handshake()
    guest = Rfb(server.ws_url("visa-desktop-view/"), server.token)
    guest.handshake()
    wait_for_terminal(server.runtime)
    marker = f"copied-on-the-desktop-{secrets.token_hex(6)}".encode()
    copier = subprocess.Popen(["xclip", "-selection", "clipboard"], stdin=subprocess.PIPE,
                              env=desktop_env(server.runtime), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        copier.stdin.write(marker)
        copier.stdin.close()  # xclip now owns the CLIPBOARD selection; Xvnc announces it to its clients
        deadline, seen = time.monotonic() + 20, {"owner": b"", "guest": b""}
        while marker not in seen["owner"] and time.monotonic() < deadline:
            seen["owner"] += owner.drain(0.5)
            seen["guest"] += guest.drain(0.1)
        assert marker in seen["owner"], "the owner did not receive the desktop's clipboard (check the test)"
        assert guest.request_update() == 0, "the guest's connection died"
        seen["guest"] += guest.drain(2)
        assert marker not in seen["guest"], "a view-only client received the owner's clipboard text"
    finally:
        copier.kill()
        copier.wait()
        owner.close()
        guest.close()


def test_isolation_two_gib_clipboard_announcement_keeps_memory_bounded_and_closes(server: Server) -> None:
    import websocket

    guest = Rfb(server.ws_url("visa-desktop-view/"), server.token)
    guest.handshake()
    peak_before = _peak_rss(server.process.pid)
    chunk = b"x" * (1 << 20)
    sent = 0
    try:
        guest.send(struct.pack(">BxxxI", 6, 0x7FFFFFFF) + chunk)  # "2 GiB of clipboard follow"
        for _ in range(127):
            guest.send(chunk)
            sent += 1
    except (websocket.WebSocketException, OSError):
        pass  # the proxy closed the connection while we were still sending
    closed = _closed(guest)
    growth = _peak_rss(server.process.pid) - peak_before
    assert closed, "the view-only connection stayed open after a 2 GiB clipboard announcement"
    assert growth < 32 << 20, f"the server's peak memory grew by {growth >> 20} MiB (sent {sent + 1} MiB)"
    # the desktop is still there for everyone else
    owner = Rfb(server.ws_url("visa-desktop/"), server.token)
    assert owner.handshake()[:2] == (1280, 800)
    owner.close()


def test_isolation_async_authorizer_denying_write_makes_the_desktop_view_only(tmp_path: Path) -> None:
    """The server's authorizer answers asynchronously (as a sharing policy asking the hub would): its "no" to
    ``write`` must not be taken for a yes (a coroutine object is truthy)."""
    import websocket

    if shutil.which("Xvnc") is None:
        missing_peer("Xvnc not installed (scripts/install-desktop.sh)")
    server = _start(tmp_path, "--ServerApp.authorizer_class=desktop_authorizers.AsyncViewOnlyAuthorizer",
                    env={"PYTHONPATH": str(TESTS)})
    try:
        body = server.get("visa/api/desktop").json()
        assert body["view_only"] is True and body["websocket_path"] == "visa-desktop-view/", body
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(server.ws_url("visa-desktop/"),
                                        header=[f"Authorization: token {server.token}"], timeout=10)
        assert refused.value.status_code == 403
        guest = Rfb(server.ws_url("visa-desktop-view/"), server.token)
        assert guest.handshake()[:2] == (1280, 800)
        wait_for_terminal(server.runtime)
        guest.type("touch async-guest-was-here\n")
        assert guest.request_update() == 0
        time.sleep(1)
        assert not (server.root / "async-guest-was-here").exists(), "the guest's keystrokes reached the desktop"
        guest.close()
    finally:
        server.stop()


def _peak_rss(pid: int) -> int:
    """The highest resident memory the process ever had (VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


def _closed(rfb: Rfb, timeout: float = 10) -> bool:
    """Whether the server closes the websocket within ``timeout`` (frames in flight are read and ignored)."""
    import websocket

    rfb.ws.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if not rfb.ws.recv():
                return True
        except (websocket.WebSocketConnectionClosedException, ConnectionError, OSError):
            return True
        except websocket.WebSocketTimeoutException:
            return False
    return False


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

