#!/usr/bin/env python3
"""Check the structure of the Graylog content pack in examples/graylog.

The checks follow the content pack v1 format that Graylog 5 and 6 export: value references
(`{"@type": ..., "@value": ...}`), entity ids that lookup tables use to name their cache and
data adapter, and parameters that replace a whole value. No Graylog server runs here, so
the pipeline rule sources are checked for the table names, fields and functions they use,
not compiled.

The planned `misp-lookup graylog-content-pack --url URL` subcommand embeds this file and
replaces DEFAULT_BASE_URL by text substitution. The check therefore also requires that the
string occurs only inside parameter default values.

Usage: check_content_pack.py [CONTENT_PACK.json]
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BASE_URL = "http://misp-lookup:8080"
ENTITY_TYPES = {"lookup_adapter", "lookup_cache", "lookup_table", "pipeline_rule", "pipeline"}
VALUE_TYPES = {"string", "integer", "long", "float", "double", "boolean", "parameter"}
EXPECTED_TABLES = {"misp-hash", "misp-ip", "misp-domain", "misp-url"}
# Wazuh and Sysmon fields the rules must cover, with the table each one is looked up in.
EXPECTED_RULE_FIELDS = {
    "syscheck_sha256_after": "misp-hash",
    "data_win_eventdata_hashes": "misp-hash",
    "data_win_eventdata_destinationIp": "misp-ip",
    "data_dstip": "misp-ip",
    "data_win_eventdata_queryName": "misp-domain",
}


class Checker:
    """Collects failures per named check."""

    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0

    def report(self, name: str, problems: list[str]) -> None:
        if problems:
            self.failed += 1
            for problem in problems:
                print(f"FAIL {name}: {problem}")
        else:
            self.passed += 1
            print(f"ok   {name}")


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"@type", "@value"} and value["@type"] in VALUE_TYPES


def plain(value: Any, parameters: dict[str, dict[str, Any]]) -> Any:
    """Resolve a value reference, reading a parameter's default value."""
    if value["@type"] == "parameter":
        return parameters[value["@value"]].get("default_value")
    return value["@value"]


def reference_problems(node: Any, where: str) -> list[str]:
    """Find scalar leaves of entity data that are not wrapped in a value reference.

    Maps and lists are plain JSON in the export format, and only their leaves are wrapped.
    """
    if is_reference(node):
        return []
    if isinstance(node, dict):
        if "@type" in node:
            return [f"{where}: malformed value reference {node}"]
        problems = []
        for key, value in node.items():
            problems += reference_problems(value, f"{where}.{key}")
        return problems
    if isinstance(node, list):
        problems = []
        for index, value in enumerate(node):
            problems += reference_problems(value, f"{where}[{index}]")
        return problems
    return [f"{where}: scalar {node!r} is not a value reference"]


def check_top_level(pack: dict[str, Any]) -> list[str]:
    problems = []
    for key, kind in [("v", str), ("id", str), ("rev", int), ("name", str), ("summary", str), ("description", str), ("vendor", str), ("url", str), ("parameters", list), ("entities", list)]:
        if not isinstance(pack.get(key), kind):
            problems.append(f"top-level {key!r} missing or not {kind.__name__}")
    if pack.get("v") != "1":
        problems.append(f"content pack version {pack.get('v')!r}, expected '1'")
    for parameter in pack.get("parameters", []):
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", str(parameter.get("name"))):
            problems.append(f"parameter name {parameter.get('name')!r}")
        if parameter.get("type") != "string" or not isinstance(parameter.get("default_value"), str):
            problems.append(f"parameter {parameter.get('name')} needs type string and a string default_value")
        for key in ("title", "description"):
            if not parameter.get(key):
                problems.append(f"parameter {parameter.get('name')} has no {key}")
    return problems


def check_entities(entities: list[dict[str, Any]]) -> list[str]:
    problems = []
    for index, entity in enumerate(entities):
        where = f"entity {index} ({entity.get('id')})"
        for key in ("v", "type", "id", "data", "constraints"):
            if key not in entity:
                problems.append(f"{where} has no {key!r}")
        entity_type = entity.get("type") or {}
        if entity_type.get("name") not in ENTITY_TYPES or entity_type.get("version") != "1":
            problems.append(f"{where} type {entity_type}")
        if entity.get("v") != "1":
            problems.append(f"{where} v {entity.get('v')!r}")
        for constraint in entity.get("constraints", []):
            if constraint.get("type") != "server-version" or not str(constraint.get("version", "")).startswith(">="):
                problems.append(f"{where} constraint {constraint}")
        problems += reference_problems(entity.get("data"), f"{where}.data")
    counts = Counter(entity.get("id") for entity in entities)
    problems += [f"id {entity_id} is used by {count} entities" for entity_id, count in counts.items() if count > 1]
    return problems


def main() -> int:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "examples" / "graylog" / "content-pack.json"
    text = path.read_text()
    pack = json.loads(text)
    checker = Checker()

    checker.report("top-level fields and parameters", check_top_level(pack))
    entities = pack.get("entities", [])
    checker.report("entity shape, unique ids, value references", check_entities(entities))

    parameters = {parameter["name"]: parameter for parameter in pack.get("parameters", [])}
    by_type: dict[str, list[dict[str, Any]]] = {}
    for entity in entities:
        by_type.setdefault(entity["type"]["name"], []).append(entity)
    ids = {entity["id"]: entity for entity in entities}

    # Data adapters.
    problems = []
    used_parameters = set()
    adapters = by_type.get("lookup_adapter", [])
    if not adapters:
        problems.append("no lookup_adapter entity")
    for adapter in adapters:
        name = adapter["data"]["name"]["@value"]
        config = adapter["data"].get("configuration", {})
        required = {"type", "url", "single_value_jsonpath", "multi_value_jsonpath", "user_agent", "headers"}
        if missing := required - set(config):
            problems.append(f"adapter {name} lacks {sorted(missing)}")
            continue
        if plain(config["type"], parameters) != "httpjsonpath":
            problems.append(f"adapter {name} type {config['type']}")
        if config["url"]["@type"] == "parameter":
            if config["url"]["@value"] not in parameters:
                problems.append(f"adapter {name} url names the undeclared parameter {config['url']['@value']}")
                continue
            used_parameters.add(config["url"]["@value"])
        url = plain(config["url"], parameters)
        if "/lookup/${key}" not in url:
            problems.append(f"adapter {name} url {url!r} lacks /lookup/${{key}}")
        kind = name.removeprefix("misp-")
        if not url.endswith(f"?type={kind}"):
            problems.append(f"adapter {name} url {url!r} does not end with ?type={kind}")
        if plain(config["single_value_jsonpath"], parameters) != "$.found":
            problems.append(f"adapter {name} single_value_jsonpath must be $.found")
        if plain(config["multi_value_jsonpath"], parameters) != "$.fields":
            problems.append(f"adapter {name} multi_value_jsonpath must be $.fields")
        headers = config["headers"]
        if not isinstance(headers, dict) or plain(headers.get("Accept", {"@type": "string", "@value": ""}), parameters) != "application/json":
            problems.append(f"adapter {name} needs the header Accept: application/json")
    unused = set(parameters) - used_parameters
    if unused:
        problems.append(f"parameters no adapter uses: {sorted(unused)}")
    checker.report("data adapters", problems)

    # Caches.
    problems = []
    caches = by_type.get("lookup_cache", [])
    if len(caches) != 1:
        problems.append(f"expected one lookup_cache, found {len(caches)}")
    for cache in caches:
        config = {key: plain(value, parameters) for key, value in cache["data"]["configuration"].items()}
        expected = {
            "type": "guava_cache", "max_size": 100000,
            "expire_after_access": 0,
            "expire_after_write": 1, "expire_after_write_unit": "HOURS",
            "ignore_null": False,
            "ttl_empty": 5, "ttl_empty_unit": "MINUTES",
        }
        for key, value in expected.items():
            if config.get(key) != value:
                problems.append(f"cache {key}={config.get(key)!r}, expected {value!r}")
    checker.report("cache settings", problems)

    # Lookup tables and their references.
    problems = []
    tables = {}
    for table in by_type.get("lookup_table", []):
        data = table["data"]
        name = data["name"]["@value"]
        tables[name] = table
        for key, expected_type in (("cache_name", "lookup_cache"), ("data_adapter_name", "lookup_adapter")):
            target = ids.get(data.get(key, {}).get("@value"))
            if target is None or target["type"]["name"] != expected_type:
                problems.append(f"table {name} {key} does not name a {expected_type} entity of this pack")
        adapter = ids.get(data.get("data_adapter_name", {}).get("@value"))
        if adapter is not None and adapter["data"]["name"]["@value"] != name:
            problems.append(f"table {name} uses adapter {adapter['data']['name']['@value']}")
        for key in ("default_single_value_type", "default_multi_value_type"):
            if data.get(key, {}).get("@value") not in {"NULL", "STRING", "NUMBER", "BOOLEAN", "OBJECT"}:
                problems.append(f"table {name} {key} {data.get(key)}")
    if set(tables) != EXPECTED_TABLES:
        problems.append(f"tables {sorted(tables)}, expected {sorted(EXPECTED_TABLES)}")
    checker.report("lookup tables reference this pack's cache and adapters", problems)

    # Pipeline rules.
    problems = []
    rule_titles = set()
    covered: dict[str, str] = {}
    for rule in by_type.get("pipeline_rule", []):
        title = rule["data"]["title"]["@value"]
        source = rule["data"]["source"]["@value"]
        rule_titles.add(title)
        if not source.startswith(f'rule "{title}"') or not source.rstrip().endswith("end"):
            problems.append(f"rule {title!r}: source must be 'rule \"{title}\" ... end'")
        when = source.split("\nthen", 1)[0]
        looked_up = set(re.findall(r'\blookup(?:_value)?\(\s*"([^"]+)"', source))
        if unknown := looked_up - set(tables):
            problems.append(f"rule {title!r} uses unknown lookup tables {sorted(unknown)}")
        if not looked_up:
            problems.append(f"rule {title!r} looks nothing up")
        if not re.search(r'to_bool\(lookup_value\("[^"]+",.*\)\) == true', when):
            problems.append(f"rule {title!r}: its when clause must test lookup_value(...) ($.found) for true")
        if 'set_fields(' not in source or 'prefix: "misp_"' not in source:
            problems.append(f"rule {title!r} must call set_fields(..., prefix: \"misp_\")")
        for field in re.findall(r'has_field\("([^"]+)"\)', when):
            for table in looked_up:
                covered[field] = table
    for field, table in EXPECTED_RULE_FIELDS.items():
        if covered.get(field) != table:
            problems.append(f"no rule looks up {field} in {table}")
    checker.report("pipeline rules", problems)

    problems = []
    for pipeline in by_type.get("pipeline", []):
        source = pipeline["data"]["source"]["@value"]
        for title in re.findall(r'rule "([^"]+)"', source):
            if title not in rule_titles:
                problems.append(f"pipeline stage names the unknown rule {title!r}")
        if not isinstance(pipeline["data"].get("connected_streams"), list):
            problems.append("pipeline connected_streams must be a list")
    checker.report("pipeline stages name existing rules", problems)

    # Text substitution by the planned subcommand.
    problems = []
    defaults = [parameter["default_value"] for parameter in pack.get("parameters", [])]
    in_defaults = sum(value.count(DEFAULT_BASE_URL) for value in defaults)
    if text.count(DEFAULT_BASE_URL) != in_defaults or in_defaults == 0:
        problems.append(f"{DEFAULT_BASE_URL} occurs {text.count(DEFAULT_BASE_URL)} times, {in_defaults} of them in parameter defaults; it must occur only there")
    replaced = json.loads(text.replace(DEFAULT_BASE_URL, "https://lookup.example.org:8443"))
    for parameter in replaced["parameters"]:
        if not parameter["default_value"].startswith("https://lookup.example.org:8443/lookup/${key}?type="):
            problems.append(f"after substitution, {parameter['name']} = {parameter['default_value']!r}")
    checker.report("base URL occurs only in parameter defaults", problems)

    print(f"content pack: {checker.passed} passed, {checker.failed} failed")
    return 1 if checker.failed else 0


if __name__ == "__main__":
    sys.exit(main())
