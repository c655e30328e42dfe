"""The Grafana dashboards, built with Grafana's foundation SDK and written as committed JSON.

``python -m dashboards.build`` regenerates ``dashboards/overview.json`` and
``dashboards/traces.json``; the test suite fails when the committed files differ from what this
module builds, and evaluates every Prometheus query below against a Prometheus that scraped a
real sidecar (tests/deploy/). Grafana loads the JSON through provisioning (deploy/grafana/).
The SDK is pinned (pyproject.toml) to its Grafana 11.3 flavour, the Grafana docker-compose runs.

Metric and label names are those of :mod:`sidecar.telemetry.names` as Prometheus spells them
(dots become underscores; counters end in ``_total``, second histograms in ``_seconds``). The
queries are written out in full, so what a panel shows can be read here without running code.

Template variables: ``$datasource`` (Prometheus), ``$operation`` (the sidecar operation: chat,
intent, ...), ``$model`` (the folded model label) and ``$gen_ai_operation`` (the GenAI
operation of the duration histograms: chat, embeddings, ...). "All" is the regex ``.*``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import (
    common,
    prometheus,
    statetimeline,
    table,
    tempo,
    timeseries,
)
from grafana_foundation_sdk.builders import dashboard as grafana
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.common import LegendDisplayMode, LegendPlacement

HERE = Path(__file__).resolve().parent
PROMETHEUS = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
TEMPO = model.DataSourceRef(type_val="tempo", uid="${tempo}")
TAG = "llm-sidecar"

# The selectors every query carries, so the variables filter every panel they apply to.
OPS = 'sidecar_operation=~"$operation"'
OPS_MODELS = 'sidecar_operation=~"$operation", sidecar_model=~"$model"'
GEN_AI = 'gen_ai_operation_name=~"$gen_ai_operation", gen_ai_request_model=~"$model"'
# SLO errors, as in alerts/sidecar.rules.yml: failures on the model side or the sidecar's own,
# not the caller's mistakes, exhausted budgets or the sidecar's rate limiting.
SLO_ERRORS = (
    'sidecar_outcome="error", '
    'sidecar_error_code=~"NETWORK|MODEL_UNAVAILABLE|TIMEOUT|INTERNAL|RATE_LIMIT"'
)


@dataclass(frozen=True, slots=True)
class Query:
    """One Prometheus query of a panel and its legend."""

    expr: str
    legend: str
    exemplar: bool = False

    def target(self, ref_id: str) -> prometheus.Dataquery:
        query = prometheus.Dataquery().expr(self.expr).legend_format(self.legend).ref_id(ref_id)
        return query.exemplar(True) if self.exemplar else query


def rate(metric: str, selector: str, by: str) -> str:
    """Per-second rate of a counter (or histogram part), summed by the given labels."""
    series = f"{metric}{{{selector}}}" if selector else metric
    return f"sum by ({by}) (rate({series}[$__rate_interval]))"


def quantile(q: float, histogram: str, selector: str, by: str) -> str:
    """A quantile from a histogram's buckets, per group of the given labels."""
    return f"histogram_quantile({q}, {rate(histogram + '_bucket', selector, 'le, ' + by)})"


def percentiles(
    histogram: str, selector: str, by: str, legend: str, qs: Sequence[float]
) -> list[Query]:
    return [Query(quantile(q, histogram, selector, by), f"p{round(q * 100)} {legend}") for q in qs]


def legend() -> common.VizLegendOptions:
    return (
        common.VizLegendOptions()
        .display_mode(LegendDisplayMode.TABLE)
        .placement(LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(["mean", "max", "lastNotNull"])
    )


def graph(
    title: str, description: str, unit: str, queries: Sequence[Query], *, width: int = 12
) -> timeseries.Panel:
    """A time series panel on the Prometheus variable."""
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .span(width)
        .height(8)
        .fill_opacity(10)
        .legend(legend())
    )
    for ref_id, query in zip("ABCDEFGH", queries, strict=False):
        panel.with_target(query.target(ref_id))
    return panel


def traces(title: str, description: str, traceql: str) -> table.Panel:
    """A table of traces from Tempo for a TraceQL query."""
    query = tempo.TempoQuery().query(traceql).query_type("traceql").limit(50).ref_id("A")
    return (
        table.Panel()
        .title(title)
        .description(description)
        .datasource(TEMPO)
        .span(24)
        .height(9)
        .with_target(query)
    )


def all_of(name: str, label: str, query: str, description: str) -> grafana.QueryVariable:
    """A multi-value variable from label values, "All" (any value) by default."""
    return (
        grafana.QueryVariable(name)
        .label(label)
        .description(description)
        .datasource(PROMETHEUS)
        .query(query)
        .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(model.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(model.VariableOption(text="All", value="$__all", selected=True))
    )


def textbox(name: str, label: str, default: str, description: str) -> grafana.TextBoxVariable:
    return (
        grafana.TextBoxVariable(name)
        .label(label)
        .description(description)
        .default_value(default)
        .current(model.VariableOption(text=default, value=default, selected=True))
    )


def prometheus_variable() -> grafana.DatasourceVariable:
    return grafana.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def operation_variable() -> grafana.QueryVariable:
    return all_of(
        "operation",
        "Operation",
        "label_values(sidecar_requests_total, sidecar_operation)",
        "The sidecar operation (X-Sidecar-Operation or the endpoint's default)",
    )


def other_dashboards() -> grafana.DashboardLink:
    return (
        grafana.DashboardLink("LLM sidecar")
        .type(model.DashboardLinkType.DASHBOARDS)
        .tags([TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )


# --- overview ----------------------------------------------------------------------------------


def traffic_panels() -> list[Builder[model.Panel]]:
    requests = "sidecar_requests_total"
    return [
        graph(
            "Requests per second",
            "Requests the sidecar answered, by operation and outcome (success, error, "
            "cache_hit, rate_limited).",
            "reqps",
            [
                Query(
                    rate(requests, OPS_MODELS, "sidecar_operation, sidecar_outcome"),
                    "{{sidecar_operation}} {{sidecar_outcome}}",
                )
            ],
        ),
        graph(
            "Error ratio (SLO errors)",
            "Share of requests that failed on the model side or in the sidecar, after retries "
            "and fallbacks: the SLI of the 99.9% SLO the burn-rate alerts watch. The caller's "
            "own errors, exhausted budgets and rate limiting are not counted.",
            "percentunit",
            [
                Query(
                    f"{rate(requests, f'{SLO_ERRORS}, {OPS_MODELS}', 'sidecar_operation')}"
                    f" / {rate(requests, OPS_MODELS, 'sidecar_operation')}",
                    "{{sidecar_operation}}",
                )
            ],
        ),
        graph(
            "Errors by code",
            "Failed requests per second by the sidecar's error code (SPEC: Errors).",
            "reqps",
            [
                Query(
                    rate(
                        requests,
                        f'sidecar_outcome="error", {OPS_MODELS}',
                        "sidecar_operation, sidecar_error_code",
                    ),
                    "{{sidecar_operation}} {{sidecar_error_code}}",
                )
            ],
            width=24,
        ),
    ]


def latency_panels() -> list[Builder[model.Panel]]:
    by = "gen_ai_operation_name, gen_ai_request_model"
    labels = "{{gen_ai_operation_name}} {{gen_ai_request_model}}"
    return [
        graph(
            "Latency p50 / p95 / p99 by operation and model",
            "Whole-request duration (retries and fallbacks included) of model calls that "
            "reached the upstream, from gen_ai.client.operation.duration.",
            "s",
            percentiles(
                "gen_ai_client_operation_duration_seconds", GEN_AI, by, labels, (0.5, 0.95, 0.99)
            ),
            width=24,
        ),
        graph(
            "Time to first chunk p50 / p95 (streaming)",
            "From the request's arrival to the first streamed event the client got.",
            "s",
            percentiles(
                "gen_ai_client_operation_time_to_first_chunk_seconds",
                GEN_AI,
                by,
                labels,
                (0.5, 0.95),
            ),
        ),
        graph(
            "Slow requests (over the operation's slow_ms)",
            "Share of requests slower than their operation's slow_ms. Above 5% the operation's "
            "p95 is over its threshold: the SidecarSlowOperation alert.",
            "percentunit",
            [
                Query(
                    f"{rate('sidecar_slow_operations_total', OPS_MODELS, 'sidecar_operation')}"
                    f" / {rate('sidecar_requests_total', OPS_MODELS, 'sidecar_operation')}",
                    "{{sidecar_operation}}",
                )
            ],
        ),
        graph(
            "Sidecar overhead p50 / p99",
            "Time spent in the sidecar itself: the request's duration minus the time waiting on "
            "the upstream (and for a slot on it).",
            "s",
            percentiles(
                "sidecar_overhead_seconds",
                OPS,
                "sidecar_operation",
                "{{sidecar_operation}}",
                (0.5, 0.99),
            ),
            width=24,
        ),
    ]


LE_80 = 'le="0.8"'  # the bucket of observations up to 80% of the budget


def cost_panels() -> list[Builder[model.Panel]]:
    utilization = "sidecar_budget_utilization"
    return [
        graph(
            "Tokens per second by model",
            "Input and output tokens of model calls, from gen_ai.client.token.usage.",
            "short",
            [
                Query(
                    rate(
                        "gen_ai_client_token_usage_sum",
                        GEN_AI,
                        "gen_ai_request_model, gen_ai_token_type",
                    ),
                    "{{gen_ai_request_model}} {{gen_ai_token_type}}",
                )
            ],
        ),
        graph(
            "Cost per hour by model",
            "US dollars per hour at the current rate, from the price table "
            "(calls to unpriced models are not in it).",
            "currencyUSD",
            [
                Query(
                    f"{rate('sidecar_cost_total', OPS_MODELS, 'sidecar_model')} * 3600",
                    "{{sidecar_model}}",
                )
            ],
        ),
        graph(
            "Budget utilization (users past half their budget)",
            "Share of the monthly budget used, observed after each priced request of a user "
            "past 50% of their budget (and on each refusal once it is spent).",
            "percentunit",
            percentiles(
                utilization, OPS, "sidecar_operation", "{{sidecar_operation}}", (0.5, 0.99)
            ),
        ),
        graph(
            "Requests from users past 80% of their budget",
            "The SidecarBudgetNearlySpent alert fires while this is above zero.",
            "reqps",
            [
                Query(
                    f"{rate(utilization + '_count', OPS, 'sidecar_operation')}"
                    f" - {rate(utilization + '_bucket', OPS + ', ' + LE_80, 'sidecar_operation')}",
                    "{{sidecar_operation}}",
                )
            ],
        ),
    ]


def resilience_panels() -> list[Builder[model.Panel]]:
    lookups = "sidecar_cache_lookups_total"
    hits = rate(lookups, f'sidecar_cache_result="hit", {OPS}', "sidecar_operation")
    all_lookups = rate(lookups, OPS, "sidecar_operation")
    circuit_states = {
        "0": model.ValueMappingResult(text="closed", color="green", index=0),
        "1": model.ValueMappingResult(text="half-open", color="yellow", index=1),
        "2": model.ValueMappingResult(text="open", color="red", index=2),
    }
    circuits = (
        statetimeline.Panel()
        .title("Circuit breakers")
        .description("Per provider and model: closed, half-open (probing) or open.")
        .datasource(PROMETHEUS)
        .span(24)
        .height(6)
        .mappings([model.ValueMap(options=circuit_states)])
        .with_target(
            Query(
                "max by (gen_ai_provider_name, sidecar_model) "
                '(sidecar_circuit_state{sidecar_model=~"$model"})',
                "{{gen_ai_provider_name}} {{sidecar_model}}",
            ).target("A")
        )
    )
    return [
        graph(
            "Cache hit rate by operation",
            "Share of cache lookups answered from the cache (operations with cache_ttl_s). The "
            "SidecarCacheHitRateLow alert fires under 30%.",
            "percentunit",
            [Query(f"({hits} or 0 * {all_lookups}) / {all_lookups}", "{{sidecar_operation}}")],
        ),
        graph(
            "Rate-limit rejections per second",
            "Requests the sidecar's own rate limits refused (429), by operation and limit.",
            "reqps",
            [
                Query(
                    rate(
                        "sidecar_ratelimit_rejections_total",
                        OPS,
                        "sidecar_operation, sidecar_limit",
                    ),
                    "{{sidecar_operation}} {{sidecar_limit}}",
                )
            ],
        ),
        graph(
            "Fallbacks per second",
            "Requests that fell back to another model of the operation's fallback chain "
            "(the one tried next; it may have failed too).",
            "reqps",
            [
                Query(
                    rate(
                        "sidecar_fallbacks_total",
                        OPS,
                        "sidecar_operation, sidecar_fallback_from, sidecar_fallback_to",
                    ),
                    "{{sidecar_operation}}: {{sidecar_fallback_from}} → {{sidecar_fallback_to}}",
                )
            ],
        ),
        graph(
            "Retries per second by error",
            "Upstream calls the sidecar repeated, by the error that caused the retry.",
            "reqps",
            [
                Query(
                    rate(
                        "sidecar_retries_total", OPS_MODELS, "sidecar_operation, sidecar_error_code"
                    ),
                    "{{sidecar_operation}} {{sidecar_error_code}}",
                )
            ],
        ),
        circuits,
    ]


def queue_panels() -> list[Builder[model.Panel]]:
    wait = "sidecar_queue_wait_seconds"
    return [
        graph(
            "Queue depth by provider and priority",
            "Requests waiting for a slot on their provider (priority admission).",
            "short",
            [
                Query(
                    "sum by (gen_ai_provider_name, sidecar_priority) (sidecar_queue_depth)",
                    "{{gen_ai_provider_name}} {{sidecar_priority}}",
                )
            ],
        ),
        graph(
            "Model calls in flight and the adaptive limit",
            "Calls in flight per provider, and how many it may run at once (429s lower it).",
            "short",
            [
                Query(
                    "sum by (gen_ai_provider_name) (sidecar_queue_in_flight)",
                    "{{gen_ai_provider_name}} in flight",
                ),
                Query(
                    "sum by (gen_ai_provider_name) (sidecar_queue_limit)",
                    "{{gen_ai_provider_name}} limit",
                ),
            ],
        ),
        graph(
            "Queue wait p50 / p95 by priority",
            "How long requests that had to queue waited for a slot (admitted or shed).",
            "s",
            percentiles(
                wait,
                "",
                "gen_ai_provider_name, sidecar_priority",
                "{{gen_ai_provider_name}} {{sidecar_priority}}",
                (0.5, 0.95),
            ),
        ),
        graph(
            "Queued requests: admitted or shed",
            "Requests that queued, per second: admitted once a slot freed, or shed (503) after "
            "waiting past admission.max_wait_ms.",
            "reqps",
            [
                Query(
                    rate(
                        wait + "_count",
                        "",
                        "gen_ai_provider_name, sidecar_priority, sidecar_queue_result",
                    ),
                    "{{gen_ai_provider_name}} {{sidecar_priority}} {{sidecar_queue_result}}",
                )
            ],
        ),
    ]


def security_panels() -> list[Builder[model.Panel]]:
    by = "sidecar_security_check, sidecar_security_finding, sidecar_security_action"
    return [
        graph(
            "Security findings per second",
            "Findings of the security checks (injection, moderation, duplicate, output) by "
            "finding and the action taken (block, flag, redact, shadow).",
            "short",
            [
                Query(
                    rate("sidecar_security_findings_total", "", by),
                    "{{sidecar_security_check}} {{sidecar_security_finding}} "
                    "{{sidecar_security_action}}",
                )
            ],
            width=24,
        )
    ]


def gen_ai_operation_variable(shown_in: str) -> grafana.QueryVariable:
    return all_of(
        "gen_ai_operation",
        "API operation",
        "label_values(gen_ai_client_operation_duration_seconds_count, gen_ai_operation_name)",
        f"The GenAI operation of the {shown_in} (chat, embeddings, ...)",
    )


def overview() -> grafana.Dashboard:
    dashboard = (
        grafana.Dashboard("LLM sidecar: overview")
        .uid("llm-sidecar-overview")
        .description("Requests, errors, latency, tokens, cost, cache, limits, queues, security.")
        .tags([TAG])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .link(other_dashboards())
        .with_variable(prometheus_variable())
        .with_variable(operation_variable())
        .with_variable(
            all_of(
                "model",
                "Model",
                "label_values(sidecar_requests_total, sidecar_model)",
                "The model label (dated snapshots folded into their family; unknown names: other)",
            )
        )
        .with_variable(gen_ai_operation_variable("latency and token panels"))
    )
    rows = [
        ("Traffic and errors", traffic_panels()),
        ("Latency", latency_panels()),
        ("Tokens, cost and budgets", cost_panels()),
        ("Cache, rate limits and resilience", resilience_panels()),
        ("Queues (priority admission)", queue_panels()),
        ("Security", security_panels()),
    ]
    for title, panels in rows:
        dashboard.with_row(grafana.Row(title))
        for panel in panels:
            dashboard.with_panel(panel)
    return dashboard


# --- traces ------------------------------------------------------------------------------------

# Server spans (one per request) carry sidecar.operation, sidecar.user, sidecar.cache,
# sidecar.fallback, gen_ai.request.model and error.type; client spans (one per upstream attempt)
# carry gen_ai.provider.name, gen_ai.request.model, sidecar.attempt and error.type.
SERVICE = 'resource.service.name="$service"'
REQUESTS = f'{SERVICE} && kind=server && span.sidecar.operation=~"$operation"'


def traces_dashboard() -> grafana.Dashboard:
    latency = Query(
        quantile(
            0.95,
            "gen_ai_client_operation_duration_seconds",
            'gen_ai_operation_name=~"$gen_ai_operation"',
            "gen_ai_operation_name",
        ),
        "p95 {{gen_ai_operation_name}}",
        exemplar=True,
    )
    slow = Query(
        rate("sidecar_slow_operations_total", OPS, "sidecar_operation"), "{{sidecar_operation}}"
    )
    dashboard = (
        grafana.Dashboard("LLM sidecar: traces")
        .uid("llm-sidecar-traces")
        .description("Latency with exemplars, and the slow, failed and fallback traces in Tempo.")
        .tags([TAG])
        .time("now-1h", "now")
        .refresh("1m")
        .timezone("browser")
        .link(other_dashboards())
        .with_variable(prometheus_variable())
        .with_variable(grafana.DatasourceVariable("tempo").label("Tempo").type("tempo"))
        .with_variable(operation_variable())
        .with_variable(gen_ai_operation_variable("latency panel"))
        .with_variable(
            textbox(
                "service",
                "Service",
                "llm-sidecar",
                "resource service.name of the sidecar's spans (OTEL_SERVICE_NAME)",
            )
        )
        .with_variable(
            textbox(
                "min_duration",
                "Slower than",
                "5s",
                "Duration threshold of the slow-trace tables (a TraceQL duration)",
            )
        )
        .with_variable(
            textbox(
                "user",
                "User",
                "anonymous",
                "sidecar.user of the user's requests table (X-Sidecar-User)",
            )
        )
        .with_row(grafana.Row("Latency and exemplars"))
        .with_panel(
            graph(
                "Latency p95 with exemplars",
                "Exemplars (dots) link a latency bucket to a trace in Tempo. They appear when "
                "metrics go through the OpenTelemetry collector to a Prometheus with exemplar "
                "storage on; the sidecar's own /metrics has none.",
                "s",
                [latency],
            )
        )
        .with_panel(
            graph(
                "Slow requests per second",
                "Requests over their operation's slow_ms; their traces carry a "
                "sidecar.slow_operation event.",
                "reqps",
                [slow],
            )
        )
        .with_row(grafana.Row("Traces (Tempo)"))
    )
    tables = [
        traces(
            "Slowest requests",
            "Requests slower than $min_duration, with who made them and what answered.",
            f"{{{REQUESTS} && duration > $min_duration}} | select(span.sidecar.user, "
            "span.gen_ai.request.model, span.sidecar.cache, span.sidecar.fallback)",
        ),
        traces(
            "Failed requests",
            "Requests that ended in an error, with the sidecar's error code.",
            f"{{{REQUESTS} && status=error}} | select(span.error.type, "
            "span.http.response.status_code, span.gen_ai.request.model, span.sidecar.user)",
        ),
        traces(
            "Fallbacks",
            "Requests another model of the fallback chain answered (sidecar.fallback: from->to).",
            f'{{{REQUESTS} && span.sidecar.fallback=~".+"}} | select(span.sidecar.fallback, '
            "span.error.type, span.sidecar.user)",
        ),
        traces(
            "Slow upstream attempts",
            "Single upstream attempts (client spans) slower than $min_duration, by provider.",
            f"{{{SERVICE} && kind=client && duration > $min_duration}} | select("
            "span.gen_ai.provider.name, span.gen_ai.request.model, span.sidecar.attempt, "
            "span.error.type)",
        ),
        traces(
            "One user's requests",
            "Every request of the user in the variable above.",
            f'{{{REQUESTS} && span.sidecar.user="$user"}} | select(span.gen_ai.request.model, '
            "span.sidecar.cache, span.sidecar.cost_usd, span.error.type)",
        ),
    ]
    for panel in tables:
        dashboard.with_panel(panel)
    return dashboard


# --- output ------------------------------------------------------------------------------------

DASHBOARDS = {"overview.json": overview, "traces.json": traces_dashboard}


def render(dashboard: grafana.Dashboard) -> str:
    """The dashboard's JSON: panels numbered in order, keys sorted, one trailing newline."""
    built = dashboard.build()
    for number, panel in enumerate(built.panels or [], start=1):
        panel.id_val = number
    return json.dumps(built, cls=JSONEncoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(out_dir: Path = HERE) -> int:
    for name, make in DASHBOARDS.items():
        (out_dir / name).write_text(render(make()), encoding="utf-8")
        print(f"wrote {out_dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
