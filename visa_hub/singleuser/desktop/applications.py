"""The desktop's applications: XDG desktop entries from a list of directories, for every place that lists them.

One source feeds the application menu (jgmenu, behind the panel's "Applications" button), the window manager's
right-click menu (an openbox pipe-menu), the panel's launcher bar and the Lab launcher's VISA section. To add an
application, drop a ``.desktop`` file into her ``~/.local/share/visa-hub/applications`` or a directory of
``VisaDesktop.application_dirs`` (the menus read them each time they open; the launcher bar when the desktop
starts; Lab's launcher when Lab loads). visa-hub's own keys:

``X-VisaHub-Section``  menu section (default ``Applications``; visa-hub's basics are in ``System``)
``X-VisaHub-Panel``    ``true``: also on the panel's launcher bar
``X-VisaHub-Lab``      ``true``: also in JupyterLab's launcher (it opens the Desktop tab and starts it there)

An entry in an earlier directory wins over one with the same file name in a later one. Pure parsing and
formatting, except :func:`load_applications` (reads files) and :func:`main` (the menus' command).
"""

from __future__ import annotations

import configparser
import html
import os
import shlex
import sys
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import PACKAGE_DIR

#: visa-hub's basics (terminal, file manager, text editor).
BUILTIN_DIR = PACKAGE_DIR / "session" / "applications"
#: Where the desktop's programs find the directories (set by the launcher for the session).
DIRS_VARIABLE = "VISA_DESKTOP_APPLICATION_DIRS"
DEFAULT_SECTION = "Applications"
#: Field codes of the Exec key (the menus start programs without files, so they are dropped).
FIELD_CODES = {"%f", "%F", "%u", "%U", "%i", "%c", "%k", "%d", "%D", "%n", "%N", "%v", "%m"}
ENTRY_GROUP = "Desktop Entry"


class DesktopEntryError(ValueError):
    """A desktop entry that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Application:
    """One launchable program."""

    id: str
    name: str
    command: tuple[str, ...]
    comment: str = ""
    icon: str = ""
    section: str = DEFAULT_SECTION
    panel: bool = False
    lab: bool = False
    terminal: bool = False
    path: str = ""

    def to_json(self) -> dict[str, object]:
        """What the applications API answers (no file system paths)."""
        data = asdict(self)
        data.pop("path")
        data["command"] = list(self.command)
        data["has_icon_file"] = bool(self.icon_file())
        return data

    def icon_file(self) -> Path | None:
        """The icon as a file a browser can show (an absolute .svg/.png path), else ``None``."""
        if self.icon.startswith("/") and self.icon.endswith((".svg", ".png")) and Path(self.icon).is_file():
            return Path(self.icon)
        return None


def _exec_argv(value: str, where: str) -> tuple[str, ...]:
    try:
        argv = shlex.split(value)
    except ValueError as exc:
        raise DesktopEntryError(f"{where}: Exec is not a valid command line ({exc})") from None
    argv = [arg.replace("%%", "%") for arg in argv if arg not in FIELD_CODES]
    if not argv:
        raise DesktopEntryError(f"{where}: Exec is empty")
    return tuple(argv)


def _flag(entry: configparser.SectionProxy, key: str) -> bool:
    return entry.get(key, "false").strip().lower() == "true"


def parse_entry(text: str, path: Path) -> Application | None:
    """The application a desktop entry describes; ``None`` for hidden entries or other types."""
    parser = configparser.ConfigParser(interpolation=None, strict=False, delimiters=("=",))
    parser.optionxform = str  # keys are case-sensitive
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        raise DesktopEntryError(f"{path}: not a desktop entry ({exc.message.splitlines()[0]})") from None
    if not parser.has_section(ENTRY_GROUP):
        raise DesktopEntryError(f"{path}: no [{ENTRY_GROUP}] group")
    entry = parser[ENTRY_GROUP]
    if entry.get("Type", "Application") != "Application" or _flag(entry, "Hidden") or _flag(entry, "NoDisplay"):
        return None
    for key in ("Name", "Exec"):
        if not entry.get(key, "").strip():
            raise DesktopEntryError(f"{path}: [{ENTRY_GROUP}] {key} is missing")
    return Application(
        id=path.name.removesuffix(".desktop"),
        name=entry["Name"].strip(),
        command=_exec_argv(entry["Exec"], f"{path}: [{ENTRY_GROUP}]"),
        comment=entry.get("Comment", "").strip(),
        icon=entry.get("Icon", "").strip(),
        section=entry.get("X-VisaHub-Section", DEFAULT_SECTION).strip() or DEFAULT_SECTION,
        panel=_flag(entry, "X-VisaHub-Panel"),
        lab=_flag(entry, "X-VisaHub-Lab"),
        terminal=_flag(entry, "Terminal"),
        path=str(path),
    )


def load_applications(dirs: Iterable[str | Path]) -> tuple[list[Application], list[str]]:
    """Applications from ``dirs`` (missing directories are skipped) and the problems found, for the log."""
    found: dict[str, Application] = {}
    problems: list[str] = []
    for directory in dirs:
        directory = Path(directory)
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.desktop")):
            if path.name.removesuffix(".desktop") in found:
                continue
            try:
                app = parse_entry(path.read_text(encoding="utf-8"), path)
            except (OSError, UnicodeDecodeError) as exc:
                problems.append(f"{path}: cannot read ({exc})")
                continue
            except DesktopEntryError as exc:
                problems.append(str(exc))
                continue
            if app is not None:
                found[app.id] = app
    return sorted(found.values(), key=_order), problems


def _order(app: Application) -> tuple[int, str, str]:
    return (0 if app.section == "System" else 1, app.section.lower(), app.name.lower())


def _sections(apps: Sequence[Application]) -> list[tuple[str, list[Application]]]:
    sections: dict[str, list[Application]] = {}
    for app in apps:
        sections.setdefault(app.section, []).append(app)
    return list(sections.items())


def _shell_command(app: Application, terminal: Sequence[str]) -> str:
    argv = [*terminal, *app.command] if app.terminal else list(app.command)
    return shlex.join(argv)


def jgmenu_csv(apps: Sequence[Application], terminal: Sequence[str] = ("xterm", "-e")) -> str:
    """The menu as jgmenu's CSV: a titled separator per section, then ``name,command,icon`` lines."""

    def field(value: str) -> str:
        return f'"""{value}"""' if "," in value else value

    lines = []
    for section, members in _sections(apps):
        lines.append(f"^sep({html.escape(section)})")
        for app in members:
            lines.append(",".join([field(html.escape(app.name)), field(_shell_command(app, terminal)),
                                   field(app.icon)]))
    return "\n".join(lines) + "\n"


def openbox_pipe_menu(apps: Sequence[Application], terminal: Sequence[str] = ("xterm", "-e")) -> str:
    """The menu as an openbox pipe-menu: section separators with labels, one Execute item per application."""
    out = ["<openbox_pipe_menu>"]
    for section, members in _sections(apps):
        out.append(f'  <separator label="{html.escape(section)}" />')
        for app in members:
            command = html.escape(_shell_command(app, terminal))
            icon = f' icon="{html.escape(app.icon)}"' if app.icon.startswith("/") else ""  # openbox: files only
            out.append(f'  <item label="{html.escape(app.name)}"{icon}>'
                       f'<action name="Execute"><command>{command}</command></action></item>')
    out.append("</openbox_pipe_menu>")
    return "\n".join(out) + "\n"


def session_dirs(environ: dict[str, str] | None = None) -> list[str]:
    """The directories the desktop session was started with (``VISA_DESKTOP_APPLICATION_DIRS``)."""
    value = (environ if environ is not None else os.environ).get(DIRS_VARIABLE, "")
    return [d for d in value.split(os.pathsep) if d] or [str(BUILTIN_DIR)]


def main(argv: list[str] | None = None) -> int:
    """``python -m visa_hub.singleuser.desktop.applications jgmenu|openbox``: print the menu for that program."""
    argv = sys.argv[1:] if argv is None else argv
    formats = {"jgmenu": jgmenu_csv, "openbox": openbox_pipe_menu}
    if len(argv) != 1 or argv[0] not in formats:
        print(f"usage: python -m {__spec__.name if __spec__ else 'applications'} jgmenu|openbox", file=sys.stderr)
        return 2
    apps, problems = load_applications(session_dirs())
    for problem in problems:
        print(f"visa-desktop menu: {problem}", file=sys.stderr)
    sys.stdout.write(formats[argv[0]](apps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
