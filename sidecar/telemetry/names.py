"""Every telemetry name the sidecar emits, in one place.

Dashboards (``dashboards/``) and alert rules (``alerts/``) depend on these names; change them
here or nowhere. GenAI names follow the OpenTelemetry semantic conventions (v1.41); we keep our own
string constants because the semconv package's gen_ai enums emit deprecation warnings.
"""

from __future__ import annotations

from typing import Final

# --- span attributes: GenAI semantic conventions ---------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"
GEN_AI_INPUT_MESSAGES: Final = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_REQUEST_METHOD: Final = "http.request.method"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"
HTTP_ROUTE: Final = "http.route"
URL_PATH: Final = "url.path"

# --- span attributes: the sidecar's own -------------------------------------------------------
SIDECAR_USER: Final = "sidecar.user"
SIDECAR_OPERATION: Final = "sidecar.operation"
SIDECAR_CACHE: Final = "sidecar.cache"
SIDECAR_COST_USD: Final = "sidecar.cost_usd"
SIDECAR_FALLBACK: Final = "sidecar.fallback"
SIDECAR_ATTEMPT: Final = "sidecar.attempt"
SIDECAR_PRIORITY: Final = "sidecar.priority"
SIDECAR_REQUEST_ID: Final = "sidecar.request_id"
SIDECAR_ERROR_CODE: Final = "sidecar.error.code"
SIDECAR_OUTCOME: Final = "sidecar.outcome"
SIDECAR_MODEL: Final = "sidecar.model"  # folded model name, the metric label
SIDECAR_THRESHOLD_MS: Final = "sidecar.threshold_ms"
SIDECAR_DURATION_MS: Final = "sidecar.duration_ms"
# How long the request waited for a slot on its provider (priority admission); only on
# requests that had to queue. A retry or fallback that queues again replaces it.
SIDECAR_QUEUE_WAIT_MS: Final = "sidecar.queue.wait_ms"

# --- span events --------------------------------------------------------------------------------
EVENT_RETRY: Final = "sidecar.retry"
EVENT_FALLBACK: Final = "sidecar.fallback"
EVENT_SLOW_OPERATION: Final = "sidecar.slow_operation"
EVENT_CACHE_HIT: Final = "sidecar.cache_hit"
EVENT_RATE_LIMITED: Final = "sidecar.rate_limited"
EVENT_BUDGET_EXCEEDED: Final = "sidecar.budget_exceeded"
EVENT_STREAM_ERROR: Final = "sidecar.stream_error"
EVENT_QUEUE_SHED: Final = "sidecar.queue.shed"  # no slot within the priority's max wait: 503

# --- metrics: GenAI client semantic conventions -------------------------------------------------
GEN_AI_CLIENT_OPERATION_DURATION: Final = "gen_ai.client.operation.duration"
GEN_AI_CLIENT_TOKEN_USAGE: Final = "gen_ai.client.token.usage"
GEN_AI_CLIENT_TIME_TO_FIRST_CHUNK: Final = "gen_ai.client.operation.time_to_first_chunk"

# --- metrics: the sidecar's own ---------------------------------------------------------------
SIDECAR_REQUESTS: Final = "sidecar.requests"
SIDECAR_OVERHEAD: Final = "sidecar.overhead"
SIDECAR_COST: Final = "sidecar.cost"
SIDECAR_FALLBACKS: Final = "sidecar.fallbacks"
SIDECAR_CACHE_LOOKUPS: Final = "sidecar.cache.lookups"
SIDECAR_BUDGET_UTILIZATION: Final = "sidecar.budget.utilization"
SIDECAR_COST_UNPRICED: Final = "sidecar.cost.unpriced"
SIDECAR_RATELIMIT_REJECTIONS: Final = "sidecar.ratelimit.rejections"
SIDECAR_RETRIES: Final = "sidecar.retries"
SIDECAR_SLOW_OPERATIONS: Final = "sidecar.slow_operations"
SIDECAR_CIRCUIT_STATE: Final = "sidecar.circuit.state"
SIDECAR_BACKGROUND_DEPTH: Final = "sidecar.background.depth"
SIDECAR_BACKGROUND_DROPPED: Final = "sidecar.background.dropped"
# Priority admission (live requests), per provider: requests waiting for a slot (per priority),
# the wait of each request that queued (admitted or shed), the adaptive limit and the calls in
# flight. Requests admitted at once are not recorded in the wait histogram (they waited 0).
SIDECAR_QUEUE_DEPTH: Final = "sidecar.queue.depth"
SIDECAR_QUEUE_WAIT: Final = "sidecar.queue.wait"
SIDECAR_QUEUE_LIMIT: Final = "sidecar.queue.limit"
SIDECAR_QUEUE_IN_FLIGHT: Final = "sidecar.queue.in_flight"
# Span export (OTLP): spans the collector accepted, and spans lost, by reason: "queue" (a bounded
# queue on the way was full: the export process was slow or the collector slow or down) or
# "export" (the collector refused them or did not answer in time).
SIDECAR_TELEMETRY_EXPORTED: Final = "sidecar.telemetry.exported"
SIDECAR_TELEMETRY_DROPPED: Final = "sidecar.telemetry.dropped"

# --- metric label keys (bounded values only; never a user id) ------------------------------------
LABEL_OPERATION: Final = SIDECAR_OPERATION
LABEL_MODEL: Final = SIDECAR_MODEL
LABEL_OUTCOME: Final = SIDECAR_OUTCOME
LABEL_ERROR_CODE: Final = SIDECAR_ERROR_CODE
LABEL_PROVIDER: Final = GEN_AI_PROVIDER_NAME
LABEL_CACHE_RESULT: Final = "sidecar.cache.result"
LABEL_LIMIT: Final = "sidecar.limit"  # which limit refused: requests | tokens
LABEL_PRIORITY: Final = SIDECAR_PRIORITY  # high | normal | batch
LABEL_QUEUE_RESULT: Final = "sidecar.queue.result"  # admitted | shed
LABEL_DROP_REASON: Final = "sidecar.telemetry.reason"  # queue | export
LABEL_FALLBACK_FROM: Final = "sidecar.fallback.from"  # the model that failed
LABEL_FALLBACK_TO: Final = "sidecar.fallback.to"  # the model tried next (it may fail too)

# --- histogram buckets (semantic conventions; set explicitly) -----------------------------------
# 0.01 s doubling to 81.92 s.
DURATION_BUCKETS_S: Final = tuple(0.01 * 2**i for i in range(14))
# 1 token, 4^k up to 4^13.
TOKEN_BUCKETS: Final = tuple(float(4**i) for i in range(14))
# Sidecar overhead lives in the sub-millisecond range.
# Share of a user's monthly budget used, after each priced request.
UTILIZATION_BUCKETS: Final = (0.1, 0.25, 0.5, 0.75, 0.8, 0.9, 0.95, 1.0, 1.25)
OVERHEAD_BUCKETS_S: Final = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
)  # fmt: skip
# Queue waits: a millisecond up to batch's default max wait (300 s).
QUEUE_WAIT_BUCKETS_S: Final = (
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip

# --- bounded label values ------------------------------------------------------------------------
OTHER: Final = "other"
OUTCOME_SUCCESS: Final = "success"
OUTCOME_ERROR: Final = "error"
OUTCOME_CACHE_HIT: Final = "cache_hit"
OUTCOME_RATE_LIMITED: Final = "rate_limited"  # refused by the sidecar's own rate limit
OUTCOME_CLIENT_GONE: Final = "client_gone"  # the app hung up before the answer ended
# The error codes a request gets when the app hangs up: mid-stream, or before the answer.
CLIENT_GONE_CODES: Final = frozenset({"client_closed", "CancelledError"})
QUEUE_ADMITTED: Final = "admitted"
QUEUE_SHED: Final = "shed"

# Models we always keep as their own metric label; anything else configured is added at start-up
# and every other name is folded into "other" so a typo cannot explode a time series count.
KNOWN_MODELS: Final = (
    "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4", "gpt-4-turbo",
    "gpt-3.5-turbo", "gpt-5", "gpt-5-mini", "gpt-5-nano", "o1", "o1-mini", "o3", "o3-mini",
    "o4-mini", "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002",
    "dall-e-2", "dall-e-3", "gpt-image-1", "omni-moderation-latest",
)  # fmt: skip

# Security checks: every finding is a span event (technique or type, score, role: never the
# text) and a count, by check (injection | moderation | duplicate | output), finding and action
# taken (block | flag | redact | shadow: a stricter trial threshold would have flagged it).
EVENT_SECURITY_FINDING: Final = "sidecar.security.finding"
SIDECAR_SECURITY_FINDINGS: Final = "sidecar.security.findings"
LABEL_SECURITY_CHECK: Final = "sidecar.security.check"
LABEL_SECURITY_FINDING: Final = "sidecar.security.finding"
LABEL_SECURITY_ACTION: Final = "sidecar.security.action"
