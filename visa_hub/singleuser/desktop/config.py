"""The desktop's knobs (``c.VisaDesktop.*`` in the Jupyter Server config) and the spec handed to the launcher."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from traitlets import Bool, Float, Int, List, Unicode, validate
from traitlets.config import Configurable

PACKAGE_DIR = Path(__file__).resolve().parent
#: Her own desktop entries, relative to her home (read first by the menus and the Lab launcher).
USER_APPLICATIONS = Path(".local") / "share" / "visa-hub" / "applications"
#: Unix socket paths longer than this do not fit in ``sockaddr_un``.
MAX_SOCKET_PATH = 107


@dataclass(frozen=True)
class LaunchSpec:
    """Everything :mod:`visa_hub.singleuser.desktop.launch` needs, written as JSON into the private directory."""

    xvnc: str
    socket: str
    xauthority: str
    log: str
    geometry: str
    depth: int
    desktop_name: str
    xvnc_args: list[str]
    window_manager: list[str]
    panel: list[str]
    autostart: list[list[str]]
    background: str
    cwd: str
    startup_timeout: float
    application_dirs: list[str] = field(default_factory=list)
    desktop_icons: list[str] = field(default_factory=list)
    keyboard_layout: str = ""


class VisaDesktop(Configurable):
    """The remote desktop of an instance: TigerVNC's Xvnc on a private unix socket with a light session."""

    enabled = Bool(True, config=True, help="Offer the Desktop (Xvnc over jupyter-server-proxy) on this server.")
    xvnc = Unicode(
        "Xvnc", config=True,
        help="The Xvnc program (TigerVNC), a name looked up on PATH or an absolute path.",
    )
    geometry = Unicode(
        "1280x800", config=True,
        help="Screen size Xvnc starts with (WIDTHxHEIGHT); the Desktop tab then resizes it to fit the tab.",
    )
    depth = Int(24, config=True, help="Colour depth of the X screen (16, 24 or 32).")
    desktop_name = Unicode("VISA desktop", config=True, help="Name of the desktop as VNC clients show it.")
    xvnc_args = List(
        Unicode(), config=True,
        help="Extra Xvnc arguments, e.g. ['-MaxCutText', '1048576']. Do not add TCP listeners: "
             "the unix socket is the desktop's only door.",
    )
    window_manager = List(
        Unicode(), ["openbox"], config=True,
        help="Window manager command; [] for none. openbox gets visa-hub's configuration (fonts, one workspace, "
             "the application menu on a right click) unless the command names its own --config-file.",
    )
    panel = List(
        Unicode(), ["tint2"], config=True,
        help="Panel command; [] for none. tint2 gets visa-hub's panel (Applications menu, launcher bar, windows, "
             "her name and experiment, clock) unless the command names its own -c file.",
    )
    autostart = List(
        List(Unicode()), [["visa-terminal"]], config=True,
        help="Programs started once the desktop is up, each a command list (default: a terminal; "
             "visa-terminal is xterm with her shell and her name in the prompt).",
    )
    desktop_icons = List(
        Unicode(), ["pcmanfm", "--desktop", "--profile", "visa-hub"], config=True,
        help="Program that draws the background and shows ~/Desktop's files as icons (files uploaded from the "
             "browser land there); [] for none (then the background is a plain colour).",
    )
    application_dirs = List(
        Unicode(), config=True,
        help="Directories of XDG desktop entries (*.desktop) for the desktop's application menu, its launcher "
             "bar (X-VisaHub-Panel=true) and the Lab launcher (X-VisaHub-Lab=true), read after her own "
             "~/.local/share/visa-hub/applications and before visa-hub's basics (terminal, files, text editor); "
             "an entry replaces one of the same file name read later.",
    )
    keyboard_layout = Unicode(
        "", config=True,
        help="XKB layout the desktop starts with (e.g. 'de'); '' for her last choice in the Desktop tab, "
             "else Xvnc's default (us).",
    )
    background = Unicode(
        "#23415f", config=True,
        help="Background colour (xsetroot -solid) while the desktop starts, and for good when desktop_icons is []; "
             "'' for none.",
    )
    startup_timeout = Float(
        20.0, config=True, help="Seconds to wait for Xvnc to accept connections before reporting a failure.",
    )
    runtime_dir = Unicode(
        "", config=True,
        help="Directory in which the desktop's private (0700) directory with its socket is created "
             "(default: the system's temporary directory). Keep it short: socket paths are limited to 107 bytes.",
    )

    @validate("geometry")
    def _valid_geometry(self, proposal):
        width, _, height = proposal["value"].partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise ValueError(f"VisaDesktop.geometry must be WIDTHxHEIGHT, not {proposal['value']!r}")
        return proposal["value"]

    def xvnc_path(self) -> str | None:
        """Where Xvnc is, or ``None`` when it is not installed."""
        return shutil.which(self.xvnc)

    def missing_message(self) -> str:
        """What to tell the user when the desktop cannot start because Xvnc is missing."""
        return (
            f"The desktop cannot start: {self.xvnc!r} (TigerVNC) is not installed on this instance. "
            "An administrator installs it with scripts/install-desktop.sh (Debian package "
            "tigervnc-standalone-server)."
        )

    def make_private_dir(self) -> Path:
        """A fresh directory only this user can enter; it holds the socket, the Xauthority file and the log."""
        parent = self.runtime_dir or None
        private = Path(tempfile.mkdtemp(prefix="visa-desktop-", dir=parent))
        os.chmod(private, 0o700)
        socket = private / "vnc.sock"
        if len(os.fsencode(socket)) > MAX_SOCKET_PATH:
            raise ValueError(f"VisaDesktop.runtime_dir is too long for a unix socket path: {socket}")
        return private

    def launch_spec(self, private_dir: Path, cwd: str) -> LaunchSpec:
        """The launcher's instructions for a desktop living in ``private_dir`` and opening in ``cwd``."""
        return LaunchSpec(
            xvnc=self.xvnc_path() or self.xvnc,
            socket=str(private_dir / "vnc.sock"),
            xauthority=str(private_dir / "Xauthority"),
            log=str(private_dir / "desktop.log"),
            geometry=self.geometry,
            depth=self.depth,
            desktop_name=self.desktop_name,
            xvnc_args=list(self.xvnc_args),
            window_manager=list(self.window_manager),
            panel=list(self.panel),
            autostart=[list(cmd) for cmd in self.autostart],
            background=self.background,
            cwd=cwd,
            startup_timeout=self.startup_timeout,
            application_dirs=self.all_application_dirs(),
            desktop_icons=list(self.desktop_icons),
            keyboard_layout=self.keyboard_layout,
        )

    def all_application_dirs(self) -> list[str]:
        """Her own (``~/.local/share/visa-hub/applications``), the configured ones, then visa-hub's basics."""
        return [str(Path.home() / USER_APPLICATIONS), *self.application_dirs,
                str(PACKAGE_DIR / "session" / "applications")]


def write_spec(spec: LaunchSpec, path: Path) -> None:
    """Write ``spec`` as JSON readable by this user only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(asdict(spec), out, indent=1)


def read_spec(path: Path) -> LaunchSpec:
    """The spec :func:`write_spec` wrote."""
    return LaunchSpec(**json.loads(Path(path).read_text()))
