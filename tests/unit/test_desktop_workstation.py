"""The desktop's workstation parts that are pure: application entries and menus, keyboard layouts, session files."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from visa_hub.singleuser.desktop import keyboard
from visa_hub.singleuser.desktop.applications import (
    BUILTIN_DIR,
    DesktopEntryError,
    jgmenu_csv,
    load_applications,
    openbox_pipe_menu,
    parse_entry,
)
from visa_hub.singleuser.desktop.sessionfiles import (
    openbox_rc,
    seed_desktop_icons_config,
    session_environment,
    tint2rc,
    user_label,
    write_session_files,
)

MCSTAS = """[Desktop Entry]
Type=Application
Name=McStas, neutron ray-tracing
Comment=Simulate the LoKI beamline
Exec=mcgui %F
Icon=/opt/apps/mcstas.svg
X-VisaHub-Section=Simulation
X-VisaHub-Panel=true
X-VisaHub-Lab=true
"""


def _entry(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.desktop"
    path.write_text(text)
    return path


def test_builtin_applications_are_terminal_files_and_editor_on_the_panel() -> None:
    apps, problems = load_applications([BUILTIN_DIR])
    assert problems == []
    assert [(a.name, a.section, a.panel, a.lab) for a in apps] == [
        ("Files", "System", True, False),
        ("Terminal", "System", True, False),
        ("Text editor", "System", True, False),
    ]
    assert {a.command[0] for a in apps} == {"pcmanfm", "visa-terminal", "l3afpad"}


def test_an_app_directory_adds_entries_and_replaces_builtins_by_file_name(tmp_path: Path) -> None:
    extra = tmp_path / "apps"
    _entry(extra, "mcstas", MCSTAS)
    _entry(extra, "visa-editor", "[Desktop Entry]\nName=Better editor\nExec=better-editor\n")
    apps, problems = load_applications([extra, BUILTIN_DIR])
    assert problems == []
    by_id = {a.id: a for a in apps}
    assert by_id["visa-editor"].command == ("better-editor",)
    mcstas = by_id["mcstas"]
    assert mcstas.command == ("mcgui",)  # field codes dropped: the menus start programs without files
    assert (mcstas.section, mcstas.panel, mcstas.lab) == ("Simulation", True, True)
    assert [a.section for a in apps][-1] == "Simulation"  # visa-hub's basics first


def test_broken_and_hidden_entries_are_reported_or_skipped_never_fatal(tmp_path: Path) -> None:
    apps_dir = tmp_path / "apps"
    _entry(apps_dir, "no-exec", "[Desktop Entry]\nName=Nothing to run\n")
    _entry(apps_dir, "not-ini", "just text\n")
    _entry(apps_dir, "hidden", "[Desktop Entry]\nName=Hidden\nExec=x\nNoDisplay=true\n")
    _entry(apps_dir, "link", "[Desktop Entry]\nType=Link\nName=Web\nURL=https://ess.eu\n")
    apps, problems = load_applications([apps_dir, tmp_path / "missing"])
    assert apps == []
    assert len(problems) == 2
    assert any("no-exec.desktop" in p and "Exec is missing" in p for p in problems)
    assert any("not-ini.desktop" in p for p in problems)
    with pytest.raises(DesktopEntryError, match=r"quote\.desktop.*Exec"):
        parse_entry('[Desktop Entry]\nName=Q\nExec=run "unclosed\n', Path("quote.desktop"))


def test_menus_list_sections_and_quote_what_their_formats_need(tmp_path: Path) -> None:
    _entry(tmp_path, "mcstas", MCSTAS)
    _entry(tmp_path, "shell", "[Desktop Entry]\nName=R & D <shell>\nExec=htop\nTerminal=true\n")
    apps, _ = load_applications([tmp_path, BUILTIN_DIR])
    csv = jgmenu_csv(apps)
    assert csv.splitlines()[0] == "^sep(System)"
    assert '"""McStas, neutron ray-tracing""",mcgui,/opt/apps/mcstas.svg' in csv  # commas triple-quoted
    assert "R &amp; D &lt;shell&gt;,xterm -e htop," in csv  # pango markup escaped; terminal programs in xterm
    menu = ET.fromstring(openbox_pipe_menu(apps))
    labels = [e.get("label") for e in menu]
    assert labels[0] == "System" and "Simulation" in labels and "R & D <shell>" in labels
    commands = [c.text for c in menu.iter("command")]
    assert "mcgui" in commands and "xterm -e htop" in commands


def test_keyboard_layouts_from_xkb_rules_and_query_parsing() -> None:
    rules = "! model\n  pc105  Generic 105-key PC\n\n! layout\n  us  English (US)\n  de  German\n  bad;name  X\n\n" \
            "! variant\n  nodeadkeys  de: German (no dead keys)\n"
    layouts = keyboard.parse_layouts(rules)
    assert [(layout.name, layout.description) for layout in layouts] == [("us", "English (US)"), ("de", "German")]
    assert keyboard.parse_query("rules:      evdev\nmodel:      pc105\nlayout:     de\n")["layout"] == "de"


def test_keyboard_preference_is_kept_with_other_keys(tmp_path: Path) -> None:
    assert keyboard.load_preference(tmp_path) is None
    path = tmp_path / keyboard.PREFERENCES
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"other": 1}))
    keyboard.save_preference(tmp_path, "fr")
    assert json.loads(path.read_text()) == {"other": 1, "keyboard_layout": "fr"}
    assert keyboard.load_preference(tmp_path) == "fr"
    path.write_text('{"keyboard_layout": "-display :0"}')  # never an option for setxkbmap
    assert keyboard.load_preference(tmp_path) is None


def test_unknown_layout_is_refused_before_setxkbmap_runs(tmp_path: Path) -> None:
    rules = tmp_path / "evdev.lst"
    rules.write_text("! layout\n  us  English (US)\n")
    with pytest.raises(keyboard.KeyboardError, match="Unknown keyboard layout"):
        keyboard.set_layout("-rules", {"DISPLAY": ":99"}, rules=rules)


def test_panel_names_her_and_the_experiment_and_lists_panel_apps() -> None:
    apps, _ = load_applications([BUILTIN_DIR])
    text = tint2rc(apps, "jgmenu --config-file=/x/jgmenurc",
                   {"JUPYTERHUB_USER": "alice", "VISA_EXPERIMENT": "LOKI-2026-042\nbutton = new"})
    assert "button_text = alice · LOKI-2026-042button = new" in text  # no line breaks smuggled into tint2rc
    assert text.count("launcher_item_app = ") == 3
    assert "button_lclick_command = jgmenu --config-file=/x/jgmenurc" in text
    assert user_label({}) == ("VISA desktop", "VISA desktop")


def test_openbox_config_keeps_debians_bindings_with_our_fonts_and_menu(tmp_path: Path) -> None:
    system = """<?xml version="1.0"?>
<openbox_config xmlns="http://openbox.org/3.4/rc">
  <theme><name>Clearlooks</name><font place="ActiveWindow"><name>sans</name><size>8</size></font></theme>
  <desktops><number>4</number></desktops>
  <keyboard><keybind key="A-F4"><action name="Close"/></keybind></keyboard>
  <menu><file>/var/lib/openbox/debian-menu.xml</file><file>menu.xml</file></menu>
</openbox_config>"""
    root = ET.fromstring(openbox_rc(system, tmp_path / "menu.xml"))
    ns = {"ob": "http://openbox.org/3.4/rc"}
    assert root.find("ob:theme/ob:font/ob:name", ns).text == "DejaVu Sans"
    assert root.find("ob:theme/ob:font/ob:size", ns).text == "10"
    assert root.find("ob:desktops/ob:number", ns).text == "1"
    assert [f.text for f in root.findall("ob:menu/ob:file", ns)] == [str(tmp_path / "menu.xml")]
    assert root.find("ob:keyboard/ob:keybind", ns).get("key") == "A-F4"


def test_session_files_and_environment(tmp_path: Path) -> None:
    apps, _ = load_applications([BUILTIN_DIR])
    files = write_session_files(tmp_path, apps, "/venv/bin/python", {"JUPYTERHUB_USER": "alice"},
                                system_openbox_rc=tmp_path / "no-such-rc.xml")
    assert files.openbox_rc is None  # no system config: openbox's own defaults
    assert "csv_cmd = /venv/bin/python -m visa_hub.singleuser.desktop.applications jgmenu" \
        in files.jgmenurc.read_text()
    assert 'execute="/venv/bin/python -m visa_hub.singleuser.desktop.applications openbox"' \
        in files.openbox_menu.read_text()
    terminal = files.bin_dir / "visa-terminal"
    assert terminal.stat().st_mode & 0o100
    env = session_environment({"PATH": "/usr/bin", "JUPYTERHUB_API_TOKEN": "secret", "HOME": "/h"}, ":3",
                              "/x/auth", files.bin_dir, ["/apps"])
    assert "JUPYTERHUB_API_TOKEN" not in env
    assert env["DISPLAY"] == ":3" and env["PATH"].startswith(f"{files.bin_dir}:")
    assert env["XDG_CONFIG_DIRS"].endswith(":/etc/xdg") and env["VISA_DESKTOP_APPLICATION_DIRS"] == "/apps"


def test_desktop_icons_config_is_seeded_once_and_hers_wins(tmp_path: Path) -> None:
    written = seed_desktop_icons_config(tmp_path)
    assert written is not None and "desktop_bg=#23415f" in written.read_text()
    written.write_text("[*]\ndesktop_bg=#000000\n")
    assert seed_desktop_icons_config(tmp_path) is None
    assert written.read_text() == "[*]\ndesktop_bg=#000000\n"
