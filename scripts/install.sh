#!/usr/bin/env bash
# Install everything visa-hub needs on a Debian 12 machine: system packages, a virtualenv
# with the project, and the npm tools (configurable-http-proxy, test peers).
#   scripts/install.sh          runtime only (what `make run` needs)
#   scripts/install.sh test     runtime + test dependencies and test peers (what `make test` needs)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-run}
VENV=${VISA_VENV:-.venv}

source scripts/lib.sh

apt_packages=(python3 python3-venv python3-dev git make curl ca-certificates)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if [ "$what" = test ]; then
  apt_packages+=(chromium postgresql fonts-dejavu-core)
  apt_packages+=(bubblewrap)  # the OpenStack simulator's VMs are bubblewrap sandboxes
fi
apt_ensure "${apt_packages[@]}"
scripts/install-desktop.sh  # what an instance's Desktop tab runs (Xvnc, window manager, terminal)
scripts/install-apps.sh     # apptainer app images: squashfs, SIF, the local runtime (squashfuse + bubblewrap)
if [ "$what" = test ]; then  # test peers: Slurm, RabbitMQ
  scripts/install-slurm.sh
  scripts/install-useroffice-peers.sh
fi

# The system Python (not a per-user pyenv) so that instances started as other users can read the venv.
PY=/usr/bin/python3; [ -x "$PY" ] || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
if [ "$what" = test ]; then
  "$VENV/bin/pip" install -q -e '.[test]'
else
  "$VENV/bin/pip" install -q -e .
fi

echo "==> npm tools"
npm install --no-audit --no-fund --loglevel=error >/dev/null
if [ "$what" = test ]; then
  npm ci --prefix tests/peers/keycloak --no-audit --no-fund --loglevel=error >/dev/null
fi
echo "==> installed ($what)"
