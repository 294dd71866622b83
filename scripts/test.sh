#!/usr/bin/env bash
# Install the test dependencies and peers, then run the whole test suite (lint, unit, integration, browser).
# Extra arguments go to pytest. VISA_REQUIRE_INTEGRATION=1 turns a missing peer into a failure (CI sets it).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh test
echo "==> ruff"
.venv/bin/ruff check .
echo "==> pytest"
exec .venv/bin/python -m pytest -p no:cacheprovider --durations=25 "$@"
