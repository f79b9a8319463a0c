"""Print the chart's rendered manifests, as `helm template` would, for machines without helm.

Usage: bash ci/deploy-checks/render.sh [--set key=value ...]

Values use helm's --set syntax for scalars: dotted keys and `true`, `false`, integers and
strings. The chart is rendered offline by the Helm SDK of the helm-python-sdk package.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import helm_python as helm

REPO = Path(__file__).resolve().parents[2]


def parse_scalar(text: str) -> Any:
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        return text


def set_value(values: dict[str, Any], assignment: str) -> None:
    key, separator, text = assignment.partition("=")
    if not separator or not key:
        raise SystemExit(f"render: invalid --set {assignment!r}; use key=value")
    *parents, leaf = key.split(".")
    node = values
    for parent in parents:
        node = node.setdefault(parent, {})
    node[leaf] = parse_scalar(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--name", default="misp-lookup", help="release name")
    parser.add_argument("--namespace", default="default")
    args = parser.parse_args()

    values: dict[str, Any] = {}
    for assignment in args.set:
        set_value(values, assignment)
    chart = helm.Chart.load(str(REPO / "helm" / "misp-lookup"))
    rendered = chart.render(values, name=args.name, namespace=args.namespace, is_install=True)
    for path in sorted(rendered):
        text = rendered[path].strip()
        if not text:
            continue
        if path.endswith("NOTES.txt"):
            print(text, file=sys.stderr)
            continue
        print(f"---\n# Source: {path}\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
