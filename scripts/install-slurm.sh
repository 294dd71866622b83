#!/usr/bin/env bash
# Install the single-node Slurm test peer on Debian 12: slurm-wlm (slurmctld + slurmd + client tools), munge,
# slurmdbd with Debian's MariaDB (accounting: accounts per experiment, limits, PrivateData=jobs), and sudo (the
# hub submits as the user with `sudo -u`). Idempotent: installs only what is missing; safe to run as root on a
# fresh machine or via sudo. Nothing is started here and no system service is left running — the test fixture
# (tests/peers_slurm.py) starts its own munged, mariadbd, slurmdbd, slurmctld and slurmd under a temporary directory.
set -euo pipefail

source "$(dirname "$0")/lib.sh"

apt_ensure slurm-wlm slurm-client slurmdbd mariadb-server mariadb-client munge sudo procps

# The Debian packages try to start their services; in containers without systemd that fails harmlessly, with
# systemd they would run with Debian's configuration: the fixture never uses those, so stop them if they run.
for service in mariadb slurmdbd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$service" 2>/dev/null; then
    as_root systemctl stop "$service" || true
  fi
done

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
echo "==> slurm-wlm $(dpkg-query -W -f='${Version}' slurm-wlm), slurmdbd $(dpkg-query -W -f='${Version}' slurmdbd)," \
  "mariadb $(dpkg-query -W -f='${Version}' mariadb-server), $(munged --version 2>&1 | head -1)"
