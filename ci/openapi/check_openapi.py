#!/usr/bin/env python3
"""Check that openapi.yaml describes what the running service returns.

The checker starts several misp-lookup instances on free 127.0.0.1 ports. Three run the demo,
with an admin token, with an API token and with --forward-caller-key. Four run against a fake
MISP (defined here) that fails in each way the service maps to 502, 503 and 504. One runs the
demo against a fake Redis whose commands fail. The checker sends one or more requests for every
(path, method, status) triple that the document lists and checks each response:

* the status is listed for the operation (404 and 405 for requests that match no operation,
  described by components/responses/NotFound and MethodNotAllowed);
* the Content-Type is one of the documented media types;
* the body validates against the documented schema (JSON Schema 2020-12, `$ref`s resolved
  within the document);
* every header that the document marks required is present, and every documented header
  validates against its schema.

It fails when a response does not validate, when a documented triple was never produced (except
the ones in UNPRODUCIBLE), or when a request gets another status than its case expects.
It also validates every response and request body example in the document against its schema.

Usage: check_openapi.py [--spec openapi.yaml] [MISP_LOOKUP_BINARY]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_URI = "urn:misp-lookup:openapi"
ADMIN_TOKEN = "check-admin-token-0123456789"
API_TOKEN = "check-api-token-0123456789"
# A syntactically valid MISP key (40 letters and digits) for the instances against the fake MISP.
MISP_KEY = "0123456789abcdefghij0123456789abcdefghij"
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# Documented statuses that no request can produce, with the reason.
UNPRODUCIBLE = {
    "500": "internal_error is returned only when the task that asks MISP panics",
}

STARTUP_TIMEOUT_SECONDS = 20.0
REQUEST_TIMEOUT_SECONDS = 15.0
TOTAL_TIMEOUT_SECONDS = 240.0

# Delay of the fake MISP's response to a search for a value starting with "hang". It exceeds
# the --answer-deadline of the fake-MISP instances and stays below their --misp-timeout.
FAKE_MISP_HANG_SECONDS = 1.5


# --- fake upstreams -----------------------------------------------------------------------


class FakeMispHandler(http.server.BaseHTTPRequestHandler):
    """MISP's restSearch and getVersion, failing according to the searched value.

    The part of the first searched value before the first `-` or `.` selects the response:

    * `e500`, `e403`: that status.
    * `e429`: 429 with X-Rate-Limit-Reset.
    * `html`: an HTML page. `badjson`: invalid JSON. `redirect`: a redirect to the login page.
    * `hang`: an empty result after FAKE_MISP_HANG_SECONDS.
    * any other value: an empty result.

    getVersion always returns 403, so readiness reports a rejected key.
    """

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        # The service drops a search whose caller and load gave up, and stops at the end.
        with contextlib.suppress(OSError):
            self.wfile.write(body)

    def _send_json(self, status: int, document: object, extra: dict | None = None):
        self._send(status, json.dumps(document).encode(), "application/json", extra)

    def do_GET(self) -> None:  # noqa: N802
        self._send_json(403, {"name": "Authentication failed.", "message": "Forbidden"})

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            request = {}
        request = request.get("request", request)
        value = request.get("value", "")
        if isinstance(value, list):
            value = value[0] if value else ""
        mode = str(value).split(".")[0].split("-")[0]

        if mode == "e500":
            self._send_json(500, {"name": "Internal error", "message": "Internal error"})
        elif mode == "e403":
            self._send_json(403, {"name": "Authentication failed.", "message": "Forbidden"})
        elif mode == "e429":
            self._send_json(429, {"message": "Rate limit"}, {"X-Rate-Limit-Reset": "30"})
        elif mode == "html":
            self._send(200, b"<html><body>Maintenance</body></html>", "text/html")
        elif mode == "badjson":
            self._send(200, b'{"response": ', "application/json")
        elif mode == "redirect":
            self._send(302, b"", "text/html", {"Location": "http://127.0.0.1/users/login"})
        else:
            if mode == "hang":
                time.sleep(FAKE_MISP_HANG_SECONDS)
            self._send_json(200, {"response": {"Attribute": []}})


class FakeRedisHandler(socketserver.StreamRequestHandler):
    """A Redis (RESP) server that accepts connections but fails every data command.

    PING, CLIENT, SELECT and AUTH succeed, so the client connects. Every other command gets an
    error reply, so the service's cache purges end with 502 redis_failed.
    """

    def handle(self) -> None:
        while True:
            line = self.rfile.readline()
            if not line:
                return
            if not line.startswith(b"*"):
                continue
            arguments = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                arguments.append(self.rfile.read(size + 2)[:-2])
            command = arguments[0].upper() if arguments else b""
            if command == b"PING":
                self.wfile.write(b"+PONG\r\n")
            elif command in (b"CLIENT", b"SELECT", b"AUTH"):
                self.wfile.write(b"+OK\r\n")
            else:
                self.wfile.write(b"-ERR the fake Redis of check_openapi.py fails every command\r\n")


class ThreadingTcpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ThreadingHttpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


def serve_in_thread(server: socketserver.BaseServer) -> None:
    threading.Thread(target=server.serve_forever, daemon=True).start()


# --- service instances --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceInstance:
    """One `misp-lookup serve` process on a free 127.0.0.1 port."""

    def __init__(self, name: str, binary: str, arguments: list[str], log_dir: Path):
        self.name = name
        self.binary = binary
        self.arguments = arguments
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        # The environment must not add flags of its own.
        environment = {k: v for k, v in os.environ.items() if not k.startswith("MISP_LOOKUP_")}
        environment["NO_COLOR"] = "1"
        self.port = free_port()
        command = [self.binary, "serve", *self.arguments, "--listen", f"127.0.0.1:{self.port}"]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment
            )

    def wait_ready(self) -> bool:
        """Wait until /healthz returns 200. Return False when the process exited."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(OSError):
                status, _, _ = send(self.port, "GET", "/healthz", timeout=1.0)
                if status == 200:
                    return True
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: /healthz did not return 200 within {STARTUP_TIMEOUT_SECONDS} s")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""


def start_instances(instances: list[ServiceInstance]) -> None:
    """Start every instance and wait for all. Retry an instance whose port was taken meanwhile."""
    for instance in instances:
        instance.start()
    for instance in instances:
        for _attempt in range(3):
            if instance.wait_ready():
                break
            print(f"{instance.name} exited at start; retrying on another port:\n{instance.log_tail()}")
            instance.start()
        else:
            raise RuntimeError(f"{instance.name} did not start:\n{instance.log_tail()}")


def send(
    port: int,
    method: str,
    path: str,
    headers: dict | None = None,
    body: bytes | None = None,
    timeout: float = REQUEST_TIMEOUT_SECONDS,
) -> tuple[int, http.client.HTTPMessage, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        try:
            connection.request(method, path, body=body, headers=headers or {})
        except (BrokenPipeError, ConnectionResetError):
            # The service may send 413 and close the connection before it reads the whole body.
            pass
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


# --- the document -------------------------------------------------------------------------


def escape_pointer_segment(segment: str) -> str:
    return quote(segment.replace("~", "~0").replace("/", "~1"), safe="~")


class Spec:
    """The OpenAPI document: operations, `$ref` resolution and schema validation."""

    def __init__(self, path: Path):
        self.text = path.read_bytes()
        self.document = yaml.safe_load(self.text)
        resource = Resource.from_contents(self.document, default_specification=DRAFT202012)
        self.registry = Registry().with_resource(SPEC_URI, resource)
        self.operations: dict[tuple[str, str], dict] = {}
        self.path_patterns: list[tuple[str, re.Pattern]] = []
        for template, item in self.document["paths"].items():
            for method in HTTP_METHODS:
                if method in item:
                    self.operations[(template, method)] = item[method]
            regex = "".join(
                "(.*)" if part.startswith("{") else re.escape(part)
                for part in re.split(r"(\{[^}]+\})", template)
            )
            self.path_patterns.append((template, re.compile(f"^{regex}$")))
        # Templates without parameters first, so that /attributes/restSearch.json never
        # counts as a value of /attributes/restSearch/{parameters}.
        self.path_patterns.sort(key=lambda pair: "{" in pair[0])

    def resolve(self, node: dict, pointer: str) -> tuple[dict, str]:
        """Follow `$ref`s within the document. Return the node and its JSON pointer."""
        for _ in range(20):
            ref = node.get("$ref") if isinstance(node, dict) else None
            if ref is None:
                return node, pointer
            if not ref.startswith("#/"):
                raise ValueError(f"{pointer}: only references within the document are supported: {ref}")
            pointer = ref[1:]
            node = self.document
            for segment in ref[2:].split("/"):
                node = node[segment.replace("~1", "/").replace("~0", "~")]
        raise ValueError(f"{pointer}: too many chained references")

    def match_path(self, path: str) -> str | None:
        for template, pattern in self.path_patterns:
            if pattern.match(path):
                return template
        return None

    def validator(self, schema_pointer: str) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": f"{SPEC_URI}#{schema_pointer}"},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )

    def documented_triples(self) -> set[tuple[str, str, str]]:
        triples = {
            (template, method, status)
            for (template, method), operation in self.operations.items()
            for status in operation.get("responses", {})
        }
        # Requests that match no operation: an unknown path and a method the path lacks.
        triples.add(("*", "*", "404"))
        triples.add(("*", "*", "405"))
        return triples

    def response_for(self, template: str | None, method: str, status: int) -> tuple[str, dict, str] | None:
        """Return (operation label, response object, its pointer), or None if undocumented."""
        if template is None or (template, method) not in self.operations:
            expected = "NotFound" if template is None else "MethodNotAllowed"
            expected_status = 404 if template is None else 405
            if status != expected_status:
                return None
            pointer = f"/components/responses/{expected}"
            response, pointer = self.resolve(self.document["components"]["responses"][expected], pointer)
            return ("*", response, pointer)
        responses = self.operations[(template, method)].get("responses", {})
        if str(status) in responses:
            key = str(status)
        elif "default" in responses:
            key = "default"
        else:
            return None
        pointer = f"/paths/{escape_pointer_segment(template)}/{method}/responses/{key}"
        response, pointer = self.resolve(responses[key], pointer)
        return (template, response, pointer)


# --- checks -------------------------------------------------------------------------------


def media_type_matches(actual: str, documented: str) -> bool:
    def normalize(value: str) -> list[str]:
        return [part.strip().lower() for part in value.split(";") if part.strip()]

    actual_parts, documented_parts = normalize(actual), normalize(documented)
    if len(documented_parts) == 1:
        return bool(actual_parts) and actual_parts[0] == documented_parts[0]
    return actual_parts == documented_parts


def schema_errors(spec: Spec, pointer: str, instance: object) -> list[str]:
    validator = spec.validator(pointer)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(root)'}: {error.message}"
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    ]


def header_errors(spec: Spec, response: dict, pointer: str, headers: http.client.HTTPMessage) -> list[str]:
    errors = []
    for name, header in response.get("headers", {}).items():
        if name.lower() == "content-type":
            continue
        header, header_pointer = spec.resolve(header, f"{pointer}/headers/{escape_pointer_segment(name)}")
        value = headers.get(name)
        if value is None:
            if header.get("required", False):
                errors.append(f"required header {name} is missing")
            continue
        if "schema" not in header:
            continue
        candidates: list[object] = [value]
        if re.fullmatch(r"-?\d+", value.strip()):
            candidates.append(int(value))
        schema_pointer = f"{header_pointer}/schema"
        if not any(not schema_errors(spec, schema_pointer, candidate) for candidate in candidates):
            errors.append(f"header {name}: {value!r} does not validate: {schema_errors(spec, schema_pointer, value)}")
    return errors


def body_errors(spec: Spec, response: dict, pointer: str, method: str, headers, body: bytes) -> list[str]:
    content = response.get("content", {})
    actual_type = headers.get("Content-Type")
    if not content:
        if body:
            return [f"a body of {len(body)} bytes, but the response documents no content"]
        return []
    if actual_type is None:
        return [f"no Content-Type; documented: {sorted(content)}"]
    matching = [media for media in content if media_type_matches(actual_type, media)]
    if not matching:
        return [f"Content-Type {actual_type!r} is not documented; documented: {sorted(content)}"]
    if method == "HEAD":
        return []

    media = matching[0]
    media_object = content[media]
    if "schema" not in media_object:
        return []
    schema_pointer = f"{pointer}/content/{escape_pointer_segment(media)}/schema"

    base_type = media.split(";")[0].strip().lower()
    if base_type == "application/json" or base_type.endswith("+json"):
        try:
            instance = json.loads(body)
        except ValueError as error:
            return [f"the body is not JSON: {error}: {body[:200]!r}"]
    else:
        try:
            instance = body.decode("utf-8")
        except UnicodeDecodeError as error:
            return [f"the body is not UTF-8 text: {error}"]
    return [f"body: {message}" for message in schema_errors(spec, schema_pointer, instance)]


def example_errors(spec: Spec) -> list[str]:
    """Validate every example of response and request body content against its schema."""
    errors = []

    def check_content(content: dict, pointer: str) -> None:
        for media, media_object in content.items():
            if "schema" not in media_object:
                continue
            media_pointer = f"{pointer}/content/{escape_pointer_segment(media)}"
            samples = []
            if "example" in media_object:
                samples.append(("example", media_object["example"]))
            for name, example in media_object.get("examples", {}).items():
                example, _ = spec.resolve(example, f"{media_pointer}/examples/{name}")
                if "value" in example:
                    samples.append((f"examples/{name}", example["value"]))
            for label, value in samples:
                for message in schema_errors(spec, f"{media_pointer}/schema", value):
                    errors.append(f"{media_pointer}/{label}: {message}")

    components = spec.document.get("components", {})
    for name, response in components.get("responses", {}).items():
        check_content(response.get("content", {}), f"/components/responses/{name}")
    for name, body in components.get("requestBodies", {}).items():
        check_content(body.get("content", {}), f"/components/requestBodies/{name}")
    for (template, method), operation in spec.operations.items():
        base = f"/paths/{escape_pointer_segment(template)}/{method}"
        for status, response in operation.get("responses", {}).items():
            if "$ref" not in response:
                check_content(response.get("content", {}), f"{base}/responses/{status}")
        body = operation.get("requestBody", {})
        if "$ref" not in body:
            check_content(body.get("content", {}), f"{base}/requestBody")
    return errors


# --- request cases ------------------------------------------------------------------------


@dataclass
class Case:
    instance: str
    method: str
    path: str
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes | None = None
    timeout: float = REQUEST_TIMEOUT_SECONDS


def json_body(document: object) -> bytes:
    return json.dumps(document).encode()


def build_cases() -> list[Case]:
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    admin_header = {"X-Admin-Token": ADMIN_TOKEN}
    json_type = {"Content-Type": "application/json"}
    bad_caller_key = {"X-MISP-Auth": "short"}
    cases = [
        # GET /lookup/{key}: hits and misses of the demo data.
        Case("plain", "GET", "/lookup/44d88612fea8a8f36de82e1278abb02f", 200),
        Case("plain", "GET", "/lookup/2001%3Adb8%3A%3Abad%3A1", 200),
        Case("plain", "GET", "/lookup/hxxp%3A%2F%2Fmalware%5B.%5Dexample%2Fpayload.exe", 200),
        Case("plain", "GET", "/lookup/c2.malware.example?type=domain", 200),
        Case("plain", "GET", "/lookup/203.0.113.77?type=ip-src,ip-dst", 200),
        Case("plain", "GET", "/lookup/203.0.113.77?type=hash", 200),
        Case("plain", "GET", "/lookup/unknown.example", 200),
        Case("plain", "GET", "/lookup/unknown.example", 200),
        Case("plain", "GET", "/lookup/203.0.113.77%7C443", 200),
        Case("plain", "GET", "/lookup/%20", 400),
        Case("plain", "GET", "/lookup/" + "a" * 4097, 400),
        Case("plain", "GET", "/lookup/!1.2.3.4", 400),
        Case("plain", "GET", "/lookup/a%01b", 400),
        Case("plain", "GET", "/lookup/a%FFb", 400),
        Case("plain", "GET", "/lookup/x?type=bogus", 400),
        Case("plain", "GET", "/lookup/x?type=ip&type=hash", 400),
        Case("api", "GET", "/lookup/203.0.113.77", 401),
        Case("api", "GET", "/lookup/203.0.113.77", 401, {"Authorization": "Bearer wrong-token-0123456789"}),
        Case("api", "GET", "/lookup/203.0.113.77", 200, {"X-Api-Token": API_TOKEN}),
        Case("forward", "GET", "/lookup/203.0.113.77", 401),
        Case("forward", "GET", "/lookup/203.0.113.77", 403, bad_caller_key),
        Case("forward", "GET", "/lookup/203.0.113.77", 403, {"X-MISP-Auth": MISP_KEY}),
        Case("fake", "GET", "/lookup/e500-lookup.fake.example", 502),
        Case("fake", "GET", "/lookup/e403-lookup.fake.example", 502),
        Case("fake", "GET", "/lookup/html-lookup.fake.example", 502),
        Case("fake", "GET", "/lookup/badjson-lookup.fake.example", 502),
        Case("fake", "GET", "/lookup/redirect-lookup.fake.example", 502),
        Case("fake", "GET", "/lookup/hang-lookup.fake.example", 504),
        Case("unreachable", "GET", "/lookup/unreachable-lookup.fake.example", 503),
        Case("breaker", "GET", "/lookup/e500-opens-breaker.fake.example", 502),
        Case("breaker", "GET", "/lookup/after-breaker-opened.fake.example", 503),
        Case("ratelimit", "GET", "/lookup/e429-lookup.fake.example", 503),
        # POST /lookup.
        Case("plain", "POST", "/lookup", 200, json_type,
             json_body({"keys": ["203.0.113.77", "unknown.example", "!1.2.3.4", 42], "type": "ip,domain"})),
        Case("plain", "POST", "/lookup", 400, json_type, b'{"keys": ['),
        Case("plain", "POST", "/lookup", 400, json_type, json_body({"keys": ["a"], "limit": 1})),
        Case("plain", "POST", "/lookup", 400, json_type, json_body({"keys": ["a"] * 1001})),
        Case("plain", "POST", "/lookup", 400, json_type, json_body({"keys": ["a"], "type": "bogus"})),
        Case("plain", "POST", "/lookup", 413, json_type,
             b'{"keys": ["' + b"a" * (10 * 1024 * 1024) + b'"]}'),
        Case("api", "POST", "/lookup", 401, json_type, json_body({"keys": ["a.example"]})),
        Case("forward", "POST", "/lookup", 403, {**json_type, **bad_caller_key}, json_body({"keys": ["a.example"]})),
        Case("fake", "POST", "/lookup", 200, json_type, json_body({"keys": ["e500-bulk.fake.example"]})),
        # GET /attributes/restSearch and /attributes/restSearch.json without parameters.
        Case("plain", "GET", "/attributes/restSearch", 400),
        Case("plain", "GET", "/attributes/restSearch?value=203.0.113.77", 400),
        Case("api", "GET", "/attributes/restSearch", 401),
        Case("forward", "GET", "/attributes/restSearch", 403, bad_caller_key),
        Case("plain", "GET", "/attributes/restSearch.json", 400),
        Case("api", "GET", "/attributes/restSearch.json", 401),
        Case("forward", "GET", "/attributes/restSearch.json", 403, bad_caller_key),
        # GET /attributes/restSearch/{parameters}.
        Case("plain", "GET", "/attributes/restSearch/value:203.0.113.77", 200),
        Case("plain", "GET", "/attributes/restSearch/value:c2.malware.example/type:domain%7Cip", 200),
        Case("plain", "GET", "/attributes/restSearch/json/203.0.113.77", 200),
        Case("plain", "GET", "/attributes/restSearch/value:2001:db8::bad:1", 200),
        Case("plain", "GET", "/attributes/restSearch/value:nothing.example", 200),
        Case("plain", "GET", "/attributes/restSearch/value:a/org:1", 400),
        Case("plain", "GET", "/attributes/restSearch/value:a%FFb", 400),
        Case("plain", "GET", "/attributes/restSearch/value:!1.2.3.4", 400),
        Case("api", "GET", "/attributes/restSearch/value:203.0.113.77", 401),
        Case("forward", "GET", "/attributes/restSearch/value:203.0.113.77", 401),
        Case("forward", "GET", "/attributes/restSearch/value:203.0.113.77", 403, bad_caller_key),
        Case("forward", "GET", "/attributes/restSearch/value:203.0.113.77", 403, {"Authorization": MISP_KEY}),
        Case("fake", "GET", "/attributes/restSearch/value:e500-get.fake.example", 502),
        Case("fake", "GET", "/attributes/restSearch/value:hang-get.fake.example", 504),
        Case("unreachable", "GET", "/attributes/restSearch/value:unreachable-get.fake.example", 503),
        Case("ratelimit", "GET", "/attributes/restSearch/value:e429-get.fake.example", 503),
    ]
    # POST /attributes/restSearch and /attributes/restSearch.json.
    for path in ("/attributes/restSearch", "/attributes/restSearch.json"):
        label = path.rsplit("/", 1)[-1].replace(".", "-")
        cases += [
            Case("plain", "POST", path, 200, json_type, json_body({"value": "203.0.113.77"})),
            Case("plain", "POST", path, 200, json_type,
                 json_body({"request": {"value": ["203.0.113.77", "nothing.example"], "type": "ip-dst"}})),
            Case("plain", "POST", path, 200, json_type,
                 json_body({"value": "c2.malware.example", "to_ids": True, "published": 1, "limit": 50,
                            "includeEventTags": True})),
            Case("plain", "POST", path, 400, json_type, b""),
            Case("plain", "POST", path, 400, json_type, b'{"value":'),
            Case("plain", "POST", path, 400, json_type, b"[1]"),
            Case("plain", "POST", path, 400, json_type, json_body({"value": "a", "limit": 5000})),
            Case("plain", "POST", path, 400, json_type, json_body({"value": "a", "org": "1"})),
            Case("plain", "POST", path, 400, json_type, json_body({"value": "%a"})),
            Case("plain", "POST", path, 413, json_type, json_body({"value": "a" * 70000})),
            Case("api", "POST", path, 401, json_type, json_body({"value": "203.0.113.77"})),
            Case("forward", "POST", path, 403, {**json_type, **bad_caller_key}, json_body({"value": "1.2.3.4"})),
            Case("fake", "POST", path, 502, json_type, json_body({"value": f"e500-{label}.fake.example"})),
            Case("fake", "POST", path, 502, json_type, json_body({"value": f"html-{label}.fake.example"})),
            Case("fake", "POST", path, 504, json_type, json_body({"value": f"hang-{label}.fake.example"})),
            Case("unreachable", "POST", path, 503, json_type,
                 json_body({"value": f"unreachable-{label}.fake.example"})),
            Case("ratelimit", "POST", path, 503, json_type, json_body({"value": f"e429-{label}.fake.example"})),
        ]
    cases += [
        # Cache administration.
        Case("plain", "GET", "/lookup/c2.malware.example", 200),
        Case("plain", "DELETE", "/cache/c2.malware.example", 200, admin),
        Case("plain", "DELETE", "/cache/hxxp%3A%2F%2Fmalware%5B.%5Dexample%2Fpayload.exe", 200, admin_header),
        Case("plain", "DELETE", "/cache/%20", 400, admin),
        Case("plain", "DELETE", "/cache/!x", 400, admin),
        Case("plain", "DELETE", "/cache/c2.malware.example", 401),
        Case("plain", "DELETE", "/cache/c2.malware.example", 401, {"X-Admin-Token": "wrong-admin-token-0123"}),
        Case("api", "DELETE", "/cache/c2.malware.example", 401, admin),
        Case("redis", "DELETE", "/cache/c2.malware.example", 502, admin),
        Case("plain", "DELETE", "/cache", 200, admin),
        Case("plain", "DELETE", "/cache", 401),
        Case("api", "DELETE", "/cache", 401, admin),
        Case("redis", "DELETE", "/cache", 502, admin),
        # An unreachable Redis is a failed purge too. Each Redis command of a purge waits at
        # most 5 s, so the response must come well within the timeout of this case.
        Case("redis-down", "DELETE", "/cache/c2.malware.example", 502, admin, timeout=12.0),
        Case("redis-down", "DELETE", "/cache", 502, admin, timeout=12.0),
        # Operations.
        Case("plain", "GET", "/healthz", 200),
        Case("plain", "GET", "/readyz", 200),
        Case("forward", "GET", "/readyz", 200),
        Case("unreachable", "GET", "/readyz", 200),
        Case("fake", "GET", "/readyz", 503),
        Case("plain", "GET", "/metrics", 200),
        Case("plain", "GET", "/openapi.yaml", 200),
        # Requests that match no operation.
        Case("plain", "GET", "/nope", 404),
        Case("plain", "GET", "/lookupx", 404),
        Case("plain", "DELETE", "/lookup/x", 405),
        Case("plain", "HEAD", "/lookup/x", 405),
        Case("plain", "GET", "/lookup", 405),
        Case("plain", "GET", "/cache", 405),
        Case("plain", "GET", "/cache/x", 405),
        Case("plain", "PUT", "/attributes/restSearch", 405),
        Case("plain", "POST", "/attributes/restSearch/value:x", 405),
        Case("plain", "POST", "/healthz", 405),
        Case("plain", "HEAD", "/healthz", 405),
        Case("plain", "DELETE", "/readyz", 405),
        Case("plain", "POST", "/metrics", 405),
        Case("plain", "PUT", "/openapi.yaml", 405),
    ]
    return cases


def instance_arguments(
    fake_misp_url: str, refused_url: str, fake_redis_url: str
) -> dict[str, list[str]]:
    refused_redis_url = "redis://" + refused_url.removeprefix("http://")
    fake_common = [
        "--misp-url", fake_misp_url, "--misp-key", MISP_KEY, "--batch-max", "1",
        "--misp-retries", "0", "--answer-deadline", "300ms", "--misp-timeout", "3s",
    ]
    return {
        "plain": ["--demo", "--admin-token", ADMIN_TOKEN],
        "api": ["--demo", "--api-token", API_TOKEN],
        "forward": ["--demo", "--forward-caller-key"],
        "fake": [*fake_common, "--breaker-failures", "1000"],
        "breaker": [*fake_common, "--breaker-failures", "1", "--breaker-cooldown", "60s"],
        "ratelimit": [*fake_common, "--breaker-failures", "1000"],
        "unreachable": [
            "--misp-url", refused_url, "--misp-key", MISP_KEY, "--misp-retries", "0",
            "--breaker-failures", "1000",
        ],
        "redis": ["--demo", "--admin-token", ADMIN_TOKEN, "--redis-url", fake_redis_url],
        "redis-down": ["--demo", "--admin-token", ADMIN_TOKEN, "--redis-url", refused_redis_url],
    }


def run(binary: str, spec_path: Path) -> int:
    started = time.monotonic()
    spec = Spec(spec_path)
    failures: list[str] = [f"spec example {message}" for message in example_errors(spec)]
    produced: set[tuple[str, str, str]] = set()
    failed_instances: set[str] = set()

    fake_misp = ThreadingHttpServer(("127.0.0.1", 0), FakeMispHandler)
    fake_redis = ThreadingTcpServer(("127.0.0.1", 0), FakeRedisHandler)
    # A socket that is bound but not listening, so connections to its port are refused.
    refused = socket.socket()
    refused.bind(("127.0.0.1", 0))
    serve_in_thread(fake_misp)
    serve_in_thread(fake_redis)
    arguments = instance_arguments(
        f"http://127.0.0.1:{fake_misp.server_address[1]}",
        f"http://127.0.0.1:{refused.getsockname()[1]}",
        f"redis://127.0.0.1:{fake_redis.server_address[1]}",
    )

    with tempfile.TemporaryDirectory(prefix="check-openapi-") as log_dir:
        instances = {
            name: ServiceInstance(name, binary, args, Path(log_dir)) for name, args in arguments.items()
        }
        try:
            start_instances(list(instances.values()))
            for case in build_cases():
                if time.monotonic() - started > TOTAL_TIMEOUT_SECONDS:
                    failures.append(f"stopped after {TOTAL_TIMEOUT_SECONDS} s before every case ran")
                    break
                problems = check_case(spec, instances[case.instance], case, produced)
                if problems:
                    failed_instances.add(case.instance)
                failures += problems
        finally:
            for instance in instances.values():
                instance.stop()
            fake_misp.shutdown()
            fake_redis.shutdown()
            refused.close()
        for name in sorted(failed_instances):
            instance = instances[name]
            print(f"--- log tail of {instance.name}:\n{instance.log_tail(8)}")

    documented = spec.documented_triples()
    for triple in sorted(documented - produced):
        if triple[2] in UNPRODUCIBLE:
            print(f"not produced (cannot be): {triple[1].upper()} {triple[0]} {triple[2]}: {UNPRODUCIBLE[triple[2]]}")
        else:
            failures.append(f"{triple[1].upper()} {triple[0]} {triple[2]}: documented, but no request produced it")

    elapsed = time.monotonic() - started
    if failures:
        print(f"\nopenapi check FAILED ({len(failures)} problems, {elapsed:.1f} s):")
        for failure in failures:
            print(f"  - {failure}")
        return 1
    print(f"openapi check passed: {len(produced)} (path, method, status) triples produced, {elapsed:.1f} s")
    return 0


def check_case(spec: Spec, instance: ServiceInstance, case: Case, produced: set) -> list[str]:
    """Send the request of one case and check the response. Return the problems found."""
    label = f"[{instance.name}] {case.method} {case.path[:100]}"
    try:
        status, headers, body = send(
            instance.port, case.method, case.path, case.headers, case.body, case.timeout
        )
    except OSError as error:
        print(f"FAIL --- {label}")
        return [f"{label}: request failed: {error}"]
    problems = []
    if status != case.status:
        problems.append(f"status {status}, but the case expects {case.status}: {body[:300]!r}")
    template = spec.match_path(case.path.split("?", 1)[0])
    method = case.method.lower()
    found = spec.response_for(template, method, status)
    if found is None:
        operation = f"{method.upper()} {template}" if template else "an unknown path"
        problems.append(f"status {status} is not documented for {operation}: {body[:300]!r}")
    else:
        operation, response, pointer = found
        produced.add((operation, "*" if operation == "*" else method, str(status)))
        problems += header_errors(spec, response, pointer, headers)
        problems += body_errors(spec, response, pointer, case.method, headers, body)
        if case.path == "/openapi.yaml" and status == 200 and body != spec.text:
            problems.append("the served document differs from the checked file; rebuild the binary")
    print(f"{'FAIL' if problems else 'ok  '} {status} {label}")
    return [f"{label}: {problem}" for problem in problems]


def main() -> int:
    repo = Path(__file__).resolve().parents[2]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "binary", nargs="?", default=str(repo / "target/debug/misp-lookup"),
        help="the misp-lookup binary (default: target/debug/misp-lookup)",
    )
    parser.add_argument("--spec", type=Path, default=repo / "openapi.yaml")
    arguments = parser.parse_args()
    if not os.access(arguments.binary, os.X_OK):
        print(f"not an executable: {arguments.binary}; run cargo build first", file=sys.stderr)
        return 2
    return run(arguments.binary, arguments.spec)


if __name__ == "__main__":
    sys.exit(main())
