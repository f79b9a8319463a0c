#!/usr/bin/env python3
"""Start the real service with the environment the Helm chart renders, to prove it accepts it.

The chart renders demo mode with every tunable and both tokens set. This script passes the
ConfigMap's variables to `misp-lookup serve`, and points the Secret-file variables at files
it writes. MISP_LOOKUP_LISTEN moves to a loopback port. A lookup with the API token must
then return 200, and one without it 401.

Usage: check_chart_config.py --binary PATH --port PORT
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import helm_python as helm
import yaml

REPO = Path(__file__).resolve().parents[2]
API_TOKEN = "graylog-api-token-0123"
ADMIN_TOKEN = "cache-admin-token-0123"
VALUES = {
    "demo": True,
    "apiToken": API_TOKEN,
    "adminToken": ADMIN_TOKEN,
    "misp": {"timeout": "30s", "limit": 200, "maxInflight": 16, "include": ["context"]},
    "cache": {"capacity": 1000, "ttlHit": "sha256=24h,ip=1h,default=4h", "ttlMiss": "10m", "staleMax": "6h"},
    "answerDeadline": "1s",
    "batch": {"max": 100, "window": "5ms"},
    "fields": ["threat_level=$.Event.threat_level_id"],
    "workers": 2,
    "logFormat": "text",
}
SECRET_VALUES = {"misp-key": "", "api-token": API_TOKEN, "admin-token": ADMIN_TOKEN}
STARTUP_TIMEOUT_SECONDS = 15


def status_of(url: str, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    chart = helm.Chart.load(str(REPO / "helm" / "misp-lookup"))
    rendered = chart.render(VALUES, name="rel", namespace="ns", is_install=True)
    config = yaml.safe_load(rendered["misp-lookup/templates/configmap.yaml"])["data"]
    deployment = yaml.safe_load(rendered["misp-lookup/templates/deployment.yaml"])
    container = deployment["spec"]["template"]["spec"]["containers"][0]

    env = {key: value for key, value in os.environ.items() if not key.startswith("MISP_LOOKUP_")}
    env.update(config)
    env["MISP_LOOKUP_LISTEN"] = f"127.0.0.1:{args.port}"
    env["RUST_LOG"] = "warn"
    failures = []
    with tempfile.TemporaryDirectory() as secrets:
        for variable in container.get("env", []):
            file_name = os.path.basename(variable["value"])
            path = Path(secrets) / file_name
            path.write_text(SECRET_VALUES[file_name] + "\n")
            env[variable["name"]] = str(path)

        server = subprocess.Popen([str(args.binary), "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{args.port}"
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while server.poll() is None and time.monotonic() < deadline:
                try:
                    status_of(base + "/healthz", {})
                    break
                except OSError:
                    time.sleep(0.1)
            if server.poll() is not None:
                failures.append(f"the service rejected the chart's settings: {server.stderr.read().strip()}")
            else:
                lookup = base + "/lookup/44d88612fea8a8f36de82e1278abb02f"
                with_token = status_of(lookup, {"Authorization": f"Bearer {API_TOKEN}"})
                without_token = status_of(lookup, {})
                if with_token != 200:
                    failures.append(f"lookup with the API token returned {with_token}, expected 200")
                if without_token != 401:
                    failures.append(f"lookup without the API token returned {without_token}, expected 401")
        finally:
            server.terminate()
            try:
                server.wait(timeout=25)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    for failure in failures:
        print(f"FAIL chart settings start the service: {failure}")
    if not failures:
        print("ok   chart settings start the service")
    print(f"chart config: {0 if failures else 1} passed, {1 if failures else 0} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
