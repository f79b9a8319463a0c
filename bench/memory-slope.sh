#!/usr/bin/env bash
# Measures the resident memory per cached hit as a slope: fills hits in steps through bulk
# POST /lookup and prints "entries VmRSS_kib" after each step. The first step includes the
# allocator's peak of a fill request, so compute the cost per entry between later steps.
#
# Usage: bench/memory-slope.sh   (after bench/run has built both packages)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH_BIN="$ROOT/bench/target/release"
KEY="MispLookupDemoKey00000000000000000000000"
WORK=$(mktemp -d /tmp/misp-lookup-slope.XXXXXX)
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

"$BENCH_BIN/bench-emulator" --hit-keys 22000 --hit-stride 1 >"$WORK/emulator.out" 2>/dev/null &
PIDS+=($!)
for _ in $(seq 50); do grep -q '^MISP_URL=' "$WORK/emulator.out" && break; sleep 0.1; done
misp_url=$(grep -m1 '^MISP_URL=' "$WORK/emulator.out" | cut -d= -f2)

"$ROOT/target/release/misp-lookup" serve --listen 127.0.0.1:18999 --workers 1 \
    --misp-url "$misp_url" --misp-key "$KEY" --cache-capacity 100000 --ttl-hit 1h \
    --answer-deadline 30s >"$WORK/service.log" 2>&1 &
service_pid=$!
PIDS+=("$service_pid")
for _ in $(seq 50); do curl -sf http://127.0.0.1:18999/healthz >/dev/null && break; sleep 0.1; done

for step in "0 2000" "2000 4000" "6000 4000" "10000 4000" "14000 4000" "18000 4000"; do
    read -r first count <<<"$step"
    "$BENCH_BIN/loadgen" fill --url http://127.0.0.1:18999 --first-rank "$first" --count "$count" >/dev/null
    sleep 2
    echo "$((first + count)) $(awk '/^VmRSS:/ {print $2}' "/proc/$service_pid/status")"
done
