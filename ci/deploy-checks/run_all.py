#!/usr/bin/env python3
"""Run the deployment checks, with a demo service on 127.0.0.1 for the live ones.

The demo service (`misp-lookup serve --demo`) serves a few lookups so that its /metrics text
has series, then check_dashboard.py reads that text and check_dockerfile.py runs the image's
HEALTHCHECK command against the service. The service is stopped before this script exits.
check_chart_config.py then starts the service once more with the chart's rendered settings.

Usage: run_all.py --binary PATH   (normally through run.sh, which sets up the Python tools)
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STARTUP_TIMEOUT_SECONDS = 15
# Lookups that give the metrics text series: a known MD5 of the demo data set (twice, so the
# second is a cache hit), an unknown SHA-256 and a key with a NUL byte, which the service
# rejects.
WARM_UP_PATHS = [
    "/lookup/44d88612fea8a8f36de82e1278abb02f",
    "/lookup/44d88612fea8a8f36de82e1278abb02f",
    "/lookup/" + "ab" * 32,
    "/lookup/%00",
    "/readyz",
]
SUMMARY = re.compile(r"^\w[\w -]*: (\d+) passed, (\d+) failed$")


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        return error.read()


def run_check(argv: list[str], totals: list[int]) -> None:
    """Run one check script, echo its output and add its closing counts to totals."""
    result = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=300, check=False)
    sys.stderr.write(result.stderr)
    sys.stdout.write(result.stdout)
    lines = result.stdout.strip().splitlines()
    match = SUMMARY.match(lines[-1]) if lines else None
    if match:
        totals[0] += int(match.group(1))
        totals[1] += int(match.group(2))
    if result.returncode != 0 and (not match or match.group(2) == "0"):
        print(f"FAIL {argv[0]} exited with status {result.returncode}")
        totals[1] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, required=True)
    args = parser.parse_args()

    totals = [0, 0]
    run_check([str(HERE / "helm_check.py")], totals)
    run_check([str(HERE / "check_content_pack.py")], totals)

    if not args.binary.is_file():
        print(f"FAIL live checks: {args.binary} not found; build it first with `cargo build`")
        run_check([str(HERE / "check_dockerfile.py")], totals)
        print(f"deploy-checks: {totals[0]} passed, {totals[1] + 1} failed")
        return 1

    port = free_port()
    closed_port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MISP_LOOKUP_")}
    env["RUST_LOG"] = "warn"
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(args.binary), "serve", "--demo", "--listen", f"127.0.0.1:{port}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if server.poll() is not None:
                print(f"FAIL live checks: the demo service exited with status {server.returncode}: {server.stderr.read()}")
                print(f"deploy-checks: {totals[0]} passed, {totals[1] + 1} failed")
                return 1
            try:
                get(base + "/healthz")
                break
            except OSError:
                if time.monotonic() > deadline:
                    print(f"FAIL live checks: the demo service did not answer within {STARTUP_TIMEOUT_SECONDS} s")
                    print(f"deploy-checks: {totals[0]} passed, {totals[1] + 1} failed")
                    return 1
                time.sleep(0.1)

        for path in WARM_UP_PATHS:
            get(base + path)
        with tempfile.TemporaryDirectory() as scratch:
            metrics = Path(scratch) / "metrics.txt"
            metrics.write_bytes(get(base + "/metrics"))
            run_check([str(HERE / "check_dashboard.py"), str(REPO / "examples/grafana/misp-lookup.json"), str(metrics), "--source", str(REPO / "src/metrics.rs")], totals)
        run_check([str(HERE / "check_dockerfile.py"), "--healthcheck-port", str(port), "--closed-port", str(closed_port)], totals)
    finally:
        server.terminate()
        try:
            server.wait(timeout=25)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    run_check([str(HERE / "check_chart_config.py"), "--binary", str(args.binary), "--port", str(free_port())], totals)
    print(f"deploy-checks: {totals[0]} passed, {totals[1]} failed")
    return 1 if totals[1] else 0


if __name__ == "__main__":
    sys.exit(main())
