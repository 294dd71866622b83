"""The desktop's application menu: app versions as XDG desktop entries and as an openbox pipe menu (pure).

Each entry starts ``visa-app run NAME@VERSION``; command-line apps open in a terminal. The Jupyter server
writes the entries into a directory the desktop's menus read (:func:`sync_desktop_entries`), anew when the
catalog changes.
"""

from __future__ import annotations

import html
import shlex
from pathlib import Path

from .catalog import AppCatalog, AppVersion

SECTION = "Apps"


def _visible(catalog: AppCatalog, instrument: str | None) -> list[AppVersion]:
    return [v for app in catalog.apps if app.serves(instrument) for v in app.versions]


def desktop_entry(version: AppVersion, command: list[str]) -> str:
    argv = [*command, "run", version.ref]
    comment = (version.description or f"{version.title} {version.version}").replace("\n", " ")
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        f"Name={version.label}",
        f"Comment={comment}",
        f"Exec={' '.join(shlex.quote(a) for a in argv)}",
        f"Terminal={'false' if version.kind == 'desktop' else 'true'}",
        "Categories=Science;",
        f"X-VisaHub-Section={SECTION}",
        f"X-VisaHub-App={version.ref}",
        f"X-VisaHub-UserProvided={'true' if version.user_provided else 'false'}",
        "",
    ])


def desktop_entries(catalog: AppCatalog, instrument: str | None, command: list[str]) -> dict[str, str]:
    """File name → desktop entry text, for every app version the session's instrument may use."""
    return {f"visa-app-{v.app}-{v.version}{'-user' if v.user_provided else ''}.desktop": desktop_entry(v, command)
            for v in _visible(catalog, instrument)}


def sync_desktop_entries(directory: Path, entries: dict[str, str]) -> bool:
    """Make ``directory`` hold exactly ``entries`` (ours: ``visa-app-*.desktop``); True when something changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = False
    for path in directory.glob("visa-app-*.desktop"):
        if path.name not in entries:
            path.unlink()
            changed = True
    for name, text in entries.items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed = True
    return changed


def openbox_pipe_menu(catalog: AppCatalog, instrument: str | None, command: list[str], terminal: str = "xterm") -> str:
    """An openbox pipe menu: a submenu per app, an item per version."""
    lines = ["<openbox_pipe_menu>"]
    for app in catalog.apps:
        if not app.serves(instrument):
            continue
        title = html.escape(app.title + (" (your image)" if app.user_provided else ""), quote=True)
        lines.append(f'  <menu id="visa-app-{html.escape(app.name, quote=True)}" label="{title}">')
        for version in app.versions:
            argv = [*command, "run", version.ref]
            if version.kind != "desktop":
                argv = [terminal, "-hold", "-e", *argv]
            execute = html.escape(" ".join(shlex.quote(a) for a in argv))
            label = html.escape(version.label, quote=True)
            lines.append(f'    <item label="{label}"><action name="Execute"><execute>{execute}</execute>'
                         "</action></item>")
        lines.append("  </menu>")
    lines.append("</openbox_pipe_menu>")
    return "\n".join(lines) + "\n"
