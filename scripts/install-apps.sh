#!/usr/bin/env bash
# Install what running and building apptainer app images needs on Debian 12 (as root; idempotent).
#
#   squashfs-tools   mksquashfs/unsquashfs: build an image's root file system, unpack one without FUSE
#   siftool          Sylabs' SIF tool: wrap a squashfs into a real SIF file (test images, `visa-app` tests)
#   squashfuse fuse3 mount a SIF's squashfs partition without root (squashfuse -o offset=N; fusermount3)
#   bubblewrap       run a program inside the mounted image with the same binds apptainer gives
#   busybox-static   the shell and tools of the small test images
#   python3-ipykernel  the Debian Python kernel copied into the test images (a kernel that runs in a container)
#
# Apptainer itself is in neither Debian 12 nor PyPI: production instances install it from the site's own
# packages; where it is missing, visa-app runs the same images with the local runtime built on the above.
set -euo pipefail

PACKAGES=(
  squashfs-tools
  siftool
  squashfuse
  fuse3
  bubblewrap
  busybox-static
  python3-ipykernel
)

source "$(dirname "$0")/lib.sh"

apt_ensure "${PACKAGES[@]}"
for tool in mksquashfs unsquashfs siftool squashfuse bwrap busybox; do
  command -v "$tool" >/dev/null || { echo "install-apps.sh: $tool still missing after install" >&2; exit 1; }
done
