"""The view-only RFB filter: input never passes, pictures do, whatever the chunking; unknown bytes close."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from visa_hub.singleuser.desktop.rfb import RfbViolation, ViewOnlyFilter
from visa_hub.singleuser.desktop.xauth import FAMILY_WILD, xauthority_entry

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x00"  # version, security None, ClientInit (exclusive)

SET_PIXEL_FORMAT = bytes([0, 0, 0, 0]) + bytes(16)
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
    stream = HANDSHAKE + b"".join(m for pair in zip(DROPPED, PASSED * 2, strict=False) for m in pair)
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


def test_xauthority_entry_layout() -> None:
    entry = xauthority_entry(3, b"k" * 16)
    assert struct.unpack_from(">H", entry)[0] == FAMILY_WILD
    assert entry.endswith(b"\x00\x12MIT-MAGIC-COOKIE-1\x00\x10" + b"k" * 16)
    assert b"\x00\x013" in entry
