#!/usr/bin/env bash
# Install the single-node Slurm test peer on Debian 12: slurm-wlm (slurmctld + slurmd + client tools),
# munge, and sudo (batchspawner starts jobs as the user with `sudo -u`). Idempotent: installs only what
# is missing; safe to run as root on a fresh machine or via sudo. Nothing is started here — the test
# fixture (tests/peers_slurm.py) starts munged, slurmctld and slurmd with its own slurm.conf.
set -euo pipefail

source "$(dirname "$0")/lib.sh"

apt_ensure slurm-wlm slurm-client munge sudo procps

# munge, and sudo (batchspawner starts jobs as the user with `sudo -u`). Idempotent: installs only what
# is missing; safe to run as root on a fresh machine or via sudo. Nothing is started here — the test
# fixture (tests/peers_slurm.py) starts munged, slurmctld and slurmd with its own slurm.conf.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

packages=(slurm-wlm slurm-client munge sudo procps)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  as_root apt-get update -qq
  # The Debian packages try to start their services; in containers without systemd that fails harmlessly.
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# munge's package creates the key on install; make sure it exists (e.g. after an image was slimmed).
if [ ! -s /etc/munge/munge.key ]; then
  echo "==> creating /etc/munge/munge.key"
  if command -v mungekey >/dev/null 2>&1; then
    as_root mungekey --create --keyfile=/etc/munge/munge.key --force
  else
    as_root dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
  fi
  as_root chown munge:munge /etc/munge/munge.key
  as_root chmod 0400 /etc/munge/munge.key
fi
echo "==> slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm), $(munged --version 2>&1 | head -1)"
