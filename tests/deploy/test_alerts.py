"""The Prometheus rules and Alertmanager config in alerts/: valid for promtool and amtool, unit
tested alert by alert (alerts/tests/), and naming only telemetry the sidecar emits."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy import queries

SEVERITIES = {"page", "warning", "ticket"}


PACKAGES = {"promtool": "prometheus", "amtool": "prometheus-alertmanager"}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian: apt-get install {PACKAGES[name]})")
    return path


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def rule_test_files() -> list[Path]:
    return sorted(queries.RULE_TESTS.glob("*.yml"))


def test_promtool_check_rules_accepts_the_rules() -> None:
    """promtool parses every expression and template and finds no problem."""
    result = run(tool("promtool"), "check", "rules", str(queries.RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    """Every alert fires on the series of its scenario (labels and rendered annotations
    checked) and stays silent on the near misses; see alerts/tests/*.yml."""
    files = [str(path) for path in rule_test_files()]
    assert files
    result = run(tool("promtool"), "test", "rules", *files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def _alert_tests() -> list[dict[str, Any]]:
    cases = []
    for path in rule_test_files():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert document["rule_files"] == ["../sidecar.rules.yml"], path
        for test in document["tests"]:
            cases.extend(test.get("alert_rule_test", []))
    return cases


@pytest.mark.parametrize("rule", queries.alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_has_a_firing_and_a_silent_case(rule: dict[str, Any]) -> None:
    """Each alert is unit tested both ways: a scenario where it fires and one where it does not."""
    cases = [case for case in _alert_tests() if case["alertname"] == rule["alert"]]
    assert any(case["exp_alerts"] for case in cases), "no firing case"
    assert any(not case["exp_alerts"] for case in cases), "no silent case"


@pytest.mark.parametrize("rule", queries.alert_rules(), ids=lambda rule: str(rule["alert"]))
def test_every_alert_has_a_severity_and_says_what_is_wrong(rule: dict[str, Any]) -> None:
    """Alertmanager routes on severity; the summary and description are what a human reads."""
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]


@pytest.mark.parametrize(
    "rule", queries.load_rules(), ids=lambda r: str(r.get("alert", r.get("record")))
)
def test_rules_read_only_telemetry_from_names_py_and_recorded_series(rule: dict[str, Any]) -> None:
    """A rule reads metrics names.py defines (as Prometheus spells them) or series recorded
    by a rule of this file, and groups by labels the sidecar sets."""
    recorded = {r["record"] for r in queries.recording_rules()}
    assert queries.series_names(rule["expr"]) <= queries.known_metrics() | recorded
    assert queries.label_names(rule["expr"]) <= queries.known_labels()


def test_recording_rule_names_follow_the_level_metric_operations_convention() -> None:
    """level:metric:operations, Prometheus' naming practice for recorded series."""
    for rule in queries.recording_rules():
        assert re.fullmatch(r"[a-z_]+:[a-z0-9_]+:(ratio_)?rate\d+[mh]", rule["record"]), rule


def test_burn_rate_alerts_use_the_workbook_windows_and_factors() -> None:
    """99.9% SLO: 14.4x over 1h and 5m, 6x over 6h and 30m, both windows required."""
    rules = {rule["alert"]: rule for rule in queries.alert_rules()}
    fast = rules["SidecarErrorBudgetBurnFast"]["expr"]
    slow = rules["SidecarErrorBudgetBurnSlow"]["expr"]
    assert queries.operands(fast) == [
        "sidecar_operation:slo_errors:ratio_rate1h",
        "sidecar_operation:slo_errors:ratio_rate5m",
    ]
    assert fast.count("(14.4 * 0.001)") == 2
    assert queries.operands(slow) == [
        "sidecar_operation:slo_errors:ratio_rate6h",
        "sidecar_operation:slo_errors:ratio_rate30m",
    ]
    assert slow.count("(6 * 0.001)") == 2


def test_operands_split_conditions_at_the_top_level_only() -> None:
    """The live test evaluates each side of a condition; the split must respect nesting."""
    expr = (
        'sum by (a) (rate(x{b=~"c|d>e"}[5m])) > bool 0.5 and on (a) y * 300 >= 10 '
        'unless absent(z{a!="1"}) or w == (2 * 3)'
    )
    assert queries.operands(expr) == [
        'sum by (a) (rate(x{b=~"c|d>e"}[5m]))',
        "on (a) y * 300",
        'z{a!="1"}',
        "w",
    ]


def _uncomment_examples(text: str) -> str:
    """alertmanager.yml with its "example:" blocks switched on (their "# " removed)."""
    lines, inside = [], False
    for line in text.splitlines(keepends=True):
        marker = line.strip()
        if marker.startswith(("# example:", "# end of example")):
            inside = marker.startswith("# example:")
            lines.append(line)
        else:
            lines.append(re.sub(r"^(\s*)# ", r"\1", line) if inside else line)
    return "".join(lines)


def test_alertmanager_config_is_valid() -> None:
    """amtool accepts the shipped config: every alert goes to the webhook receiver."""
    result = run(tool("amtool"), "check-config", str(queries.ALERTMANAGER))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(queries.ALERTMANAGER.read_text(encoding="utf-8"))
    assert config["route"]["receiver"] == "webhook"
    assert [r["name"] for r in config["receivers"]] == ["webhook"]


def test_alertmanager_slack_and_pagerduty_examples_are_valid(tmp_path: Path) -> None:
    """The commented Slack and PagerDuty receivers, switched on, are a valid config too."""
    enabled = tmp_path / "alertmanager.yml"
    enabled.write_text(
        _uncomment_examples(queries.ALERTMANAGER.read_text(encoding="utf-8")), encoding="utf-8"
    )
    result = run(tool("amtool"), "check-config", str(enabled))
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(enabled.read_text(encoding="utf-8"))
    assert {r["name"] for r in config["receivers"]} == {"webhook", "pagerduty", "slack"}
    assert {r["receiver"] for r in config["route"]["routes"]} == {"pagerduty", "slack", "webhook"}


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        ({"alertname": "SidecarErrorBudgetBurnFast", "severity": "page"}, "webhook"),
        ({"alertname": "SidecarSlowOperation", "severity": "warning"}, "webhook"),
    ],
)
def test_alertmanager_routes_pages_and_warnings_to_the_webhook(
    labels: dict[str, str], receivers: str
) -> None:
    """amtool's routing test: both severities end at the webhook receiver."""
    result = run(
        tool("amtool"),
        "config",
        "routes",
        "test",
        f"--config.file={queries.ALERTMANAGER}",
        *(f"{key}={value}" for key, value in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receivers


def test_the_readme_table_matches_the_rules() -> None:
    """alerts/README.md lists every alert with its `for` and severity, as the rules have them."""
    readme = (queries.RULES.parent / "README.md").read_text(encoding="utf-8")
    rows = {
        match.group(1): (match.group(2), match.group(3))
        for match in re.finditer(
            r"^\| `(\w+)` \|.*\| (\S+) \| (\w+) \|$", readme, flags=re.MULTILINE
        )
    }
    expected = {
        rule["alert"]: (rule.get("for", "-"), rule["labels"]["severity"])
        for rule in queries.alert_rules()
    }
    assert rows == expected
