#!/usr/bin/env bash
# Runs the whole test suite. The Redis tests start their own redis-server processes on
# loopback ports, so redis-server and redis-cli must be installed: this script installs them
# from Debian's packages when they are missing (as root, or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "test.sh: installing redis-server and redis-tools from Debian's packages" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        redis-server redis-tools >/dev/null
fi

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --no-fail-fast "$@"
else
    cargo test --no-fail-fast "$@"
fi
