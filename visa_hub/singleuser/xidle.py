"""Print how long the X display has had no keyboard or pointer input, in milliseconds (MIT-SCREEN-SAVER).

``python -m visa_hub.singleuser.xidle`` with ``DISPLAY`` and ``XAUTHORITY`` set: one line, then exit. Run as a
child process so that the Jupyter server's own environment (``XAUTHORITY``) is never touched.
"""

from __future__ import annotations

import sys


def idle_milliseconds() -> int:
    from Xlib import display
    from Xlib.ext import screensaver  # noqa: F401  (registers the extension's methods)

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
