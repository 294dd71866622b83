"""Xauthority files: the MIT-MAGIC-COOKIE that keeps other local users off the desktop's X display. Pure.

Without ``-auth`` an X server accepts every local client, so another user on the instance could read the
screen or type into it. The launcher gives Xvnc a fresh random cookie and the desktop's programs the same
cookie through ``XAUTHORITY``; the file lives in the desktop's private (0700) runtime directory.
"""

from __future__ import annotations

import secrets
import struct

#: Matches any host address (the server ignores addresses; clients then match on the display number).
FAMILY_WILD = 0xFFFF
COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"


def new_cookie() -> bytes:
    """16 random bytes, as ``mcookie`` makes them."""
    return secrets.token_bytes(16)


def _field(value: bytes) -> bytes:
    return struct.pack(">H", len(value)) + value


def xauthority_entry(display: int | None, cookie: bytes) -> bytes:
    """One Xauthority record granting ``cookie`` for display ``:display`` (``None``: any display number).

    The X server reads every record's cookie regardless of the number; Xlib clients pick the record whose number
    matches their display, so the launcher writes the number once Xvnc has told it which display it took.
    """
    number = b"" if display is None else str(display).encode()
    return struct.pack(">H", FAMILY_WILD) + _field(b"") + _field(number) + _field(COOKIE_NAME) + _field(cookie)
