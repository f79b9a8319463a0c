#!/usr/bin/env python3
"""Check the Dockerfile's structure without a container engine.

The PyPI package `dockerfile` wraps BuildKit's own Dockerfile parser, so a syntax error fails
here as it would in `docker build`. The checks below cover what the Kubernetes chart relies
on: a non-root numeric user, the listen address, the exposed port and a health check.

With --healthcheck-port PORT, the HEALTHCHECK command also runs on this machine, with
MISP_LOOKUP_LISTEN=127.0.0.1:PORT, against a service that the caller started on that port.

Usage: check_dockerfile.py [--healthcheck-port PORT] [DOCKERFILE]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import dockerfile

REPO = Path(__file__).resolve().parents[2]


class CheckFailed(Exception):
    """A check whose condition did not hold."""


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def stages(commands: list[dockerfile.Command]) -> list[list[dockerfile.Command]]:
    """Split the instructions into build stages, each starting with its FROM."""
    result: list[list[dockerfile.Command]] = []
    for command in commands:
        if command.cmd == "FROM":
            result.append([])
        if result:
            result[-1].append(command)
    return result


def check_structure(commands: list[dockerfile.Command]) -> list[str]:
    failures = []
    all_stages = stages(commands)

    def check(condition: bool, message: str) -> None:
        if not condition:
            failures.append(message)

    check(len(all_stages) == 2, f"expected 2 stages (builder, runtime), found {len(all_stages)}")
    if len(all_stages) != 2:
        return failures
    builder, runtime = all_stages
    builder_from = builder[0].value
    check(builder_from[0] == "rust:1-bookworm" and builder_from[-1] == "builder", f"builder stage: FROM {' '.join(builder_from)}")
    builds = [c for c in builder if c.cmd == "RUN" and "cargo build --release --locked" in " ".join(c.value)]
    check(len(builds) == 1, "builder stage must run cargo build --release --locked")
    check(runtime[0].value[0] in {"debian:bookworm-slim", "gcr.io/distroless/cc-debian12"}, f"runtime base {runtime[0].value[0]}")

    copies = [c for c in runtime if c.cmd == "COPY"]
    check(any(flag == "--from=builder" for c in copies for flag in c.flags), "runtime must COPY --from=builder")

    users = [c for c in runtime if c.cmd == "USER"]
    check(bool(users) and users[-1].value[0].split(":")[0] == "10001", "runtime USER must be the numeric 10001, so that runAsNonRoot can verify it")

    env: dict[str, str] = {}
    for command in (c for c in runtime if c.cmd == "ENV"):
        pairs = command.value
        env.update(dict(zip(pairs[0::2], pairs[1::2])))
    check(env.get("MISP_LOOKUP_LISTEN") == "0.0.0.0:8080", f"ENV MISP_LOOKUP_LISTEN={env.get('MISP_LOOKUP_LISTEN')!r}, expected 0.0.0.0:8080")

    exposed = [port for c in runtime if c.cmd == "EXPOSE" for port in c.value]
    check(exposed == ["8080"], f"EXPOSE {exposed}, expected 8080")

    healthchecks = [c for c in runtime if c.cmd == "HEALTHCHECK"]
    check(len(healthchecks) == 1 and healthchecks[0].value[0] == "CMD", "runtime needs one HEALTHCHECK CMD")
    check(healthchecks and healthchecks[0].json, "HEALTHCHECK must use the JSON form, because /bin/sh (dash) has no /dev/tcp")

    entrypoints = [c for c in runtime if c.cmd == "ENTRYPOINT"]
    check(bool(entrypoints) and entrypoints[-1].value[0] == "/usr/local/bin/misp-lookup", "ENTRYPOINT must be the misp-lookup binary")
    return failures


def run_healthcheck(command: dockerfile.Command, port: int, environment: dict[str, str]) -> int:
    argv = list(command.value[1:])
    env = {**os.environ, **environment, "MISP_LOOKUP_LISTEN": f"127.0.0.1:{port}"}
    # Output is dropped: a refused connection prints bash's error, which is the expected case.
    return subprocess.run(argv, env=env, timeout=10, check=False, capture_output=True).returncode


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dockerfile", nargs="?", default=str(REPO / "Dockerfile"))
    parser.add_argument("--healthcheck-port", type=int, help="port of a running misp-lookup on 127.0.0.1")
    parser.add_argument("--closed-port", type=int, help="a 127.0.0.1 port with no listener, where the check must fail")
    args = parser.parse_args()

    passed = failed = 0

    def report(name: str, failures: list[str]) -> None:
        nonlocal passed, failed
        if failures:
            failed += 1
            for failure in failures:
                print(f"FAIL {name}: {failure}")
        else:
            passed += 1
            print(f"ok   {name}")

    try:
        commands = list(dockerfile.parse_file(args.dockerfile))
    except dockerfile.GoParseError as error:
        report("Dockerfile parses", [str(error)])
        print(f"dockerfile: {passed} passed, {failed} failed")
        return 1
    report("Dockerfile parses", [])
    report("Dockerfile structure", check_structure(commands))

    healthcheck = next((c for c in commands if c.cmd == "HEALTHCHECK"), None)
    if healthcheck is not None and args.healthcheck_port:
        status = run_healthcheck(healthcheck, args.healthcheck_port, {})
        report("HEALTHCHECK passes against the live service", [] if status == 0 else [f"exit status {status}"])
    if healthcheck is not None and args.closed_port:
        status = run_healthcheck(healthcheck, args.closed_port, {})
        report("HEALTHCHECK fails without a listener", [] if status != 0 else ["exit status 0"])

    print(f"dockerfile: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
