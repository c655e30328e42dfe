"""Reading the queries out of the shipped dashboards and rules, and checking their names.

The dashboards (``dashboards/*.json``) and rules (``alerts/sidecar.rules.yml``) are read as
shipped, never rebuilt here, so the tests check exactly what users deploy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sidecar.telemetry import names

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"
RULES = ROOT / "alerts" / "sidecar.rules.yml"
RULE_TESTS = ROOT / "alerts" / "tests"
ALERTMANAGER = ROOT / "alerts" / "alertmanager.yml"

# What Grafana puts in for its own variables when a dashboard covers the last hour with the
# usual 15 s scrape interval; the tests' 1 s scrapes make any window of seconds work too.
GRAFANA_BUILTINS = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


@dataclass(frozen=True, slots=True)
class Target:
    """One query of one dashboard panel."""

    dashboard: str
    panel: str
    datasource: str  # prometheus | tempo
    query: str

    def __str__(self) -> str:
        return f"{self.dashboard} / {self.panel}: {self.query}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load_dashboard(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def targets(dashboard: dict[str, Any]) -> Iterator[Target]:
    """Every query of every panel (rows included, collapsed or not)."""
    for panel in _panels(dashboard["panels"]):
        kind = (panel.get("datasource") or {}).get("type", "")
        for target in panel.get("targets", []):
            query = target.get("expr") if kind == "prometheus" else target.get("query")
            yield Target(dashboard["uid"], panel["title"], kind, query or "")


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {var["name"]: var for var in dashboard["templating"]["list"]}


def substitute(query: str, dashboard: dict[str, Any]) -> str:
    """The query as Grafana sends it with every variable at its default.

    Query variables default to "All" (their ``allValue``), text boxes to their default text.
    """
    values = dict(GRAFANA_BUILTINS)
    for name, var in variables(dashboard).items():
        if var["type"] == "query":
            values[f"${name}"] = var["allValue"]
        elif var["type"] == "textbox":
            values[f"${name}"] = var["query"]
    # Longest first, so $model never eats the start of $model_family.
    for name in sorted(values, key=len, reverse=True):
        query = query.replace(name, values[name])
    return query


def used_variables(query: str) -> set[str]:
    return set(re.findall(r"\$(\w+)", query))


# --- rules ---------------------------------------------------------------------------------------


def load_rules(path: Path = RULES) -> list[dict[str, Any]]:
    """Every rule (recording and alerting) of every group, in file order."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def alert_rules() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "alert" in rule]


def recording_rules() -> list[dict[str, Any]]:
    return [rule for rule in load_rules() if "record" in rule]


_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")
_SET_OPERATORS = ("unless", "and", "or")
_NAME_CHAR = re.compile(r"[\w:]")
_SCALAR = re.compile(r"[\d\s.+\-*/()]+")


def operands(expr: str) -> list[str]:
    """The sides of an alert condition: ``a > 0.5 and b * 300 >= 10`` gives ``[a, b * 300]``.

    The expression is cut at its top-level comparison and set operators (those outside any
    parentheses, braces, brackets or strings); plain numbers such as thresholds are dropped, and
    ``absent(x)`` stands for ``x``. A healthy system legitimately leaves the whole condition
    empty, but each side must return data, or a metric name is wrong.
    """
    parts = _split_top_level(expr)
    sides = []
    for part in (p.strip() for p in parts):
        if not part or _SCALAR.fullmatch(part):
            continue
        match = re.fullmatch(r"absent\((.*)\)", part, re.DOTALL)
        sides.append(match.group(1).strip() if match else part)
    return sides


def _split_top_level(expr: str) -> list[str]:
    parts: list[str] = []
    depth, start, i = 0, 0, 0
    quote: str | None = None
    while i < len(expr):
        char = expr[i]
        if quote is not None:
            if char == "\\":
                i += 2
                continue
            if char == quote:
                quote = None
        elif char in "\"'`":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif depth == 0 and (operator := _operator_at(expr, i)):
            parts.append(expr[start:i])
            i += len(operator)
            modifier = re.match(r"\s*bool\b", expr[i:])  # "> bool 0.5" compares to 0 or 1
            if modifier is not None:
                i += modifier.end()
            start = i
            continue
        i += 1
    parts.append(expr[start:])
    return parts


def _operator_at(expr: str, i: int) -> str | None:
    for operator in _COMPARISONS:
        if expr.startswith(operator, i):
            return operator
    before = expr[i - 1] if i > 0 else " "
    for operator in _SET_OPERATORS:
        after = expr[i + len(operator) : i + len(operator) + 1] or " "
        if (
            expr.startswith(operator, i)
            and not _NAME_CHAR.match(before)
            and not _NAME_CHAR.match(after)
        ):
            return operator
    return None


# --- names ---------------------------------------------------------------------------------------

_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "bool", "offset",
     "group_left", "group_right", "inf", "nan"}
)  # fmt: skip
_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")
_UNIT_SUFFIXES = ("", "_seconds")


def _telemetry_names() -> set[str]:
    return {
        value.replace(".", "_")
        for key, value in vars(names).items()
        if key.isupper() and isinstance(value, str)
    }


def known_metrics() -> set[str]:
    """Every series name names.py can produce in Prometheus (name, unit, type suffixes)."""
    return {
        base + unit + suffix
        for base in _telemetry_names()
        for unit in _UNIT_SUFFIXES
        for suffix in _SUFFIXES
    }


def known_labels() -> set[str]:
    return _telemetry_names() | {"le"}


def series_names(expr: str) -> set[str]:
    """Metric (and recorded series) names a PromQL expression reads."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)  # label values and regexes
    text = re.sub(r"\{[^}]*\}", "", text)  # selectors
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)
    found = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(?![\w:])(?!\s*\()", text):
        if match.group(1) not in _KEYWORDS:
            found.add(match.group(1))
    return found


def label_names(expr: str) -> set[str]:
    """Label names a PromQL expression filters or groups on."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    found = set()
    for selector in re.findall(r"\{([^}]*)\}", text):
        found.update(re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector))
    for clause in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
        found.update(label.strip() for label in clause.split(",") if label.strip())
    return found


def traceql_attributes(query: str) -> set[tuple[str, str]]:
    """``(scope, name)`` of every attribute a TraceQL query reads: ``span.sidecar.user``..."""
    return set(re.findall(r"\b(span|resource)\.([a-z_][\w.]*[a-z_0-9])", query))
