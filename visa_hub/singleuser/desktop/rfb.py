"""A view-only filter for the client→server half of an RFB (VNC) stream. Pure: no I/O.

Guests of a shared session watch the desktop through :class:`ViewOnlyFilter`: it reads what the browser sends,
passes the handshake and the messages that only ask for pictures, and drops every input message (keys,
pointer, clipboard, desktop resizing, power actions). Hiding the keyboard in the browser would not be enough:
the websocket is the boundary.

Safety rests on one rule: the filter forwards only messages it parsed completely and recognised as harmless,
byte for byte, so the server never sees bytes the filter did not understand. Anything unknown or malformed
closes the connection (:class:`RfbViolation`) instead of being guessed at.

Client→server messages (RFC 6143 §7.5 and the community extensions noVNC uses):

====  =========================  ==========================================  ========
type  message                    length                                      verdict
====  =========================  ==========================================  ========
0     SetPixelFormat             20                                          pass
2     SetEncodings               4 + 4·n                                     pass (filtered)
3     FramebufferUpdateRequest   10                                          pass
4     KeyEvent                   8                                           drop
5     PointerEvent               6                                           drop
6     ClientCutText              8 + |length| (negative = extended)          drop
150   EnableContinuousUpdates    10                                          pass
248   ClientFence                9 + payload length (≤ 64)                   pass
250   xvp (power actions)        4                                           drop
251   SetDesktopSize             8 + 16·screens                              drop
255   QEMU extended key event    12 (sub-type 0)                             drop
====  =========================  ==========================================  ========
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

#: RFB security type "None": the only one a view-only connection may choose (the socket itself is private).
SECURITY_NONE = 1
#: Pseudo-encodings a view-only client may not enable: ExtendedMouseButtons changes the length of
#: PointerEvent (a 7-byte form), and there is no pointer for a guest anyway.
BLOCKED_ENCODINGS = frozenset({-316})
#: The longest ClientFence payload the protocol allows.
MAX_FENCE_PAYLOAD = 64

PASS_FIXED = {0: 20, 3: 10, 150: 10}
DROP_FIXED = {4: 8, 5: 6, 250: 4}


class RfbViolation(ValueError):
    """The client sent something a view-only connection does not allow or the filter does not understand."""


@dataclass
class FilterStats:
    """What the filter did so far (for logs and tests)."""

    passed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, kind: str) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + 1


class ViewOnlyFilter:
    """Feed it the client's bytes in any chunking; it returns the bytes to forward to the server."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._stage = "version"
        self._version_minor = 8
        self.stats = FilterStats()

    def feed(self, data: bytes) -> bytes:
        """Consume ``data``; return what may reach the server (possibly ``b""``). Raises :class:`RfbViolation`."""
        self._buffer += data
        out = bytearray()
        while True:
            message = self._next()
            if message is None:
                return bytes(out)
            out += message

    def _take(self, n: int) -> bytes | None:
        if len(self._buffer) < n:
            return None
        chunk = bytes(self._buffer[:n])
        del self._buffer[:n]
        return chunk

    def _next(self) -> bytes | None:
        """The next complete unit's forwarded bytes (``b""`` when dropped), or ``None`` if more input is needed."""
        if self._stage == "version":
            return self._version()
        if self._stage == "security":
            return self._security()
        if self._stage == "init":
            chunk = self._take(1)
            if chunk is None:
                return None
            self._stage = "messages"
            return b"\x01"  # ClientInit: always shared, so a guest can never disconnect the others
        return self._message()

    def _version(self) -> bytes | None:
        chunk = self._take(12)
        if chunk is None:
            return None
        if chunk[:4] != b"RFB " or chunk[7:8] != b"." or chunk[11:12] != b"\n" or not chunk[4:11].replace(
                b".", b"").isdigit():
            raise RfbViolation("not an RFB protocol version")
        major, minor = int(chunk[4:7]), int(chunk[8:11])
        if major != 3 or minor < 7:
            raise RfbViolation(f"RFB version {major}.{minor} is not supported for view-only connections")
        self._version_minor = minor
        self._stage = "security"
        return chunk

    def _security(self) -> bytes | None:
        chunk = self._take(1)
        if chunk is None:
            return None
        if chunk[0] != SECURITY_NONE:
            raise RfbViolation(f"security type {chunk[0]} is not allowed for view-only connections")
        self._stage = "init"
        return chunk

    def _message(self) -> bytes | None:
        if not self._buffer:
            return None
        kind = self._buffer[0]
        if kind in PASS_FIXED:
            chunk = self._take(PASS_FIXED[kind])
            if chunk is not None:
                self.stats.passed += 1
            return chunk
        if kind in DROP_FIXED:
            return self._drop(DROP_FIXED[kind], _NAMES[kind])
        if kind == 2:
            return self._set_encodings()
        if kind == 6:
            return self._client_cut_text()
        if kind == 248:
            return self._client_fence()
        if kind == 251:
            return self._set_desktop_size()
        if kind == 255:
            return self._qemu()
        raise RfbViolation(f"unknown client message type {kind}")

    def _drop(self, length: int, name: str) -> bytes | None:
        if self._take(length) is None:
            return None
        self.stats.drop(name)
        return b""

    def _set_encodings(self) -> bytes | None:
        if len(self._buffer) < 4:
            return None
        (count,) = struct.unpack_from(">H", self._buffer, 2)
        chunk = self._take(4 + 4 * count)
        if chunk is None:
            return None
        encodings = struct.unpack_from(f">{count}i", chunk, 4)
        kept = [e for e in encodings if e not in BLOCKED_ENCODINGS]
        self.stats.passed += 1
        return struct.pack(f">BxH{len(kept)}i", 2, len(kept), *kept)

    def _client_cut_text(self) -> bytes | None:
        if len(self._buffer) < 8:
            return None
        (length,) = struct.unpack_from(">i", self._buffer, 4)  # negative: extended clipboard
        return self._drop(8 + abs(length), "ClientCutText")

    def _client_fence(self) -> bytes | None:
        if len(self._buffer) < 9:
            return None
        payload = self._buffer[8]
        if payload > MAX_FENCE_PAYLOAD:
            raise RfbViolation(f"ClientFence payload of {payload} bytes (at most {MAX_FENCE_PAYLOAD})")
        chunk = self._take(9 + payload)
        if chunk is not None:
            self.stats.passed += 1
        return chunk

    def _set_desktop_size(self) -> bytes | None:
        if len(self._buffer) < 8:
            return None
        screens = self._buffer[6]
        return self._drop(8 + 16 * screens, "SetDesktopSize")

    def _qemu(self) -> bytes | None:
        if len(self._buffer) < 2:
            return None
        if self._buffer[1] != 0:
            raise RfbViolation(f"QEMU client message sub-type {self._buffer[1]} is not supported")
        return self._drop(12, "QEMUExtendedKeyEvent")


_NAMES = {4: "KeyEvent", 5: "PointerEvent", 250: "xvp"}
