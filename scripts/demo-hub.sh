#!/usr/bin/env bash
# The demo hub itself (scripts/demo.sh runs it after installing). Ctrl-C stops the hub and, in the demo, its
# instances too: VISA_KEEP_SERVERS=0 unless the operator set it (VISA_KEEP_SERVERS=1 keeps them running, and
# the next start re-attaches them, as production does).
set -euo pipefail
cd "$(dirname "$0")/.."
export VISA_KEEP_SERVERS="${VISA_KEEP_SERVERS:-0}"
echo "==> visa-hub demo on http://${VISA_HUB_IP:-127.0.0.1}:${VISA_HUB_PORT:-8000}" \
     "— log in as alice, bob, carl, dora, erik or olga with password '${VISA_DEMO_PASSWORD:-visa-demo}'"
if [ "$VISA_KEEP_SERVERS" = 1 ]; then
  echo "==> instances keep running when the hub stops (VISA_KEEP_SERVERS=1)"
else
  echo "==> Ctrl-C stops the hub and its instances (VISA_KEEP_SERVERS=1 keeps them)"
fi
exec .venv/bin/jupyterhub -f jupyterhub_config.py "$@"
