#!/usr/bin/env bash
# Install what the demo needs and start the demo hub on http://127.0.0.1:8000 (Ctrl-C stops it and its instances).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh run
exec scripts/demo-hub.sh "$@"
