#!/usr/bin/env bash
# Run every deployment check: Helm chart, Dockerfile, Grafana dashboard, Graylog content pack.
#
# Usage: ci/deploy-checks/run.sh [MISP_LOOKUP_BINARY]   (default: target/debug/misp-lookup)
#
# The Python tools go into a virtual environment outside the work tree, reused while
# requirements.txt is unchanged. DEPLOY_CHECKS_VENV overrides its location.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/venv.sh"
repo="$(cd "$here/../.." && pwd)"

exec "$venv/bin/python" "$here/run_all.py" --binary "${1:-$repo/target/debug/misp-lookup}"
