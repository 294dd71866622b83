"""A view-only filter for both halves of an RFB (VNC) stream. Pure: no I/O.

Guests of a shared session watch the desktop through :class:`ViewOnlyFilter`. Hiding the keyboard in the browser
would not be enough: the websocket is the boundary, so the filter reads both directions.

Client → server (:meth:`ViewOnlyFilter.feed`): the handshake and the messages that only ask for pictures pass; every
input message (keys, pointer, clipboard, desktop resizing, power actions) is dropped. The encodings a guest may
enable are a short list (:data:`ALLOWED_ENCODINGS`), so that everything the server may send her is understood.

Server → client (:meth:`ViewOnlyFilter.feed_server`): pictures pass; the owner's clipboard (``ServerCutText``) is
dropped, so a guest never receives clipboard text.

Safety rests on three rules:

- the filter forwards only what it parsed and recognised as harmless, so neither side sees bytes the filter did not
  understand; anything unknown or malformed closes the connection (:class:`RfbViolation`) instead of being guessed at;
- what it drops, it skips as the bytes stream past and never holds: memory stays bounded whatever a length field
  announces (a guest's clipboard longer than :data:`MAX_GUEST_CLIPBOARD` closes the connection at once);
- what it holds at any time is one message header or one list of encodings (at most 256 KiB).

Client → server messages (RFC 6143 §7.5 and the community extensions noVNC uses):

====  =========================  ==========================================  ========
type  message                    length                                      verdict
====  =========================  ==========================================  ========
0     SetPixelFormat             20                                          pass (only before the first update)
2     SetEncodings               4 + 4·n                                     pass (only allowed encodings)
3     FramebufferUpdateRequest   10                                          pass
4     KeyEvent                   8                                           drop
5     PointerEvent               6                                           drop
6     ClientCutText              8 + |length| (negative = extended)          drop (close if > 1 MiB)
150   EnableContinuousUpdates    10                                          pass
248   ClientFence                9 + payload length (≤ 64)                   pass
250   xvp (power actions)        4                                           drop
251   SetDesktopSize             8 + 16·screens                              drop
255   QEMU extended key event    12 (sub-type 0)                             drop
====  =========================  ==========================================  ========

Server → client messages: FramebufferUpdate (0) with Raw, CopyRect, Tight, ZRLE rectangles and the pseudo-encodings
of :data:`ALLOWED_ENCODINGS` pass; SetColourMapEntries (1), Bell (2), EndOfContinuousUpdates (150) and ServerFence
(248) pass; ServerCutText (3) is dropped; anything else closes.
"""

from __future__ import annotations

import struct
from collections.abc import Generator
from dataclasses import dataclass, field

#: RFB security type "None": the only one a view-only connection may choose (the socket itself is private).
SECURITY_NONE = 1
#: The longest ClientFence / ServerFence payload the protocol allows.
MAX_FENCE_PAYLOAD = 64
#: A guest's clipboard message longer than this closes the connection (noVNC sends none in view-only mode).
MAX_GUEST_CLIPBOARD = 1 << 20
#: The longest desktop name accepted in ServerInit.
MAX_NAME = 1 << 16

RAW, COPY_RECT, TIGHT, ZRLE = 0, 1, 7, 16
DESKTOP_SIZE, LAST_RECT, CURSOR = -223, -224, -239
DESKTOP_NAME, EXTENDED_DESKTOP_SIZE, FENCE, CONTINUOUS_UPDATES = -307, -308, -312, -313
#: Encodings a view-only client may enable: pictures the filter can follow, and pseudo-encodings that only tune them
#: (JPEG quality -32..-23, compression level -256..-247, TigerVNC's fine quality and subsampling) or that the server
#: answers with data the filter understands. Everything else (extended clipboard, xvp, extended mouse buttons,
#: Hextile, ...) is removed from the client's list.
ALLOWED_ENCODINGS = frozenset({
    RAW, COPY_RECT, TIGHT, ZRLE,
    DESKTOP_SIZE, LAST_RECT, CURSOR, DESKTOP_NAME, EXTENDED_DESKTOP_SIZE, FENCE, CONTINUOUS_UPDATES,
    *range(-32, -22), *range(-256, -246), *range(-512, -411), *range(-768, -762),
})

PASS_FIXED = {3: 10, 150: 10}
DROP_FIXED = {4: 8, 5: 6, 250: 4}
_NAMES = {4: "KeyEvent", 5: "PointerEvent", 250: "xvp"}


class RfbViolation(ValueError):
    """Something a view-only connection does not allow or the filter does not understand."""


@dataclass
class FilterStats:
    """What the filter did so far (for logs and tests)."""

    passed: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    dropped_bytes: int = 0

    def drop(self, kind: str, size: int = 0) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + 1
        self.dropped_bytes += size


@dataclass(frozen=True)
class PixelFormat:
    """The part of an RFB pixel format the lengths of pictures depend on."""

    bits_per_pixel: int
    depth: int
    true_colour: bool
    maxima: tuple[int, int, int]

    @classmethod
    def parse(cls, data: bytes) -> PixelFormat:
        bpp, depth, _big_endian, true_colour, red, green, blue = struct.unpack_from(">BBBBHHH", data)
        if bpp not in (8, 16, 32):
            raise RfbViolation(f"pixel format with {bpp} bits per pixel")
        return cls(bpp, depth, bool(true_colour), (red, green, blue))

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    @property
    def tight_pixel(self) -> int:
        """Tight sends 3 bytes per pixel for 24-bit true colour in 32 bits, else whole pixels."""
        if self.true_colour and self.bits_per_pixel == 32 and self.depth == 24 and self.maxima == (255, 255, 255):
            return 3
        return self.bytes_per_pixel


# -- a parser is a generator of these steps; _Stream runs it over bytes in any chunking --------------------------
class _Read:
    """Hold the next ``n`` bytes and give them to the parser (nothing is forwarded by itself)."""

    __slots__ = ("n",)

    def __init__(self, n: int):
        self.n = n


class _Emit:
    """Forward these bytes."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data


class _Stream:
    """Forward (``forward=True``) or skip the next ``n`` bytes as they arrive, without holding them."""

    __slots__ = ("forward", "left")

    def __init__(self, n: int, *, forward: bool):
        self.left, self.forward = n, forward


Step = _Read | _Emit | _Stream
Parser = Generator[Step, bytes | None, None]


class _Runner:
    """Feeds bytes to a parser generator; returns what it forwards. Holds at most one ``_Read``'s worth."""

    def __init__(self, parser: Parser):
        self._parser = parser
        self._held = bytearray()
        self._step: Step = next(parser)
        self._failure: str | None = None

    def feed(self, data: bytes) -> bytes:
        if self._failure is not None:  # a new exception each time: re-raising one would keep every chunk alive
            raise RfbViolation(f"connection already refused: {self._failure}")
        out = bytearray()
        view, pos, end = memoryview(data), 0, len(data)
        try:
            while True:
                step = self._step
                if isinstance(step, _Emit):
                    out += step.data
                    self._step = self._parser.send(None)
                elif isinstance(step, _Read):
                    need = step.n - len(self._held)
                    take = min(need, end - pos)
                    self._held += view[pos:pos + take]
                    pos += take
                    if take < need:
                        return bytes(out)
                    value = bytes(self._held)
                    self._held.clear()
                    self._step = self._parser.send(value)
                else:
                    take = min(step.left, end - pos)
                    if step.forward:
                        out += view[pos:pos + take]
                    pos += take
                    step.left -= take
                    if step.left:
                        return bytes(out)
                    self._step = self._parser.send(None)
        except RfbViolation as exc:
            self._failure = str(exc)
            raise


def _forward(n: int) -> Generator[Step, bytes | None, bytes]:
    """Read ``n`` bytes, forward them unchanged, and hand them to the parser."""
    data = yield _Read(n)
    assert data is not None
    yield _Emit(data)
    return data


def _version(data: bytes, who: str) -> int:
    """The minor version of an RFB ProtocolVersion message; only 3.7 and later can be followed."""
    if data[:4] != b"RFB " or data[7:8] != b"." or data[11:12] != b"\n" or not data[4:11].replace(b".", b"").isdigit():
        raise RfbViolation(f"{who} did not send an RFB protocol version")
    major, minor = int(data[4:7]), int(data[8:11])
    if major != 3 or minor < 7:
        raise RfbViolation(f"RFB version {major}.{minor} is not supported for view-only connections")
    return minor


class ViewOnlyFilter:
    """One view-only connection: feed each direction's bytes in any chunking, forward what comes back."""

    def __init__(self) -> None:
        self.stats = FilterStats()
        self._client_minor: int | None = None
        self._pixel_format: PixelFormat | None = None
        self._updates_requested = False
        self._client = _Runner(self._client_messages())
        self._server = _Runner(self._server_messages())

    def feed(self, data: bytes) -> bytes:
        """Client → server: what may reach the server (possibly ``b""``). Raises :class:`RfbViolation`."""
        return self._client.feed(data)

    def feed_server(self, data: bytes) -> bytes:
        """Server → client: what the guest may receive (possibly ``b""``). Raises :class:`RfbViolation`."""
        return self._server.feed(data)

    # -- client → server ---------------------------------------------------------------------------------------
    def _client_messages(self) -> Parser:
        self._client_minor = _version((yield from _forward(12)), "the client")
        choice = yield _Read(1)
        if choice[0] != SECURITY_NONE:
            raise RfbViolation(f"security type {choice[0]} is not allowed for view-only connections")
        yield _Emit(choice)
        yield _Read(1)
        yield _Emit(b"\x01")  # ClientInit: always shared, so a guest can never disconnect the others
        while True:
            kind = (yield _Read(1))[0]
            if kind == 0:
                body = yield _Read(19)
                if self._updates_requested:
                    raise RfbViolation("the pixel format may only change before the first update request")
                self._pixel_format = PixelFormat.parse(body[3:])
                self.stats.passed += 1
                yield _Emit(b"\x00" + body)
            elif kind in PASS_FIXED:
                body = yield _Read(PASS_FIXED[kind] - 1)
                self._updates_requested = True
                self.stats.passed += 1
                yield _Emit(bytes([kind]) + body)
            elif kind in DROP_FIXED:
                yield _Stream(DROP_FIXED[kind] - 1, forward=False)
                self.stats.drop(_NAMES[kind], DROP_FIXED[kind])
            elif kind == 2:
                yield from self._set_encodings()
            elif kind == 6:
                (length,) = struct.unpack(">3xi", (yield _Read(7)))
                if abs(length) > MAX_GUEST_CLIPBOARD:
                    raise RfbViolation(f"a clipboard of {abs(length)} bytes from a view-only client")
                yield _Stream(abs(length), forward=False)  # negative: extended clipboard
                self.stats.drop("ClientCutText", 8 + abs(length))
            elif kind == 248:
                head = yield _Read(8)
                if head[7] > MAX_FENCE_PAYLOAD:
                    raise RfbViolation(f"ClientFence payload of {head[7]} bytes (at most {MAX_FENCE_PAYLOAD})")
                self.stats.passed += 1
                yield _Emit(bytes([kind]) + head)
                yield _Stream(head[7], forward=True)
            elif kind == 251:
                head = yield _Read(7)
                yield _Stream(16 * head[5], forward=False)
                self.stats.drop("SetDesktopSize", 8 + 16 * head[5])
            elif kind == 255:
                subtype = yield _Read(1)
                if subtype[0] != 0:
                    raise RfbViolation(f"QEMU client message sub-type {subtype[0]} is not supported")
                yield _Stream(10, forward=False)
                self.stats.drop("QEMUExtendedKeyEvent", 12)
            else:
                raise RfbViolation(f"unknown client message type {kind}")

    def _set_encodings(self) -> Parser:
        (count,) = struct.unpack(">xH", (yield _Read(3)))
        encodings = struct.unpack(f">{count}i", (yield _Read(4 * count)))
        kept = [e for e in encodings if e in ALLOWED_ENCODINGS]
        self.stats.passed += 1
        yield _Emit(struct.pack(f">BxH{len(kept)}i", 2, len(kept), *kept))

    # -- server → client ---------------------------------------------------------------------------------------
    def _server_messages(self) -> Parser:
        server_minor = _version((yield from _forward(12)), "the desktop")
        count = (yield from _forward(1))[0]
        if count == 0:  # the server refuses the connection and says why
            yield from self._reason_then_end()
        yield from _forward(count)
        if min(server_minor, self._client_minor or server_minor) >= 8:
            result = yield from _forward(4)
            if result != b"\x00\x00\x00\x00":
                yield from self._reason_then_end()
        head = yield from _forward(24)  # width, height, pixel format, name length
        if self._pixel_format is None:
            self._pixel_format = PixelFormat.parse(head[4:20])
        (name_length,) = struct.unpack_from(">I", head, 20)
        if name_length > MAX_NAME:
            raise RfbViolation(f"a desktop name of {name_length} bytes")
        yield _Stream(name_length, forward=True)
        while True:
            kind = (yield _Read(1))[0]
            if kind == 0:
                yield from self._framebuffer_update()
            elif kind == 1:
                head = yield _Read(5)
                yield _Emit(bytes([kind]) + head)
                yield _Stream(6 * struct.unpack_from(">xHH", head)[1], forward=True)
            elif kind in (2, 150):
                yield _Emit(bytes([kind]))
            elif kind == 3:
                (length,) = struct.unpack(">3xi", (yield _Read(7)))
                yield _Stream(abs(length), forward=False)  # the owner's clipboard never reaches a guest
                self.stats.drop("ServerCutText", 8 + abs(length))
            elif kind == 248:
                head = yield _Read(8)
                if head[7] > MAX_FENCE_PAYLOAD:
                    raise RfbViolation(f"ServerFence payload of {head[7]} bytes (at most {MAX_FENCE_PAYLOAD})")
                yield _Emit(bytes([kind]) + head)
                yield _Stream(head[7], forward=True)
            else:
                raise RfbViolation(f"unexpected server message type {kind} on a view-only connection")

    def _reason_then_end(self) -> Parser:
        (length,) = struct.unpack(">I", (yield from _forward(4)))
        yield _Stream(length, forward=True)
        yield _Read(1)
        raise RfbViolation("the desktop went on after refusing the connection")

    def _framebuffer_update(self) -> Parser:
        head = yield _Read(3)
        yield _Emit(b"\x00" + head)
        (rectangles,) = struct.unpack(">xH", head)
        done = 0
        while rectangles == 0xFFFF or done < rectangles:  # 0xFFFF: until a LastRect
            rect = yield from _forward(12)
            _x, _y, width, height, encoding = struct.unpack(">HHHHi", rect)
            done += 1
            if encoding == LAST_RECT:
                return
            yield from self._rectangle(width, height, encoding)

    def _rectangle(self, width: int, height: int, encoding: int) -> Parser:
        pixel_format = self._pixel_format
        assert pixel_format is not None
        if encoding == RAW:
            yield _Stream(width * height * pixel_format.bytes_per_pixel, forward=True)
        elif encoding == COPY_RECT:
            yield _Stream(4, forward=True)
        elif encoding == TIGHT:
            yield from self._tight(width, height, pixel_format.tight_pixel)
        elif encoding == ZRLE:
            (length,) = struct.unpack(">I", (yield from _forward(4)))
            yield _Stream(length, forward=True)
        elif encoding == CURSOR:
            mask = (width + 7) // 8 * height
            yield _Stream(width * height * pixel_format.bytes_per_pixel + mask, forward=True)
        elif encoding == EXTENDED_DESKTOP_SIZE:
            screens = (yield from _forward(4))[0]
            yield _Stream(16 * screens, forward=True)
        elif encoding == DESKTOP_NAME:
            (length,) = struct.unpack(">I", (yield from _forward(4)))
            yield _Stream(length, forward=True)
        elif encoding != DESKTOP_SIZE:
            raise RfbViolation(f"a rectangle in encoding {encoding}, which a view-only client may not enable")

    def _tight(self, width: int, height: int, tight_pixel: int) -> Parser:
        compression = (yield from _forward(1))[0] >> 4
        if compression == 8:  # fill
            yield _Stream(tight_pixel, forward=True)
            return
        if compression == 9:  # JPEG
            yield _Stream((yield from _compact_length()), forward=True)
            return
        if compression > 9:
            raise RfbViolation(f"Tight compression {compression} (TightPNG is not enabled)")
        filter_id = (yield from _forward(1))[0] if compression & 4 else 0
        if filter_id == 1:  # palette
            colours = (yield from _forward(1))[0] + 1
            yield _Stream(colours * tight_pixel, forward=True)
            bits = 1 if colours <= 2 else 8
            size = (width * bits + 7) // 8 * height
        elif filter_id in (0, 2):  # copy, gradient
            size = width * height * tight_pixel
        else:
            raise RfbViolation(f"Tight filter {filter_id}")
        if size < 12:  # small data is sent as is, larger data zlib-compressed with its length first
            yield _Stream(size, forward=True)
        else:
            yield _Stream((yield from _compact_length()), forward=True)


def _compact_length() -> Generator[Step, bytes | None, int]:
    """Tight's 1–3 byte length: 7 bits per byte, the high bit says another byte follows."""
    length, shift = 0, 0
    for position in range(3):
        byte = (yield from _forward(1))[0]
        length |= (byte if position == 2 else byte & 0x7F) << shift
        if position == 2 or not byte & 0x80:
            return length
        shift += 7
    return length
