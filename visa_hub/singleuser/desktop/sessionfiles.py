"""The desktop session's configuration, written into the desktop's private directory when it starts.

From visa-hub's templates in ``session/`` and the session's facts (who she is, the experiment, the applications):
the panel (tint2), the application menu (jgmenu), openbox's configuration (Debian's, with readable fonts, one
workspace and our menu), and ``bin/visa-terminal`` (xterm running her shell; for bash with ``session/bashrc``,
which puts her hub name into the prompt where the instance runs under another unix account).
"""

from __future__ import annotations

import os
import re
import shlex
import string
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .applications import DIRS_VARIABLE, Application

SESSION_DIR = Path(__file__).resolve().parent / "session"
SYSTEM_OPENBOX_RC = Path("/etc/xdg/openbox/rc.xml")
OPENBOX_NS = "http://openbox.org/3.4/rc"
FONT = "DejaVu Sans"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class SessionFiles:
    """Paths of the generated files."""

    bin_dir: Path
    tint2rc: Path
    jgmenurc: Path
    openbox_rc: Path | None
    openbox_menu: Path


def user_label(environ: Mapping[str, str]) -> tuple[str, str]:
    """The panel's label and tooltip: ``alice · LOKI-2026-042`` and who/what in a sentence."""
    user = _CONTROL.sub("", environ.get("JUPYTERHUB_USER", "")) or _CONTROL.sub("", environ.get("USER", ""))
    experiment = _CONTROL.sub("", environ.get("VISA_EXPERIMENT", ""))
    label = " · ".join(part for part in (user, experiment) if part) or "VISA desktop"
    tooltip = f"Logged in to visa-hub as {user}" if user else "VISA desktop"
    if experiment:
        tooltip += f", instance for experiment {experiment}"
    return label, tooltip


def _fill(template: str, **values: str) -> str:
    return string.Template(template).substitute(values)


def tint2rc(apps: Sequence[Application], menu_command: str, environ: Mapping[str, str]) -> str:
    """The panel: Applications button, launcher bar (entries with ``X-VisaHub-Panel=true``), tasks, label, clock."""
    label, tooltip = user_label(environ)
    launchers = "\n".join(f"launcher_item_app = {app.path}" for app in apps if app.panel and app.path)
    return _fill((SESSION_DIR / "tint2rc").read_text(), menu_command=menu_command, launchers=launchers,
                 user_label=label, user_tooltip=tooltip)


def jgmenurc(csv_command: str) -> str:
    """The application menu's configuration: its entries come from ``csv_command`` each time it opens."""
    return _fill((SESSION_DIR / "jgmenurc").read_text(), csv_command=csv_command)


def openbox_menu(pipe_command: str) -> str:
    """Openbox's menus: the right-click root menu is a pipe-menu of the same applications."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<openbox_menu xmlns="http://openbox.org/">\n'
        f'  <menu id="root-menu" label="Applications" execute="{_xml_attr(pipe_command)}" />\n'
        "</openbox_menu>\n"
    )


def _xml_attr(value: str) -> str:
    return value.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;")


def openbox_rc(system_rc: str, menu_file: Path) -> str:
    """Debian's openbox configuration with readable fonts, one workspace and our menu file only."""
    ET.register_namespace("", OPENBOX_NS)
    root = ET.fromstring(system_rc)
    ns = {"ob": OPENBOX_NS}
    for font in root.iterfind("ob:theme/ob:font", ns):
        name, size = font.find("ob:name", ns), font.find("ob:size", ns)
        if name is not None:
            name.text = FONT
        if size is not None:
            size.text = "10"
    number = root.find("ob:desktops/ob:number", ns)
    if number is not None:
        number.text = "1"
    menu = root.find("ob:menu", ns)
    if menu is not None:
        for old in menu.findall("ob:file", ns):
            menu.remove(old)
        entry = ET.Element(f"{{{OPENBOX_NS}}}file")
        entry.text = str(menu_file)
        menu.insert(0, entry)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def bin_dir_of(directory: Path) -> Path:
    """The desktop's own programs (``visa-terminal``) in its private ``directory``."""
    return directory / "bin"


def terminal_script(bashrc: Path) -> str:
    """``visa-terminal``: xterm with her login shell; bash gets visa-hub's rcfile (her setup, then her name)."""
    return f"""#!/bin/sh
# visa-hub desktop terminal: xterm running her shell; bash reads visa-hub's rcfile (her ~/.bashrc first).
shell=${{SHELL:-/bin/sh}}
if [ "$#" -gt 0 ] && [ "$1" = "-e" ]; then exec xterm "$@"; fi
case "$shell" in
  */bash) exec xterm "$@" -e "$shell" --rcfile {shlex.quote(str(bashrc))} -i ;;
  *) exec xterm "$@" ;;
esac
"""


def session_environment(base: Mapping[str, str], display: str, xauthority: str, bin_dir: Path,
                        application_dirs: Sequence[str]) -> dict[str, str]:
    """The environment of every program on the desktop (the session's and those started from Lab).

    No hub or server tokens; the desktop's display; ``visa-terminal`` on PATH; visa-hub's GTK and file manager
    defaults after her own ``~/.config``; the application directories for the menus.
    """
    env = {k: v for k, v in base.items() if not k.startswith(("JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"))}
    env.pop("WAYLAND_DISPLAY", None)
    xdg_dirs = base.get("XDG_CONFIG_DIRS") or "/etc/xdg"
    env |= {
        "DISPLAY": display,
        "XAUTHORITY": xauthority,
        "PATH": f"{bin_dir}{os.pathsep}{base.get('PATH', os.defpath)}",
        "XDG_CONFIG_DIRS": f"{SESSION_DIR / 'xdg'}{os.pathsep}{xdg_dirs}",
        DIRS_VARIABLE: os.pathsep.join(application_dirs),
    }
    return env


def seed_desktop_icons_config(home: Path) -> Path | None:
    """Give pcmanfm's ``visa-hub`` profile our desktop look unless she has her own; the file written, if any."""
    target = home / ".config" / "pcmanfm" / "visa-hub" / "desktop-items-0.conf"
    if target.exists():
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((SESSION_DIR / "desktop-items.conf").read_text())
    return target


def write_session_files(directory: Path, apps: Sequence[Application], python: str,
                        environ: Mapping[str, str] | None = None,
                        system_openbox_rc: Path = SYSTEM_OPENBOX_RC) -> SessionFiles:
    """Write the session's configuration into ``directory`` (the desktop's private one) and say where."""
    environ = os.environ if environ is None else environ
    menu_module = [python, "-m", "visa_hub.singleuser.desktop.applications"]
    bin_dir = bin_dir_of(directory)
    bin_dir.mkdir(mode=0o700, exist_ok=True)
    terminal = bin_dir / "visa-terminal"
    terminal.write_text(terminal_script(SESSION_DIR / "bashrc"))
    terminal.chmod(0o700)

    files = SessionFiles(
        bin_dir=bin_dir,
        tint2rc=directory / "tint2rc",
        jgmenurc=directory / "jgmenurc",
        openbox_rc=None,
        openbox_menu=directory / "openbox-menu.xml",
    )
    files.jgmenurc.write_text(jgmenurc(shlex.join([*menu_module, "jgmenu"])))
    menu_command = shlex.join(["jgmenu", f"--config-file={files.jgmenurc}"])
    files.tint2rc.write_text(tint2rc(apps, menu_command, environ))
    files.openbox_menu.write_text(openbox_menu(shlex.join([*menu_module, "openbox"])))
    try:
        system_rc = system_openbox_rc.read_text()
    except OSError:
        return files  # openbox then uses its own defaults and finds no visa-hub menu: still a desktop
    rc_path = directory / "openbox-rc.xml"
    rc_path.write_text(openbox_rc(system_rc, files.openbox_menu))
    return SessionFiles(**{**files.__dict__, "openbox_rc": rc_path})
