#!/usr/bin/env bash
# Install everything visa-hub needs on a Debian 12 machine: system packages, a virtualenv
# with the project, and the npm tools (configurable-http-proxy, test peers).
#   scripts/install.sh          runtime only (what `make run` needs)
#   scripts/install.sh test     runtime + test dependencies and test peers (what `make test` needs)
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-run}
VENV=${VISA_VENV:-.venv}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_packages=(python3 python3-venv python3-dev git make curl ca-certificates)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs npm)
if [ "$what" = test ]; then
  apt_packages+=(chromium postgresql fonts-dejavu-core)
fi
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt-get install ${missing[*]}"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}"
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
