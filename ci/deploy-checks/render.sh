#!/usr/bin/env bash
# Print the chart's rendered manifests without a helm binary (see render.py).
# Usage: bash ci/deploy-checks/render.sh [--set key=value ...]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
exec "$venv/bin/python" "$here/render.py" "$@"
