# Sourced by run.sh, render.sh and .ci/run: sets $venv to a virtual environment outside the work tree
# with the pinned Python tools of requirements.txt, installing them when the file changed.
# DEPLOY_CHECKS_VENV overrides the location.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DEPLOY_CHECKS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/misp-lookup/deploy-checks-venv}"
stamp="$venv/requirements.sha256"
wanted="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" || "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]]; then
    echo "deploy-checks: installing Python tools into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --disable-pip-version-check --quiet --requirement "$here/requirements.txt"
    echo "$wanted" > "$stamp"
fi
