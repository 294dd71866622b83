"""The desktop's keyboard layout: the choices (XKB's list), the current one, switching, and her saved choice.

The Desktop tab sends the physical keys (noVNC uses QEMU's extended key events with TigerVNC), so the layout on
the X server decides which character a key gives: it must match her keyboard. ``setxkbmap`` switches it; the
choice is saved in ``~/.config/visa-hub/desktop.json`` and applied when her desktop starts next time.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

XKB_RULES = Path("/usr/share/X11/xkb/rules/evdev.lst")
PREFERENCES = Path(".config") / "visa-hub" / "desktop.json"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class KeyboardError(ValueError):
    """A layout that cannot be set; the message is for people."""


@dataclass(frozen=True)
class Layout:
    name: str
    description: str


def parse_layouts(text: str) -> list[Layout]:
    """The ``! layout`` section of an XKB rules list (``evdev.lst``), sorted by description."""
    layouts, inside = [], False
    for line in text.splitlines():
        if line.startswith("!"):
            inside = line.strip() == "! layout"
            continue
        if inside and line.strip():
            name, _, description = line.strip().partition(" ")
            if _NAME.match(name):
                layouts.append(Layout(name, description.strip() or name))
    return sorted(layouts, key=lambda layout: layout.description.lower())


def available_layouts(rules: Path = XKB_RULES) -> list[Layout]:
    """The layouts this machine's XKB data knows; empty when it is not installed."""
    try:
        return parse_layouts(rules.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return []


def parse_query(text: str) -> dict[str, str]:
    """``setxkbmap -query`` output → ``{"layout": "us", "variant": "", ...}``."""
    result = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            result[key.strip()] = value.strip()
    return result


def _run(args: list[str], env: Mapping[str, str]) -> str:
    try:
        done = subprocess.run(args, env=dict(env), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KeyboardError(f"setxkbmap could not run: {exc}") from None
    if done.returncode != 0:
        raise KeyboardError(f"setxkbmap failed: {done.stderr.strip() or done.returncode}")
    return done.stdout


def current_layout(env: Mapping[str, str]) -> str:
    """The X server's layout now (``env`` has DISPLAY and XAUTHORITY)."""
    return parse_query(_run(["setxkbmap", "-query"], env)).get("layout", "")


def set_layout(name: str, env: Mapping[str, str], rules: Path = XKB_RULES) -> None:
    """Switch the X server to layout ``name``; an unknown name is refused before anything runs."""
    known = {layout.name for layout in available_layouts(rules)}
    if name not in known:
        raise KeyboardError(f"Unknown keyboard layout {name!r}.")
    _run(["setxkbmap", "-layout", name], env)


def load_preference(home: Path) -> str | None:
    """Her saved layout, or ``None``."""
    try:
        value = json.loads((home / PREFERENCES).read_text()).get("keyboard_layout")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and _NAME.match(value) else None


def save_preference(home: Path, name: str) -> None:
    """Remember ``name`` for her next desktop (other keys in the file are kept)."""
    path = home / PREFERENCES
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    data["keyboard_layout"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)
