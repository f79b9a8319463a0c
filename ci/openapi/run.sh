#!/usr/bin/env bash
# Check openapi.yaml against the running service: every documented (path, method, status),
# every response schema, required header and Content-Type.
#
# Usage: ci/openapi/run.sh [MISP_LOOKUP_BINARY]   (default: target/debug/misp-lookup)
#
# The Python tools go into a virtual environment outside the work tree, reused while
# requirements.txt is unchanged. OPENAPI_CHECK_VENV overrides its location.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${OPENAPI_CHECK_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/misp-lookup/openapi-check-venv}"
stamp="$venv/requirements.sha256"
wanted="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]]; then
    echo "openapi: installing Python tools into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check --quiet --requirement "$here/requirements.txt"
    echo "$wanted" > "$stamp"
fi

exec "$venv/bin/python" "$here/check_openapi.py" \
    --spec "$repo/openapi.yaml" "${1:-$repo/target/debug/misp-lookup}"
