"""The Grafana dashboards: generated from dashboards/build.py, in sync, and naming only what the
sidecar emits. (tests/deploy/test_prometheus_live.py runs every query on a real Prometheus.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from dashboards import build
from sidecar.telemetry import names
from tests.deploy import queries

DASHBOARDS = {path.name: queries.load_dashboard(path) for path in queries.dashboard_files()}
TARGETS = [target for board in DASHBOARDS.values() for target in queries.targets(board)]
PROMETHEUS_TARGETS = [target for target in TARGETS if target.datasource == "prometheus"]
TEMPO_TARGETS = [target for target in TARGETS if target.datasource == "tempo"]


@pytest.mark.parametrize("name", sorted(build.DASHBOARDS))
def test_committed_json_is_exactly_what_the_builder_writes(name: str) -> None:
    """Regenerating a dashboard gives the committed file byte for byte: edit build.py, then run
    `python -m dashboards.build`, never the JSON by hand."""
    committed = (queries.DASHBOARDS / name).read_text(encoding="utf-8")
    assert build.render(build.DASHBOARDS[name]()) == committed, (
        f"dashboards/{name} is out of date: run `python -m dashboards.build`"
    )


def test_the_builder_writes_every_dashboard_file(tmp_path: Path) -> None:
    """`python -m dashboards.build` writes one file per dashboard and nothing else is shipped."""
    assert build.main(tmp_path) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(DASHBOARDS)


def test_the_overview_covers_every_concern_of_the_issue() -> None:
    """Requests, errors, latency percentiles, first chunk, tokens, cost, cache, limits, fallbacks,
    retries, queues, budgets, overhead and security each have a panel."""
    expr = " ".join(t.query for t in TARGETS if t.dashboard == "llm-sidecar-overview")
    for metric in (
        "sidecar_requests_total",
        "gen_ai_client_operation_duration_seconds_bucket",
        "gen_ai_client_operation_time_to_first_chunk_seconds_bucket",
        "gen_ai_client_token_usage_sum",
        "sidecar_cost_total",
        "sidecar_cache_lookups_total",
        "sidecar_ratelimit_rejections_total",
        "sidecar_fallbacks_total",
        "sidecar_retries_total",
        "sidecar_slow_operations_total",
        "sidecar_circuit_state",
        "sidecar_queue_depth",
        "sidecar_queue_wait_seconds_bucket",
        "sidecar_budget_utilization_bucket",
        "sidecar_overhead_seconds_bucket",
        "sidecar_security_findings_total",
    ):
        assert metric in expr, metric
    for q in ("0.5", "0.95", "0.99"):
        assert (
            f"histogram_quantile({q}, sum by (le, gen_ai_operation_name, gen_ai_request_model)"
            in (expr)
        )


@pytest.mark.parametrize("target", PROMETHEUS_TARGETS, ids=str)
def test_prometheus_queries_name_only_telemetry_from_names_py(target: queries.Target) -> None:
    """Every metric and label a panel reads is one names.py defines (as Prometheus spells it)."""
    assert queries.series_names(target.query) <= queries.known_metrics()
    assert queries.label_names(target.query) <= queries.known_labels()


@pytest.mark.parametrize("target", TARGETS, ids=str)
def test_every_variable_a_query_uses_is_defined(target: queries.Target) -> None:
    """A query's $variables are the dashboard's own or Grafana's built-ins, nothing undefined."""
    board = next(b for b in DASHBOARDS.values() if b["uid"] == target.dashboard)
    defined = set(queries.variables(board)) | {
        name.removeprefix("$") for name in queries.GRAFANA_BUILTINS
    }
    assert queries.used_variables(target.query) <= defined


@pytest.mark.parametrize("target", TEMPO_TARGETS, ids=str)
def test_traceql_reads_span_attributes_the_sidecar_sets(target: queries.Target) -> None:
    """Tempo tables filter and select span attributes from names.py, on the service's spans."""
    span_attributes = {
        value for key, value in vars(names).items() if key.isupper() and isinstance(value, str)
    }
    attributes = queries.traceql_attributes(target.query)
    assert ("resource", "service.name") in attributes
    for scope, name in attributes - {("resource", "service.name")}:
        assert scope == "span"
        assert name in span_attributes, name


def test_panels_query_through_the_datasource_variables() -> None:
    """No datasource uid is baked in: Prometheus panels use $datasource, Tempo ones $tempo, so
    the dashboards work with whatever uids provisioning gives the datasources."""
    for board in DASHBOARDS.values():
        for panel in board["panels"]:
            if panel["type"] == "row":
                continue
            source = panel["datasource"]
            assert (
                source["uid"]
                == {"prometheus": "${datasource}", "tempo": "${tempo}"}[source["type"]]
            )
            assert [t["refId"] for t in panel["targets"]] == list("ABCDEFGH")[
                : len(panel["targets"])
            ]


def test_panel_ids_are_unique_and_the_dashboards_distinct() -> None:
    """Grafana keys panels by id and dashboards by uid: duplicates would overwrite each other."""
    uids = [board["uid"] for board in DASHBOARDS.values()]
    assert len(set(uids)) == len(uids) == 2
    for board in DASHBOARDS.values():
        ids = [panel["id"] for panel in board["panels"]]
        assert len(set(ids)) == len(ids)
        assert 0 not in ids


def test_operation_and_model_variables_default_to_all() -> None:
    """Template variables for operation and model start at "All" (the regex .*), so a fresh
    dashboard shows every series."""
    overview = DASHBOARDS["overview.json"]
    variables = queries.variables(overview)
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("operation", "model", "gen_ai_operation"):
        assert variables[name]["includeAll"] is True
        assert variables[name]["allValue"] == ".*"
        assert variables[name]["current"]["value"] == "$__all"
