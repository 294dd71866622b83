#!/usr/bin/env bash
# Install the desktop an instance shows in its Desktop tab (Debian 12, as root; idempotent).
#
#   TigerVNC's Xvnc (the X server and VNC server in one, listening on a unix socket only),
#   openbox (window manager) + tint2 (panel with a menu button), xterm (terminal), pcmanfm (file manager),
#   xdotool and xclip (the tests and the benchmark drive X and its clipboard with them), fonts.
#
# Usage: scripts/install-desktop.sh (as root, or a user with sudo)
set -euo pipefail

PACKAGES=(
  tigervnc-standalone-server
  openbox
  tint2
  xterm
  pcmanfm
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
