#!/usr/bin/env bash
# Install what the demo needs and start the demo hub on http://127.0.0.1:8000 (Ctrl-C stops it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh run
echo "==> visa-hub demo on http://${VISA_HUB_IP:-127.0.0.1}:${VISA_HUB_PORT:-8000}" \
     "— log in as alice, bob, carl, dora, erik or olga with password '${VISA_DEMO_PASSWORD:-visa-demo}'"
exec .venv/bin/jupyterhub -f jupyterhub_config.py "$@"
