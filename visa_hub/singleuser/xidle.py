"""Print how long the X display has had no keyboard or pointer input, in milliseconds (MIT-SCREEN-SAVER).

``python -m visa_hub.singleuser.xidle`` with ``DISPLAY`` and ``XAUTHORITY`` set: one line, then exit. Run as a
child process so that the Jupyter server's own environment (``XAUTHORITY``) is never touched.
"""

from __future__ import annotations

import sys

FAMILY_WILD = 65535  # an Xauthority record for any host


def _use_wildcard_cookies() -> None:
    """Let Xlib use the desktop's Xauthority record, which is for any host ("FamilyWild", as xauth writes for
    ``xauth add :N``): python-xlib only matches records of this host's name, libX11 matches both."""
    import os

    from Xlib import xauth
    from Xlib.support import unix_connect

    path = os.environ.get("XAUTHORITY")
    if not path:
        return
    entries = xauth.Xauthority(path).entries
    found = unix_connect.get_auth

    def get_auth(sock, dname, protocol, host, dno):
        for family, _address, number, name, data in entries:
            if family == FAMILY_WILD and number in (b"", str(dno).encode()):
                return name, data
        return found(sock, dname, protocol, host, dno)

    unix_connect.get_auth = get_auth


def idle_milliseconds() -> int:
    from Xlib import display
    from Xlib.ext import screensaver  # noqa: F401  (registers the extension's methods)

    _use_wildcard_cookies()
    connection = display.Display()
    try:
        return int(connection.screen().root.screensaver_query_info().idle)
    finally:
        connection.close()


def main() -> int:
    try:
        print(idle_milliseconds())
    except Exception as exc:  # the desktop is gone or refuses us: say why, the caller logs it
        print(f"cannot read the desktop's idle time: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
