#!/usr/bin/env python3
"""Run every ```sh block of examples/curl.md against a fresh demo service.

The block whose command is `misp-lookup serve ...` gives the flags of the demo. The checker
starts the binary with those flags on a free 127.0.0.1 port (any --listen of the block is
replaced) and rewrites 127.0.0.1:8080 in every other block to that port. Every other block
ends with a line `# expect: NNN` (an HTTP status) or `# expect: exit N` (an exit status).

A block with a curl command runs with `-o BODY_FILE -w '\\n%{http_code} %{content_type}'`
added after `curl`, so the status and content type are the last line of its output. A block
without curl runs as it is, with the binary's directory first on PATH, and each line of its
output must be JSON. The check fails when a command fails, a status differs from the block's
`# expect:` or a JSON body does not parse. The service is stopped at the end, also on error.

Usage: check_curl_examples.py [--doc examples/curl.md] [MISP_LOOKUP_BINARY]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOC_ADDRESS = "127.0.0.1:8080"
BLOCK_PATTERN = re.compile(r"^```sh\n(.*?)^```", re.MULTILINE | re.DOTALL)
EXPECT_PATTERN = re.compile(r"^#\s*expect:\s*(?:(\d{3})|exit\s+(\d+))\s*$", re.MULTILINE)
CURL_PATTERN = re.compile(r"^curl(?=\s)", re.MULTILINE)
STARTUP_TIMEOUT_SECONDS = 20.0
COMMAND_TIMEOUT_SECONDS = 30
CURL_MAX_TIME_SECONDS = 20


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_arguments(block: str) -> list[str]:
    """Return the flags after `misp-lookup serve`, without --listen."""
    command = " ".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))
    words = shlex.split(command.replace("\\\n", " "))
    arguments = words[2:]
    kept = []
    skip = False
    for word in arguments:
        if skip:
            skip = False
        elif word == "--listen":
            skip = True
        elif not word.startswith("--listen="):
            kept.append(word)
    return kept


def start_service(binary: str, arguments: list[str], log_path: Path) -> tuple[subprocess.Popen, int]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MISP_LOOKUP_")}
    environment["NO_COLOR"] = "1"
    for _attempt in range(3):
        port = free_port()
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [binary, "serve", *arguments, "--listen", f"127.0.0.1:{port}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and process.poll() is None:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    return process, port
            except OSError:
                pass
            time.sleep(0.1)
        stop_service(process)
    raise RuntimeError(f"the demo service did not start:\n{log_path.read_text(errors='replace')[-2000:]}")


def stop_service(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def run_block(block: str, port: int, binary_dir: str, work_dir: Path, index: int) -> tuple[str, list[str]]:
    """Run one block. Return a one-line summary and the problems found."""
    expectations = EXPECT_PATTERN.findall(block)
    if len(expectations) != 1:
        return "no expectation", [f"the block needs exactly one '# expect:' line, found {len(expectations)}"]
    expected_status, expected_exit = expectations[0]
    script = block.replace(DOC_ADDRESS, f"127.0.0.1:{port}")
    curl_count = len(CURL_PATTERN.findall(script))
    body_path = work_dir / f"body-{index}"
    if expected_status:
        if curl_count != 1:
            return "bad block", [f"an HTTP expectation needs exactly one curl command, found {curl_count}"]
        injected = (
            f"curl --max-time {CURL_MAX_TIME_SECONDS} -o {shlex.quote(str(body_path))} "
            "-w '\\n%{http_code} %{content_type}'"
        )
        script = CURL_PATTERN.sub(injected, script)

    environment = dict(os.environ, PATH=f"{binary_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    try:
        result = subprocess.run(
            ["bash", "-c", script],
            capture_output=True,
            timeout=COMMAND_TIMEOUT_SECONDS,
            env=environment,
            cwd=work_dir,
        )
    except subprocess.TimeoutExpired:
        return "timed out", [f"the command ran longer than {COMMAND_TIMEOUT_SECONDS} s"]
    stdout = result.stdout.decode("utf-8", errors="replace")
    stderr = result.stderr.decode("utf-8", errors="replace").strip()

    if expected_exit:
        problems = []
        if result.returncode != int(expected_exit):
            problems.append(f"exit status {result.returncode}, expected {expected_exit}: {stderr[:300]}")
        for line in filter(None, stdout.splitlines()):
            try:
                json.loads(line)
            except ValueError as error:
                problems.append(f"an output line is not JSON ({error}): {line[:200]}")
        return f"exit {result.returncode}", problems

    if result.returncode != 0:
        return f"exit {result.returncode}", [f"curl failed with exit status {result.returncode}: {stderr[:300]}"]
    last_line = stdout.rstrip("\n").rsplit("\n", 1)[-1]
    status, _, content_type = last_line.partition(" ")
    problems = []
    if status != expected_status:
        problems.append(f"status {status}, expected {expected_status}")
    body = body_path.read_bytes() if body_path.exists() else b""
    if "json" in content_type.lower():
        try:
            json.loads(body)
        except ValueError as error:
            problems.append(f"the {content_type} body is not JSON ({error}): {body[:200]!r}")
    if problems:
        problems.append(f"body: {body[:300]!r}")
    return f"{status} {content_type}", problems


def check(binary: str, doc: Path) -> int:
    started = time.monotonic()
    blocks = BLOCK_PATTERN.findall(doc.read_text())
    serve_blocks = [block for block in blocks if re.match(r"\s*misp-lookup\s+serve\b", block)]
    if len(serve_blocks) != 1:
        print(f"{doc}: expected exactly one 'misp-lookup serve' block, found {len(serve_blocks)}")
        return 1
    command_blocks = [block for block in blocks if block is not serve_blocks[0]]
    arguments = serve_arguments(serve_blocks[0])
    binary_dir = str(Path(binary).resolve().parent)
    failures = []

    with tempfile.TemporaryDirectory(prefix="check-curl-examples-") as work:
        work_dir = Path(work)
        log_path = work_dir / "service.log"
        process, port = start_service(binary, arguments, log_path)
        try:
            print(f"demo started on 127.0.0.1:{port} with: {' '.join(arguments)}")
            for index, block in enumerate(command_blocks, start=1):
                summary, problems = run_block(block, port, binary_dir, work_dir, index)
                first_line = block.strip().splitlines()[0]
                print(f"{'FAIL' if problems else 'ok  '} {summary:<40} {first_line[:90]}")
                failures += [f"block {index} ({first_line[:90]}): {problem}" for problem in problems]
        finally:
            stop_service(process)
        if failures:
            print("--- service log tail:")
            print("\n".join(log_path.read_text(errors="replace").splitlines()[-15:]))

    elapsed = time.monotonic() - started
    if failures:
        print(f"\ncurl examples FAILED ({len(failures)} problems, {elapsed:.1f} s):")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print(f"curl examples passed: {len(command_blocks)} blocks, {elapsed:.1f} s")
    return 0


def main() -> int:
    repo = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "binary", nargs="?", default=str(repo / "target/debug/misp-lookup"),
        help="the misp-lookup binary (default: target/debug/misp-lookup)",
    )
    parser.add_argument("--doc", type=Path, default=repo / "examples/curl.md")
    arguments = parser.parse_args()
    if not os.access(arguments.binary, os.X_OK):
        print(f"not an executable: {arguments.binary}; run cargo build first", file=sys.stderr)
        return 2
    return check(arguments.binary, arguments.doc)


if __name__ == "__main__":
    sys.exit(main())
