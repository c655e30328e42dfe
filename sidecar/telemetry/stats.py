"""Rolling statistics over recent requests, computed with numpy on demand.

Each operation and each (folded) model has a fixed-size ring of its most recent requests:
timestamps, latencies, outcomes, cache hits, cost and a fingerprint of the request body. Memory
is constant however long the process runs; percentiles and rates over the sliding window are
computed vectorised when a report is asked for, never on the request path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from sidecar.telemetry import names as n

# Recorded error codes that say the request or the client was at fault, not the model side: the
# report keeps them out of the error rate, which is about failures an operator can act on. The
# first four are SPEC codes; the others are what the telemetry stage records for a client that
# hung up.
CLIENT_ERROR_CODES = (
    frozenset(
        {
            "INVALID_INPUT",
            "CONTEXT_LENGTH",
            "PAYLOAD_TOO_LARGE",
            "UNAUTHORIZED",
        }
    )
    | n.CLIENT_GONE_CODES
)  # the client hung up, mid-stream or before the answer
# The ``reason`` of an error that the sidecar's own policy refused the request with: its rate
# limits, the user's budget, the input and output checks. Neither a failure of the model side
# nor a mistake of the request, they are counted apart ("refused"), under their SPEC code.
POLICY_REASONS = frozenset(
    {
        "requests_per_window",  # rate limit (sidecar.pipeline.ratelimit)
        "tokens_per_window",
        "budget_exceeded",  # monthly budget (sidecar.pipeline.costs)
        "prompt_injection",  # input checks (sidecar.pipeline.security)
        "duplicate",
        "content_policy",
        "sensitive_output",  # output policy: block (sidecar.security.secrets)
    }
)


def is_refusal(reason: str | None) -> bool:
    """Whether an error with this ``reason`` is a refusal by the sidecar's own policy."""
    return reason in POLICY_REASONS


# Pass-through answers (recorded as HTTP_<status>) in the 4xx range that are still the provider's
# doing: 401/403 refuse the sidecar's own key, 408/429 are the provider's timeouts and limits.
_PROVIDER_4XX = frozenset({401, 403, 408, 429})


def is_client_error(code: str) -> bool:
    """Whether a recorded error code blames the request rather than the upstream or sidecar."""
    if code in CLIENT_ERROR_CODES:
        return True
    status = code.removeprefix("HTTP_")
    if status == code or not status.isdigit():
        return False
    return 400 <= int(status) < 500 and int(status) not in _PROVIDER_4XX


@dataclass(frozen=True, slots=True)
class Summary:
    count: int
    errors: int
    cache_hits: int
    slow: int
    cost_micros: int
    latency_sum_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    repeat_rate: float  # share of requests whose body was seen before in the window
    error_codes: dict[str, int]  # errors that are not refusals, by code
    refused_codes: dict[str, int]  # refusals by the sidecar's own policies, by code

    @property
    def refused(self) -> int:
        return sum(self.refused_codes.values())

    @property
    def refused_rate(self) -> float:
        return self.refused / self.count if self.count else 0.0

    @property
    def success_rate(self) -> float:
        """Share answered without any error, whoever was at fault."""
        return 1 - self.errors / self.count if self.count else 1.0

    @property
    def client_errors(self) -> int:
        return sum(n for code, n in self.error_codes.items() if is_client_error(code))

    @property
    def upstream_errors(self) -> int:
        """Failures of the provider or the sidecar: every error that is neither a client error
        nor a refusal."""
        return self.errors - self.client_errors - self.refused

    @property
    def error_rate(self) -> float:
        return self.upstream_errors / self.count if self.count else 0.0

    @property
    def client_error_rate(self) -> float:
        return self.client_errors / self.count if self.count else 0.0

    @property
    def cache_hit_rate(self) -> float:
        return self.cache_hits / self.count if self.count else 0.0

    @property
    def average_ms(self) -> float:
        return 1000 * self.latency_sum_s / self.count if self.count else 0.0


class Ring:
    """The last ``capacity`` requests of one series, in parallel numpy arrays."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.t = np.zeros(capacity, dtype=np.float64)
        self.latency = np.zeros(capacity, dtype=np.float64)
        self.ok = np.zeros(capacity, dtype=np.bool_)
        self.hit = np.zeros(capacity, dtype=np.bool_)
        self.slow = np.zeros(capacity, dtype=np.bool_)
        self.cost = np.zeros(capacity, dtype=np.int64)
        self.fingerprint = np.zeros(capacity, dtype=np.int64)
        self.code = np.zeros(capacity, dtype=np.int16)  # index into RollingStats.codes; 0 = none
        self.refused = np.zeros(capacity, dtype=np.bool_)  # refused by the sidecar's policy
        self.size = 0
        self._next = 0

    def add(
        self,
        t: float,
        latency_s: float,
        *,
        ok: bool,
        hit: bool,
        slow: bool,
        cost_micros: int,
        fingerprint: int,
        code: int,
        refused: bool = False,
    ) -> None:
        i = self._next
        self.t[i] = t
        self.latency[i] = latency_s
        self.ok[i] = ok
        self.hit[i] = hit
        self.slow[i] = slow
        self.cost[i] = cost_micros
        self.fingerprint[i] = fingerprint
        self.code[i] = code
        self.refused[i] = refused
        self._next = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def summary(self, since: float, codes: list[str]) -> Summary:
        window = self.t[: self.size] >= since
        count = int(window.sum())
        if count == 0:
            return Summary(0, 0, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, 0.0, {}, {})
        code, refused = self.code[: self.size][window], self.refused[: self.size][window]
        latency = self.latency[: self.size][window]
        p50, p95, p99 = np.percentile(latency, [50, 95, 99]) * 1000
        return Summary(
            count=count,
            errors=int((~self.ok[: self.size][window]).sum()),
            cache_hits=int(self.hit[: self.size][window].sum()),
            slow=int(self.slow[: self.size][window].sum()),
            cost_micros=int(self.cost[: self.size][window].sum()),
            latency_sum_s=float(latency.sum()),
            p50_ms=float(p50),
            p95_ms=float(p95),
            p99_ms=float(p99),
            repeat_rate=_repeat_rate(self.fingerprint[: self.size][window]),
            error_codes=_by_code(code[~refused], codes),
            refused_codes=_by_code(code[refused], codes),
        )


def _by_code(indices: npt.NDArray[np.int16], codes: list[str]) -> dict[str, int]:
    per_code = np.bincount(indices, minlength=len(codes))
    return {codes[i]: int(c) for i, c in enumerate(per_code) if c and i}


def _repeat_rate(fingerprints: npt.NDArray[np.int64]) -> float:
    known = fingerprints[fingerprints != 0]
    if known.size == 0:
        return 0.0
    return 1.0 - float(np.unique(known).size) / float(known.size)


class RollingStats:
    def __init__(self, *, window_s: float = 900.0, capacity: int = 4096) -> None:
        self.window_s = window_s
        self.capacity = capacity
        # Keys are operations and folded model names: bounded sets, so bounded memory.
        self.operations: dict[str, Ring] = {}
        self.models: dict[str, Ring] = {}
        self.codes: list[str] = [""]  # error codes seen, by index; a small closed set
        self._code_index: dict[str, int] = {"": 0}

    def record(
        self,
        operation: str,
        model: str,
        latency_s: float,
        *,
        ok: bool,
        cache_hit: bool = False,
        slow: bool = False,
        cost_micros: int = 0,
        fingerprint: int = 0,
        error_code: str | None = None,
        refused: bool = False,
    ) -> None:
        now = time.monotonic()
        code = self._code(error_code or "")
        for series, key in ((self.operations, operation), (self.models, model)):
            ring = series.get(key)
            if ring is None:
                ring = series[key] = Ring(self.capacity)
            ring.add(
                now,
                latency_s,
                ok=ok,
                hit=cache_hit,
                slow=slow,
                cost_micros=cost_micros,
                fingerprint=fingerprint,
                code=code,
                refused=refused,
            )

    def _code(self, error_code: str) -> int:
        index = self._code_index.get(error_code)
        if index is None:
            if len(self.codes) >= 255:  # codes are a closed set; fold anything beyond it
                return self._code("OTHER") if error_code != "OTHER" else 0
            index = self._code_index[error_code] = len(self.codes)
            self.codes.append(error_code)
        return index

    def by_operation(self) -> dict[str, Summary]:
        since = time.monotonic() - self.window_s
        return {name: ring.summary(since, self.codes) for name, ring in self.operations.items()}

    def by_model(self) -> dict[str, Summary]:
        since = time.monotonic() - self.window_s
        return {name: ring.summary(since, self.codes) for name, ring in self.models.items()}
