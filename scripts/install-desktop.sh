#!/usr/bin/env bash
# Install the desktop an instance shows in its Desktop tab (Debian 12, as root; idempotent).
#
#   TigerVNC's Xvnc (the X server and VNC server in one, listening on a unix socket only),
#   openbox (window manager) + tint2 (panel: Applications button, launcher bar, windows, clock) + jgmenu (the
#   application menu), xterm (terminal), pcmanfm (file manager and the desktop's icons), l3afpad (text editor),
#   setxkbmap + XKB data (the keyboard layout choice), the Adwaita icons the menus use, fonts,
#   xdotool and xclip (the tests and the benchmark drive X and its clipboard with them).
#
# Usage: scripts/install-desktop.sh (as root, or a user with sudo)
set -euo pipefail

PACKAGES=(
  tigervnc-standalone-server
  openbox
  tint2
  jgmenu
  xterm
  pcmanfm
  l3afpad
  x11-xkb-utils
  xkb-data
  adwaita-icon-theme
  xdotool
  xclip
  x11-utils
  x11-xserver-utils
  xfonts-base
  fonts-dejavu-core
  dbus-x11
)

source "$(dirname "$0")/lib.sh"

apt_ensure "${PACKAGES[@]}"
command -v Xvnc >/dev/null || { echo "install-desktop.sh: Xvnc still missing after install" >&2; exit 1; }
