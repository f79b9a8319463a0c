#!/usr/bin/env python3
"""Check that the Grafana dashboard queries only metrics the service exports.

The known metric names come from one or more Prometheus text files scraped from a running
service (`curl http://127.0.0.1:PORT/metrics > metrics.txt`): every sample name, and every
name on a `# HELP` or `# TYPE` line. A histogram also contributes its `_bucket`, `_sum` and
`_count` series. The prometheus crate leaves a labelled metric out of /metrics until it has
a first label set, so names defined in src/metrics.rs but never observed are missing from a
short demo run. `--source src/metrics.rs` adds the names defined there, and the output lists
which names only the source vouched for.

Usage: check_dashboard.py DASHBOARD.json METRICS.txt [METRICS.txt ...] [--source metrics.rs]
Exits 1 if any query names an unknown metric or the dashboard's structure is wrong.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, Iterator

METRIC_NAME = re.compile(r"(?<![\w.$:])[A-Za-z_:][A-Za-z0-9_:]*")
# PromQL words that look like metric names but are operators or modifiers.
KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "offset", "bool", "inf", "nan", "atan2", "start", "end",
}
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:([A-Za-z_:][A-Za-z0-9_:]*(?:\{[^}]*\})?)\s*,\s*)?[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$")
QUERY_RESULT = re.compile(r"^\s*query_result\((.*)\)\s*$", re.S)
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
SUMMARY_SUFFIXES = ("_sum", "_count")


def metric_names(expr: str) -> set[str]:
    """Extract the metric names of a PromQL expression.

    Strings, label matchers, range selectors and grouping clauses are removed first. What is
    left is operators, numbers, function calls and metric names, and an identifier not
    followed by "(" that is not a PromQL keyword is a metric name.
    """
    text = STRING.sub('""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    previous = None
    while previous != text:
        previous = text
        text = GROUPING.sub(" ", text)
    names = set()
    for match in METRIC_NAME.finditer(text):
        name = match.group(0)
        rest = text[match.end():].lstrip()
        if rest.startswith("(") or name in KEYWORDS:
            continue
        names.add(name)
    return names


def variable_metric_names(query: str) -> set[str]:
    """Extract metric names from a Prometheus template variable query."""
    match = LABEL_VALUES.match(query)
    if match:
        return metric_names(match.group(1)) if match.group(1) else set()
    match = QUERY_RESULT.match(query)
    if match:
        return metric_names(match.group(1))
    if query.strip().startswith("metrics("):
        return set()
    return metric_names(query)


def known_from_exposition(text: str) -> set[str]:
    """Collect the metric names of a Prometheus text exposition."""
    names: set[str] = set()
    types: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "#":
            if len(parts) >= 3 and parts[1] in {"HELP", "TYPE"}:
                names.add(parts[2])
                if parts[1] == "TYPE" and len(parts) >= 4:
                    types[parts[2]] = parts[3]
            continue
        names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    for name, kind in types.items():
        if kind == "histogram":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
        elif kind == "summary":
            names.update(name + suffix for suffix in SUMMARY_SUFFIXES)
    return names


def known_from_source(text: str) -> set[str]:
    """Collect the metric names defined as string literals in Rust source (src/metrics.rs)."""
    names: set[str] = set()
    constructors = r"\b(Opts|HistogramOpts|IntCounter|IntGauge|Counter|Gauge)::new\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\""
    for match in re.finditer(constructors, text):
        kind, name = match.groups()
        names.add(name)
        if kind == "HistogramOpts":
            names.update(name + suffix for suffix in HISTOGRAM_SUFFIXES)
    return names


def walk_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def check_structure(dashboard: dict[str, Any]) -> list[str]:
    problems = []
    if not isinstance(dashboard.get("schemaVersion"), int):
        problems.append("schemaVersion missing")
    variables = {v.get("name"): v for v in dashboard.get("templating", {}).get("list", [])}
    datasource = variables.get("datasource")
    if not datasource or datasource.get("type") != "datasource" or datasource.get("query") != "prometheus":
        problems.append("templating needs a 'datasource' variable of type datasource for prometheus")
    ids = [panel.get("id") for panel in walk_panels(dashboard.get("panels", []))]
    if len(ids) != len(set(ids)):
        problems.append(f"panel ids are not unique: {ids}")
    for panel in walk_panels(dashboard.get("panels", [])):
        if panel.get("type") == "row":
            continue
        title = panel.get("title", "?")
        if "gridPos" not in panel:
            problems.append(f"panel {title!r} has no gridPos")
        if (panel.get("datasource") or {}).get("uid") != "${datasource}":
            problems.append(f"panel {title!r} does not use the ${{datasource}} variable")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"panel {title!r} has no query")
        for target in targets:
            if not target.get("expr"):
                problems.append(f"panel {title!r} target {target.get('refId')} has no expr")
            elif (target.get("datasource") or {}).get("uid") != "${datasource}":
                problems.append(f"panel {title!r} target {target.get('refId')} does not use ${{datasource}}")
    return problems


def queries_of(dashboard: dict[str, Any]) -> Iterator[tuple[str, set[str]]]:
    """Yield (where, metric names) for every panel query and template variable query."""
    for panel in walk_panels(dashboard.get("panels", [])):
        for target in panel.get("targets") or []:
            expr = target.get("expr")
            if expr:
                yield f"panel {panel.get('title')!r} {target.get('refId')}", metric_names(expr)
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query", "")
        for text in {query or "", variable.get("definition") or ""}:
            if text:
                yield f"variable {variable.get('name')!r}", variable_metric_names(text)


def self_test() -> list[str]:
    """Check the extractor on known expressions, so a parser bug cannot pass silently."""
    cases = {
        'sum by (tier) (rate(a_total{tier="memory",x=~"$i"}[$__rate_interval])) / ignoring(x) b_total': {"a_total", "b_total"},
        "histogram_quantile(0.99, sum by (le, route) (rate(h_bucket[5m])))": {"h_bucket"},
        "max(c) by (instance) offset 5m > bool 1 and on(job) d unless e": {"c", "d", "e"},
        'label_replace(up{job="x"}, "dst", "$1", "src", "(.*)")': {"up"},
        "sum(rate(f_sum[1m])) / sum(rate(f_count[1m])) * 1e3": {"f_sum", "f_count"},
    }
    failures = []
    for expr, expected in cases.items():
        found = metric_names(expr)
        if found != expected:
            failures.append(f"extractor read {sorted(found)} from {expr!r}, expected {sorted(expected)}")
    if variable_metric_names("label_values(g_total, instance)") != {"g_total"}:
        failures.append("label_values(metric, label) must yield the metric only")
    return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dashboard", type=Path)
    parser.add_argument("metrics", type=Path, nargs="+", help="Prometheus text scraped from /metrics")
    parser.add_argument("--source", type=Path, action="append", default=[], help="Rust file defining the metrics")
    args = parser.parse_args()

    passed = failed = 0

    def report(name: str, problems: list[str]) -> None:
        nonlocal passed, failed
        if problems:
            failed += 1
            for problem in problems:
                print(f"FAIL {name}: {problem}")
        else:
            passed += 1
            print(f"ok   {name}")

    report("extractor self-test", self_test())

    live: set[str] = set()
    for path in args.metrics:
        live |= known_from_exposition(path.read_text())
    from_source: set[str] = set()
    for path in args.source:
        from_source |= known_from_source(path.read_text())
    report("metrics text names misp_lookup_ metrics", [] if any(n.startswith("misp_lookup_") for n in live) else ["no misp_lookup_ metric in the metrics text"])

    dashboard = json.loads(args.dashboard.read_text())
    report("dashboard structure", check_structure(dashboard))

    unknown = []
    used: set[str] = set()
    for where, names in queries_of(dashboard):
        used |= names
        for name in sorted(names - live - from_source):
            unknown.append(f"{where} uses {name}, which neither the metrics text nor the source defines")
    report("dashboard queries use only exported metrics", unknown)

    source_only = sorted(used & (from_source - live))
    if source_only:
        print(f"note: these names are defined in the source but had no series in the metrics text: {', '.join(source_only)}")
    print(f"dashboard: {len(used)} metric names in queries")
    print(f"dashboard: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
