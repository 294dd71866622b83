"""The view-only RFB filter: input never passes, pictures do, the owner's clipboard never reaches a guest, whatever
the chunking; unknown bytes close; dropped bytes are skipped, never held."""

from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visa_hub.singleuser.desktop.rfb import MAX_GUEST_CLIPBOARD, RfbViolation, ViewOnlyFilter
from visa_hub.singleuser.desktop.xauth import FAMILY_WILD, xauthority_entry

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x00"  # version, security None, ClientInit (exclusive)

PIXEL_FORMAT = struct.pack(">BBBBHHHBBBxxx", 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)  # what noVNC asks for
SET_PIXEL_FORMAT = bytes([0, 0, 0, 0]) + PIXEL_FORMAT
SET_ENCODINGS = struct.pack(">BxH3i", 2, 3, 0, -223, -316)  # Raw, DesktopSize, ExtendedMouseButtons
UPDATE_REQUEST = struct.pack(">BBHHHH", 3, 1, 0, 0, 1280, 800)
CONTINUOUS = struct.pack(">BBHHHH", 150, 1, 0, 0, 1280, 800)
FENCE = struct.pack(">BxxxIB", 248, 0x80000003, 3) + b"abc"
KEY = struct.pack(">BBxxI", 4, 1, 0x61)
POINTER = struct.pack(">BBHH", 5, 1, 10, 10)
CUT = struct.pack(">BxxxI", 6, 5) + b"hello"
CUT_EXTENDED = struct.pack(">Bxxxi", 6, -4) + b"\x10\x00\x00\x01"
DESKTOP_SIZE = struct.pack(">BxHHBx", 251, 800, 600, 1) + struct.pack(">IHHHHI", 0, 0, 0, 800, 600, 0)
XVP = bytes([250, 0, 1, 2])
QEMU_KEY = struct.pack(">BBHII", 255, 0, 1, 0x61, 30)

PASSED = [SET_PIXEL_FORMAT, UPDATE_REQUEST, CONTINUOUS, FENCE]
DROPPED = [KEY, POINTER, CUT, CUT_EXTENDED, DESKTOP_SIZE, XVP, QEMU_KEY]


def _run(data: bytes, chunks: list[int] | None = None) -> bytes:
    rfb, out, pos = ViewOnlyFilter(), b"", 0
    for size in chunks or [len(data)]:
        out += rfb.feed(data[pos:pos + size])
        pos += size
    return out + rfb.feed(data[pos:])


def test_handshake_passes_but_the_connection_is_always_shared() -> None:
    assert _run(HANDSHAKE) == b"RFB 003.008\n\x01\x01"


@pytest.mark.parametrize("message", DROPPED, ids=lambda m: str(m[0]))
def test_input_messages_are_dropped(message: bytes) -> None:
    assert _run(HANDSHAKE + message + UPDATE_REQUEST) == b"RFB 003.008\n\x01\x01" + UPDATE_REQUEST


def test_picture_messages_pass_and_blocked_encodings_are_removed() -> None:
    out = _run(HANDSHAKE + SET_ENCODINGS + b"".join(PASSED))
    assert out == b"RFB 003.008\n\x01\x01" + struct.pack(">BxH2i", 2, 2, 0, -223) + b"".join(PASSED)


@given(st.lists(st.integers(min_value=1, max_value=7), max_size=60))
def test_chunking_does_not_matter(chunks: list[int]) -> None:
    later = PASSED[1:]  # the pixel format is set once, before updates flow
    stream = HANDSHAKE + SET_PIXEL_FORMAT + b"".join(m for pair in zip(DROPPED, later * 3, strict=False) for m in pair)
    assert _run(stream, chunks) == _run(stream)
    assert KEY not in _run(stream, chunks)


@pytest.mark.parametrize("bad", [
    b"HTTP/1.1 200\n",                      # not RFB
    b"RFB 003.003\n",                       # 3.3: the server picks security, the filter cannot follow
    b"RFB 003.008\n\x02",                   # VNC authentication
    HANDSHAKE + bytes([7, 0, 0, 0]),        # unknown message type
    HANDSHAKE + bytes([255, 1, 0, 0]),      # QEMU audio
    HANDSHAKE + struct.pack(">BxxxIB", 248, 0, 65) + bytes(65),  # oversized fence
])
def test_anything_unknown_closes_the_connection(bad: bytes) -> None:
    with pytest.raises(RfbViolation):
        _run(bad)


def test_a_two_gib_clipboard_announcement_closes_at_once() -> None:
    rfb = ViewOnlyFilter()
    rfb.feed(HANDSHAKE)
    with pytest.raises(RfbViolation, match="clipboard of 2147483647 bytes"):
        rfb.feed(struct.pack(">Bxxxi", 6, 0x7FFFFFFF))
    with pytest.raises(RfbViolation):  # and stays closed
        rfb.feed(UPDATE_REQUEST)
    with pytest.raises(RfbViolation):
        ViewOnlyFilter().feed(HANDSHAKE + struct.pack(">Bxxxi", 6, -0x80000000))  # extended form


def test_a_dropped_clipboard_is_skipped_as_it_streams_not_held() -> None:
    rfb = ViewOnlyFilter()
    rfb.feed(HANDSHAKE)
    chunk = b"x" * 4096
    tracemalloc.start()
    try:
        assert rfb.feed(struct.pack(">BxxxI", 6, MAX_GUEST_CLIPBOARD)) == b""
        for _ in range(MAX_GUEST_CLIPBOARD // len(chunk)):
            assert rfb.feed(chunk) == b""
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"dropping a 1 MiB clipboard held {peak} bytes"
    assert rfb.feed(UPDATE_REQUEST) == UPDATE_REQUEST
    assert rfb.stats.dropped == {"ClientCutText": 1}


# -- server → client ----------------------------------------------------------------------------------------
SERVER_HANDSHAKE = (b"RFB 003.008\n" + b"\x01\x01" + bytes(4)
                    + struct.pack(">HH", 1280, 800) + PIXEL_FORMAT + struct.pack(">I", 12) + b"VISA desktop")


def rect(width: int, height: int, encoding: int) -> bytes:
    return struct.pack(">HHHHi", 0, 0, width, height, encoding)


def update(*rects: bytes, count: int | None = None) -> bytes:
    return struct.pack(">BxH", 0, len(rects) if count is None else count) + b"".join(rects)


FRAMES = [
    update(rect(2, 2, 0) + bytes(16)),                                   # Raw, 4 bytes per pixel
    update(rect(8, 8, 1) + b"\x00\x01\x00\x02"),                         # CopyRect
    update(rect(64, 64, 7) + b"\x80" + b"\x10\x20\x30",                   # Tight fill, 3-byte pixels
           rect(64, 64, 7) + b"\x90" + b"\x85\x01" + bytes(133),          # Tight JPEG, compact length 133
           rect(64, 64, 7) + b"\x40\x01\x01" + bytes(6) + b"\x20" + bytes(32),  # palette of 2, zlib 32 bytes
           rect(2, 1, 7) + b"\x00" + bytes(6),                             # copy filter, 6 bytes sent as is
           rect(100, 1, 16) + struct.pack(">I", 9) + bytes(9)),           # ZRLE
    update(rect(4, 2, -239) + bytes(4 * 2 * 4) + bytes(2),                # cursor with its mask
           rect(1280, 800, -223), rect(0, 0, -307) + struct.pack(">I", 3) + b"new",
           rect(1280, 800, -308) + b"\x01\x00\x00\x00" + bytes(16), rect(0, 0, -224), count=0xFFFF),
    struct.pack(">BxHH", 1, 0, 2) + bytes(12),                            # SetColourMapEntries
    b"\x02",                                                              # Bell
    b"\x96",                                                              # EndOfContinuousUpdates
    struct.pack(">BxxxIB", 248, 0x80000000, 2) + b"ab",                   # ServerFence
]
CLIPBOARD = struct.pack(">BxxxI", 3, 15) + b"owner's secret!"


def _server(data: bytes, chunks: list[int] | None = None) -> bytes:
    rfb, out, pos = ViewOnlyFilter(), b"", 0
    rfb.feed(HANDSHAKE)
    for size in chunks or [len(data)]:
        out += rfb.feed_server(data[pos:pos + size])
        pos += size
    return out + rfb.feed_server(data[pos:])


def test_pictures_reach_the_guest_but_the_owners_clipboard_does_not() -> None:
    stream = SERVER_HANDSHAKE + FRAMES[0] + CLIPBOARD + b"".join(FRAMES[1:]) + CLIPBOARD
    assert _server(stream) == SERVER_HANDSHAKE + b"".join(FRAMES)


@given(st.lists(st.integers(min_value=1, max_value=40), max_size=80))
def test_server_chunking_does_not_matter(chunks: list[int]) -> None:
    stream = SERVER_HANDSHAKE + b"".join(f + CLIPBOARD for f in FRAMES)
    out = _server(stream, chunks)
    assert out == SERVER_HANDSHAKE + b"".join(FRAMES)
    assert b"secret" not in out


def test_a_huge_server_clipboard_is_skipped_as_it_streams() -> None:
    rfb = ViewOnlyFilter()
    rfb.feed(HANDSHAKE)
    rfb.feed_server(SERVER_HANDSHAKE)
    chunk = b"s" * (1 << 20)
    tracemalloc.start()
    try:
        assert rfb.feed_server(struct.pack(">BxxxI", 3, 0x7FFFFFFF)) == b""
        for _ in range(16):
            assert rfb.feed_server(chunk) == b""
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024, f"skipping the owner's clipboard held {peak} bytes"


@pytest.mark.parametrize("bad", [
    FRAMES[0][:4] + rect(2, 2, 5),                                        # Hextile: never enabled for a guest
    b"\x04",                                                              # unknown server message
    update(rect(8, 8, 7) + b"\xa0"),                                      # TightPNG
    struct.pack(">BxxxIB", 248, 0, 65),                                   # oversized fence
])
def test_server_bytes_the_filter_does_not_understand_close(bad: bytes) -> None:
    with pytest.raises(RfbViolation):
        _server(SERVER_HANDSHAKE + bad)


def test_encodings_outside_the_allowed_list_are_removed() -> None:
    asked = [7, 16, 5, 0, -223, -224, -239, -307, -308, -312, -313, -1063131698, -309, -316, 0x574D5664, -26, -254]
    out = _run(HANDSHAKE + struct.pack(f">BxH{len(asked)}i", 2, len(asked), *asked))
    (count,) = struct.unpack_from(">H", out, 16)
    kept = struct.unpack_from(f">{count}i", out, 18)
    assert kept == (7, 16, 0, -223, -224, -239, -307, -308, -312, -313, -26, -254)


def test_the_pixel_format_is_fixed_once_updates_flow() -> None:
    with pytest.raises(RfbViolation, match="pixel format"):
        _run(HANDSHAKE + SET_PIXEL_FORMAT + UPDATE_REQUEST + SET_PIXEL_FORMAT)


def test_xauthority_entry_layout() -> None:
    entry = xauthority_entry(3, b"k" * 16)
    assert struct.unpack_from(">H", entry)[0] == FAMILY_WILD
    assert entry.endswith(b"\x00\x12MIT-MAGIC-COOKIE-1\x00\x10" + b"k" * 16)
    assert b"\x00\x013" in entry
