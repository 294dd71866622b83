"""Desktop input counts as activity: the instance is not stopped for inactivity while she works on the desktop.

Every ``interval`` seconds, while the desktop runs, the X server's idle time (keyboard and pointer, through
:mod:`.xidle`) gives the time of the last input; it goes into the server's ``visa_desktop_last_activity``
setting, which Jupyter Server counts in ``last_activity()`` and JupyterHub's single-user extension reports to
the hub — where the sessions service reads it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import struct
import sys
from pathlib import Path
from typing import Any

from traitlets import Float
from traitlets.config import Configurable

SETTING = "visa_desktop_last_activity"


class VisaActivity(Configurable):
    """How the instance notices desktop input."""

    desktop_poll_seconds = Float(
        60.0, config=True,
        help="Seconds between two looks at the desktop's idle time (0: desktop input is not reported). "
             "Default: $VISA_DESKTOP_ACTIVITY_SECONDS, else 60.",
    )

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        if "VISA_DESKTOP_ACTIVITY_SECONDS" in os.environ and "desktop_poll_seconds" not in kwargs:
            self.desktop_poll_seconds = float(os.environ["VISA_DESKTOP_ACTIVITY_SECONDS"])


def display_number(xauthority: bytes) -> int | None:
    """The display number of the first numbered record of an Xauthority file (the launcher writes one)."""
    offset = 0
    while offset + 2 <= len(xauthority):
        offset += 2  # family
        fields = []
        for _ in range(4):  # address, number, name, data
            (length,) = struct.unpack_from(">H", xauthority, offset)
            fields.append(xauthority[offset + 2: offset + 2 + length])
            offset += 2 + length
        if fields[1].isdigit():
            return int(fields[1])
    return None


async def desktop_idle_seconds(xauthority: Path) -> float | None:
    """Seconds since the desktop's last input; ``None`` when it is not running or cannot be asked."""
    try:
        number = display_number(xauthority.read_bytes())
    except OSError:
        return None
    if number is None:
        return None
    env = {**os.environ, "DISPLAY": f":{number}", "XAUTHORITY": str(xauthority)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "visa_hub.singleuser.xidle", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    text = out.decode().strip()
    return int(text) / 1000 if proc.returncode == 0 and text.isdigit() else None


async def follow_desktop(serverapp: Any, desktop: Any, interval: float) -> None:
    """Forever: record the desktop's last input time in the server's activity settings."""
    settings = serverapp.web_app.settings
    while True:
        await asyncio.sleep(interval)
        if not desktop.running():
            continue
        try:
            idle = await desktop_idle_seconds(Path(desktop.spec.xauthority))
        except Exception:
            serverapp.log.exception("visa-hub: could not read the desktop's idle time")
            continue
        if idle is None:
            continue
        last_input = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=idle)
        previous = settings.get(SETTING)
        if last_input > settings["started"] and (previous is None or last_input > previous + dt.timedelta(seconds=1)):
            settings[SETTING] = last_input
            serverapp.log.info("visa-hub: desktop input at %s", last_input.isoformat())


def setup_activity(serverapp: Any, desktop: Any) -> None:
    """Start following desktop input (if the desktop exists and the interval is not 0)."""
    interval = VisaActivity(parent=serverapp).desktop_poll_seconds
    if desktop is None or interval <= 0:
        return
    serverapp.io_loop.add_callback(follow_desktop, serverapp, desktop, interval)
