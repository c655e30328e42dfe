"""Configuration: the YAML file of SPEC "Configuration", validated with pydantic.

Every key is optional. Secrets are never inline: providers name the environment variable that
holds their key. ``REDIS_URL`` and ``DATABASE_URL`` override the file; the standard ``OTEL_*``
variables configure telemetry export and are read by the OpenTelemetry SDK itself.
"""

from __future__ import annotations

import difflib
import os
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from sidecar.security.secret_patterns import TYPES

Priority = Literal["high", "normal", "batch"]
PRIORITIES: tuple[Priority, ...] = ("high", "normal", "batch")


class ConfigError(Exception):
    """A configuration file that cannot be used; the message names every offending key path."""


def _switch(value: object, when_on: str) -> object:
    """For a choice that includes "off": YAML 1.1 (PyYAML) reads an unquoted ``off``/``no`` as
    false and ``on``/``yes`` as true. False is plainly "off"; true is refused with the choices,
    since "on" does not say which of them is meant (and guessing a security mode is worse)."""
    if value is False:
        return "off"
    if value is True:
        raise ValueError(f"`on` (true) does not say which mode is meant: write {when_on}")
    return value


def _yaml_switch(when_on: str) -> BeforeValidator:
    return BeforeValidator(lambda value: _switch(value, when_on))


InjectionAction = Annotated[Literal["block", "flag", "off"], _yaml_switch("block or flag (or off)")]
ModerationMode = Annotated[
    Literal["off", "fail_open", "fail_closed"], _yaml_switch("fail_open or fail_closed (or off)")
]
OUTPUT_ACTIONS = ("redact", "block", "flag", "off")
OUTPUT_WHEN_ON = "redact, block or flag (or off)"
OutputAction = Annotated[Literal["redact", "block", "flag", "off"], _yaml_switch(OUTPUT_WHEN_ON)]


class _Strict(BaseModel):
    # Unknown keys are typos far more often than intent: reject them with their path.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Listen(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8787, ge=0, le=65535)


class Provider(_Strict):
    base_url: str = "https://api.openai.com/v1"
    # The variable holding the provider key; null for a provider that needs none (a local model).
    api_key_env: str | None = "OPENAI_API_KEY"
    # Send the app's own Authorization upstream instead (only with api_key_env: null).
    forward_client_key: bool = False
    timeout_s: float = Field(60.0, gt=0)
    max_concurrency: int | None = Field(None, gt=0)
    # App headers to pass on besides the standard ones (e.g. a gateway's own X-Title).
    forward_headers: frozenset[str] = frozenset()

    @field_validator("forward_headers")
    @classmethod
    def _lower(cls, value: frozenset[str]) -> frozenset[str]:
        credentials = {"authorization", "cookie", "proxy-authorization", "api-key", "x-api-key"}
        lowered = frozenset(name.lower() for name in value)
        if refused := sorted(lowered & credentials):
            raise ValueError(f"{', '.join(refused)} carries credentials and is never forwarded")
        return lowered

    @model_validator(mode="after")
    def _one_key_source(self) -> Provider:
        if self.forward_client_key and self.api_key_env is not None:
            raise ValueError(
                "forward_client_key: true needs api_key_env: null (the key comes from the app)"
            )
        return self

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class ModelRoute(_Strict):
    provider: str


class RateLimit(_Strict):
    requests: int = Field(gt=0)  # per user, in any rolling window of per_s seconds
    per_s: float = Field(gt=0)
    tokens: int | None = Field(None, gt=0)  # per user and model, in the same window
    # When Redis is unreachable: refuse (429) instead of limiting in process, per instance.
    fail_closed: bool = False


class Operation(_Strict):
    rate_limit: RateLimit | None = None
    cache_ttl_s: int = Field(0, ge=0)
    # Who may share a cached answer: the same user, the same X-Sidecar-Tenant, or everyone.
    cache_scope: Literal["user", "tenant", "global"] = "user"
    slow_ms: int | None = Field(None, gt=0)
    fallbacks: list[str] = Field(default_factory=list)
    # A fallback priced above the requested model is skipped unless this allows it.
    allow_pricier_fallbacks: bool = False
    priority: Priority = "normal"
    max_attempts: int = Field(3, ge=1, le=10)
    deadline_s: float | None = Field(None, gt=0)


# The operations every install starts with; a config file overrides them key by key.
SEED_OPERATIONS: dict[str, dict[str, Any]] = {
    "chat": {
        "rate_limit": {"requests": 30, "per_s": 60},
        "cache_ttl_s": 0,
        "slow_ms": 5000,
        "fallbacks": ["gpt-4o", "gpt-4", "gpt-3.5-turbo"],
    },
    "image-generation": {
        "rate_limit": {"requests": 10, "per_s": 60},
        "cache_ttl_s": 86400,
        "slow_ms": 15000,
        "fallbacks": ["dall-e-3:hd", "dall-e-3:standard", "dall-e-2:standard"],
        "max_attempts": 2,
    },
    "evaluation": {
        "rate_limit": {"requests": 20, "per_s": 60},
        "cache_ttl_s": 3600,
        "slow_ms": 3000,
    },
    "tool-execution": {"cache_ttl_s": 300, "slow_ms": 2000},
    "intent": {"cache_ttl_s": 600},
    "embedding": {"cache_ttl_s": 86400},
}


def over_seed(value: object, seed: dict[str, dict[str, Any]]) -> object:
    """A config section of named entries laid over the shipped seed, key by key within each."""
    if not isinstance(value, dict):
        return value
    merged: dict[str, Any] = {name: dict(entry) for name, entry in seed.items()}
    for name, overrides in value.items():
        if isinstance(overrides, dict):
            merged[name] = {**merged.get(name, {}), **overrides}
        else:
            merged[name] = overrides
    return merged


class Budgets(_Strict):
    monthly_usd: Decimal = Field(Decimal(50), ge=0)
    notify_at: float = Field(0.8, gt=0, le=1)
    enforce: bool = True
    users: dict[str, Decimal] = Field(default_factory=dict)


def _default_waits() -> dict[Priority, int]:
    return {"high": 30000, "normal": 10000, "batch": 300000}


class Admission(_Strict):
    max_concurrency: int = Field(64, gt=0)
    max_wait_ms: dict[Priority, int] = Field(default_factory=_default_waits)


class Duplicates(_Strict):
    max: int = Field(0, ge=0)
    per_s: float = Field(60, gt=0)


class Security(_Strict):
    injection: InjectionAction = "block"
    # None: the detector's own (0.5). A lower shadow threshold is tried without acting on it:
    # what it alone would flag is counted (action "shadow"), never blocked.
    injection_threshold: float | None = Field(None, gt=0, lt=1)
    injection_shadow_threshold: float | None = Field(None, gt=0, lt=1)
    check_system_prompts: bool = False  # system/developer messages are the app's: trusted
    moderation: ModerationMode = "off"
    moderation_model: str = "omni-moderation-latest"
    moderation_timeout_s: float = Field(2.0, gt=0)
    duplicates: Duplicates = Field(default_factory=Duplicates)
    # One action for every type, or per type (EMAIL, CREDIT_CARD, ...; "*" for the others).
    output: OutputAction | dict[str, OutputAction] = "redact"

    @field_validator("output", mode="before")
    @classmethod
    def _one_action_or_a_map(cls, value: object) -> object:
        # Said here once, rather than as one error per branch of the union above.
        if isinstance(value, bool):
            return _switch(value, OUTPUT_WHEN_ON)
        if isinstance(value, dict) or value in OUTPUT_ACTIONS:
            return value
        raise ValueError(
            f"must be one of {', '.join(OUTPUT_ACTIONS)}, or a map of type to action "
            f"(e.g. {{EMAIL: flag, CREDIT_CARD: redact}}); got {value!r}"
        )

    @field_validator("output")
    @classmethod
    def _known_types(
        cls, value: OutputAction | dict[str, OutputAction]
    ) -> OutputAction | dict[str, OutputAction]:
        if isinstance(value, dict):
            unknown = sorted(set(value) - set(TYPES) - {"*"})
            if unknown:
                raise ValueError(
                    f"unknown output type(s) {', '.join(unknown)}; known: {', '.join(TYPES)}, *"
                )
        return value


ADMIN_TOKEN_VAR = "SIDECAR_ADMIN_TOKEN"
ADMIN_ENDPOINTS = (
    "/sidecar/report, /sidecar/usage, /sidecar/ratelimit/USER, /sidecar/queues, "
    "DELETE /sidecar/cache"
)


class Admin(_Strict):
    # The admin token is read from the variable named here; when that one is unset or empty,
    # from SIDECAR_ADMIN_TOKEN (the SPEC's override), so exporting the well-known variable never
    # leaves the admin endpoints open because the file names another one.
    token_env: str = ADMIN_TOKEN_VAR

    def token_source(self, env: Mapping[str, str] | None = None) -> str | None:
        """The variable the admin token comes from; None: no token, the endpoints are open."""
        env = os.environ if env is None else env
        for name in (self.token_env, ADMIN_TOKEN_VAR):
            if env.get(name):
                return name
        return None

    def token(self, env: Mapping[str, str] | None = None) -> str | None:
        env = os.environ if env is None else env
        source = self.token_source(env)
        return env[source] if source else None

    def unauthenticated_warning(self, env: Mapping[str, str] | None = None) -> str | None:
        if self.token_source(env) is not None:
            return None
        names = f"${self.token_env} (admin.token_env)"
        if self.token_env != ADMIN_TOKEN_VAR:
            names += f" or ${ADMIN_TOKEN_VAR}"
        return (
            f"admin endpoints ({ADMIN_ENDPOINTS}) are unauthenticated: anyone who can reach "
            f"the sidecar can use them. Set {names} to require a bearer token."
        )


class Alerts(_Strict):
    webhook_url: str | None = None


class TelemetrySettings(_Strict):
    enabled: bool = True
    record_content: bool = False  # prompt and completion text on spans: off unless asked for
    stats_window_s: float = Field(900, gt=0)  # the report's sliding window
    stats_capacity: int = Field(4096, ge=16)  # recent requests kept per operation and per model
    alert_dedup_s: float = Field(300, ge=0)  # at most one webhook per operation+model this often


class BreakerSettings(_Strict):
    window_s: float = Field(30, gt=0)  # failure ratio measured over this sliding window
    min_calls: int = Field(10, ge=1)  # ...once it has at least this many calls
    failure_ratio: float = Field(0.5, gt=0, le=1)
    consecutive_failures: int = Field(5, ge=1)  # or after this many failures in a row
    open_s: float = Field(5, gt=0)  # first open period; doubles on every re-open
    max_open_s: float = Field(120, gt=0)
    credentials_cooldown_s: float = Field(300, gt=0)  # a provider answering 401/403 rests this long


class ResilienceSettings(_Strict):
    deadline_s: float = Field(60, gt=0)  # default deadline per request: all attempts and fallbacks
    backoff_base_s: float = Field(0.25, ge=0)  # full jitter: random(0, min(cap, base * 2^n))
    backoff_cap_s: float = Field(8, ge=0)
    retry_budget_ratio: float = Field(0.2, ge=0)  # retries <= ratio * requests + floor ...
    retry_budget_floor: int = Field(3, ge=0)
    retry_budget_window_s: float = Field(10, gt=0)  # ... over this sliding window
    max_calls: int = Field(4, ge=1, le=20)  # upstream calls per request, retries and fallbacks
    breaker: BreakerSettings = Field(default_factory=BreakerSettings)


class BackendSettings(_Strict):
    redis_timeout_ms: int = Field(50, gt=0)  # per Redis command; past it the caller falls back
    redis_prefix: str = "sidecar:"  # every key the sidecar writes starts with it
    redis_cooldown_s: float = Field(5, gt=0)  # after a Redis failure, in-process this long
    cache_max_bytes: int = Field(64 * 1024 * 1024, gt=0)  # the in-process cache's size bound
    background_queue: int = Field(10_000, gt=0)  # work after the reply waiting to run
    drain_s: float = Field(5, ge=0)  # at shutdown, how long that work may take to finish


class JobQueueSettings(_Strict):
    attempts: int = Field(1, ge=1, le=50)  # tries per job, the first included
    backoff_ms: int = Field(2000, ge=0)  # exponential: this long before the 2nd try, 2x, 4x, ...
    concurrency: int = Field(4, ge=1, le=1000)  # jobs of this queue one worker process runs at once


# The queue of each priority as every install starts with it; a config file overrides key by key.
SEED_JOB_QUEUES: dict[str, dict[str, Any]] = {
    "high": {"attempts": 3, "concurrency": 8},
    "normal": {"attempts": 2, "concurrency": 4},
    "batch": {"attempts": 1, "concurrency": 2},
}


class Jobs(_Strict):
    """Async jobs (``POST /sidecar/jobs``): BullMQ queues in Redis, or in process without it."""

    workers: bool = True  # run the workers inside `serve` (false: only `llm-sidecar worker`)
    prefix: str = Field("bull", min_length=1)  # BullMQ's key prefix: Node producers use the same
    keep_completed_s: int = Field(86400, gt=0)  # a completed job's result is kept this long
    queues: dict[Priority, JobQueueSettings] = Field(default_factory=dict, validate_default=True)
    # A worker that dies (kill -9) leaves its jobs active: another worker takes them back once
    # their lock, renewed every lock_ms / 2 while the job runs, has expired; it looks this often.
    lock_ms: int = Field(30000, ge=100)
    stalled_interval_ms: int = Field(30000, ge=100)
    drain_s: float = Field(30, ge=0)  # at shutdown, how long running jobs may take to finish

    @field_validator("queues", mode="before")
    @classmethod
    def _merge_seed(cls, value: object) -> object:
        return over_seed(value, SEED_JOB_QUEUES)


class HealthSettings(_Strict):
    probe_ttl_s: float = Field(10, ge=0)  # /readyz reuses an upstream probe this long
    probe_timeout_s: float = Field(2, gt=0)  # a probe slower than this counts as unreachable


class Limits(_Strict):
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    max_messages: int = Field(2048, gt=0)  # messages (or input items) in one model call
    header_timeout_s: float = Field(30, gt=0)  # request line + headers; also keep-alive idle


DEFAULT_PROVIDER = "openai"  # the provider of a config file that names none


class Settings(_Strict):
    """Made only by :func:`settings_from_dict`, which also checks the references between keys
    (model routes and fallbacks naming providers): those are reported there, with every other
    error of the file at once, rather than by a validator that runs only once the rest is valid.
    """

    listen: Listen = Field(default_factory=Listen)
    providers: dict[str, Provider] = Field(default_factory=lambda: {DEFAULT_PROVIDER: Provider()})
    models: dict[str, ModelRoute] = Field(default_factory=dict)
    redis_url: str | None = None
    database_url: str = "sqlite:///sidecar-usage.db"
    backends: BackendSettings = Field(default_factory=BackendSettings)
    operations: dict[str, Operation] = Field(default_factory=dict)
    budgets: Budgets = Field(default_factory=Budgets)
    pricing_file: str | None = None
    admission: Admission = Field(default_factory=Admission)
    security: Security = Field(default_factory=Security)
    admin: Admin = Field(default_factory=Admin)
    alerts: Alerts = Field(default_factory=Alerts)
    limits: Limits = Field(default_factory=Limits)
    health: HealthSettings = Field(default_factory=HealthSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    resilience: ResilienceSettings = Field(default_factory=ResilienceSettings)
    jobs: Jobs = Field(default_factory=Jobs)

    @field_validator("operations", mode="before")
    @classmethod
    def _merge_seed(cls, value: object) -> object:
        return over_seed(value, SEED_OPERATIONS)

    def missing_keys(self, env: Mapping[str, str] | None = None) -> list[str]:
        """One message per provider whose key variable is unset or empty."""
        env = os.environ if env is None else env
        return [
            f"providers.{name}.api_key_env: {p.api_key_env} is not set (or is empty). Export "
            f"it, or set api_key_env: null for a provider that needs no key."
            for name, p in self.providers.items()
            if p.api_key_env is not None and not env.get(p.api_key_env)
        ]

    def warnings(self, env: Mapping[str, str] | None = None) -> list[str]:
        """What works but is likely not meant: ``serve`` logs them, ``check-config`` says them."""
        warnings = [self.admin.unauthenticated_warning(env)]
        if not self.jobs.workers and self.redis_url is None:
            # Without Redis the queues live in this process, so no `llm-sidecar worker` can
            # reach them: nothing would ever run a job.
            warnings.append(
                "jobs.workers is false and there is no redis_url: jobs queue in this process, "
                "where no worker runs them. Set redis_url (and run `llm-sidecar worker`) or "
                "jobs.workers: true."
            )
        shadow, threshold = (
            self.security.injection_shadow_threshold,
            self.security.injection_threshold,
        )
        if shadow is not None and shadow >= (threshold or 0.5):
            warnings.append(
                f"security.injection_shadow_threshold ({shadow:g}) is not below the threshold "
                f"({threshold or 0.5:g}): it can never count anything the check does not already "
                "act on. A shadow threshold is a stricter (lower) one tried without acting."
            )
        return [warning for warning in warnings if warning]

    @property
    def default_provider(self) -> str:
        return next(iter(self.providers))

    def operation(self, name: str) -> Operation:
        return self.operations.get(name) or DEFAULT_OPERATION


DEFAULT_OPERATION = Operation()  # frozen, so one instance serves every request


def load_settings(path: str | Path | None = None, *, env: dict[str, str] | None = None) -> Settings:
    """Read, merge and validate a config file (``None``: embedded defaults) plus env overrides."""
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml(Path(path))
    return settings_from_dict(raw, env=os.environ if env is None else env)


def settings_from_dict(raw: dict[str, Any], *, env: Any = None) -> Settings:
    raw = dict(raw)
    raw.setdefault("operations", {})
    env = env or {}
    if env.get("REDIS_URL"):
        raw["redis_url"] = env["REDIS_URL"]
    if env.get("DATABASE_URL"):
        raw["database_url"] = env["DATABASE_URL"]
    problems = reference_problems(raw)
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        lines = [format_validation_error(exc, raw, Settings), *problems]
        raise ConfigError("\n".join(lines)) from None
    if problems:
        raise ConfigError("\n".join(problems))
    return settings


# --- references between keys ---------------------------------------------------------------------
#
# A model named in the file is routed like a request's model (pipeline/routing.py): a `models:`
# entry, else a `provider/` prefix naming a configured provider, else the default provider with
# the name unchanged. A request's model may be anything, but a name written in the file with a
# `/` whose first part names no provider is refused: it is a typo'd provider (`nope/gpt-4o`)
# far more often than a model whose own name has a `/`, and such a model can be written
# unambiguously: `together/meta-llama/Llama-3-8b`, or routed by a `models:` entry.


def reference_problems(raw: Mapping[str, Any]) -> list[str]:
    """Provider names the file refers to that it does not configure, each with its key path.

    Works on the raw file, so these are reported together with the schema's own errors; a
    section of the wrong shape is skipped here (the schema reports it).
    """
    providers = raw.get("providers", {DEFAULT_PROVIDER: None})
    if not isinstance(providers, dict):
        return []
    if not providers:
        return ["providers: at least one provider is required"]
    names = [str(name) for name in providers]
    models = raw.get("models")
    models = models if isinstance(models, dict) else {}
    problems = [
        f"models.{model}.provider: unknown provider {route['provider']!r} "
        f"(configured: {', '.join(names)})"
        for model, route in models.items()
        if isinstance(route, dict)
        and isinstance(route.get("provider"), str)
        and route["provider"] not in providers
    ]
    for path, model in _model_references(raw):
        if (why := unrouted(model, names, models)) is not None:
            problems.append(f"{path}: {why}")
    return problems


def _model_references(raw: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    """(key path, model name) of every model the file names outside ``models:``."""
    operations = raw.get("operations")
    for name, operation in (operations if isinstance(operations, dict) else {}).items():
        fallbacks = operation.get("fallbacks") if isinstance(operation, dict) else None
        for i, model in enumerate(fallbacks if isinstance(fallbacks, list) else []):
            if isinstance(model, str):
                yield f"operations.{name}.fallbacks[{i}]", model
    security = raw.get("security")
    moderation_model = security.get("moderation_model") if isinstance(security, dict) else None
    if isinstance(moderation_model, str):
        yield "security.moderation_model", moderation_model


def unrouted(model: str, providers: list[str], models: Mapping[str, Any]) -> str | None:
    """Why a model named in the file would not go where it says, or None."""
    prefix, slash, _ = model.partition("/")
    # An image fallback carries its quality after a colon (dall-e-3:hd); the route is the model's.
    if not slash or prefix in providers or model in models or model.rpartition(":")[0] in models:
        return None
    close = difflib.get_close_matches(prefix, providers, n=1)
    guess = f" Did you mean `{close[0]}/{model[len(prefix) + 1 :]}`?" if close else ""
    return (
        f"{model!r} names the provider {prefix!r}, which is not configured (configured: "
        f"{', '.join(providers)}).{guess} A model whose own name contains '/' needs its "
        f"provider first ({providers[0]}/{model}) or a models: entry."
    )


# --- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    path: tuple[str | int, ...]  # keys of the user's file only
    union: int | None  # where a union's branch was tried, as a length of path; None: no union
    text: str


def format_validation_error(
    exc: ValidationError, raw: object = None, root: type[BaseModel] | None = None
) -> str:
    """One line per problem: the key path as written in the file, then what is wrong.

    ``raw`` (the validated input) tells the file's keys from pydantic's own location parts
    (``literal[...]``, ``function-after[...]``, ``[key]``); ``root`` (the model validated)
    lets an unknown key be answered with the allowed keys at its level.
    """
    problems = [_problem(err, raw, root) for err in exc.errors()]
    lines: list[str] = []
    for problem in _closest_branches(problems):
        line = f"{_dotted(problem.path)}: {problem.text}"
        if line not in lines:
            lines.append(line)
    return "\n".join(lines)


def _problem(err: Any, raw: object, root: type[BaseModel] | None) -> _Problem:
    path, union, key_error = _file_path(err["loc"], raw)
    text = str(err["msg"]).removeprefix("Value error, ")
    if text.startswith(_dotted(path) + ": "):  # a validator that names its own path
        text = text.removeprefix(_dotted(path) + ": ")
    if err["type"] == "extra_forbidden" and path and root is not None:
        text = _unknown_key(path, root)
    elif err["type"] == "literal_error":
        what = "key" if key_error else "value"
        text = f"{text} (got the {what} {err['input']!r})"
    return _Problem(path, union, text)


def _file_path(loc: tuple[Any, ...], raw: object) -> tuple[tuple[str | int, ...], int | None, bool]:
    """The parts of ``loc`` that are keys of the input; where a union branch was entered; and
    whether the error is about a mapping's key rather than its value."""
    path: list[str | int] = []
    union: int | None = None
    node = raw
    for part in loc:
        if raw is None:  # no input to consult: pydantic's own parts are the bracketed ones
            is_key = not (isinstance(part, str) and "[" in part)
        else:
            is_key, node = _child(node, part)
        if is_key:
            path.append(part)
        elif union is None and part != "[key]":
            union = len(path)
    return tuple(path), union, bool(loc) and loc[-1] == "[key]"


def _child(node: object, part: object) -> tuple[bool, object]:
    """Whether ``part`` is a key (or index) of ``node``, and the value there."""
    if isinstance(node, dict) and part in node:
        return True, node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return True, node[part]
    return False, node


def _closest_branches(problems: list[_Problem]) -> list[_Problem]:
    """Of a union's failed branches, the ones that got deepest into the input: for
    ``output: {EMAIL: banana}`` the map's complaint about EMAIL, not "should be a string"."""
    deepest: dict[tuple[str | int, ...], int] = {}
    for p in problems:
        if p.union is not None:
            key = p.path[: p.union]
            deepest[key] = max(deepest.get(key, 0), len(p.path))
    return [p for p in problems if p.union is None or len(p.path) == deepest[p.path[: p.union]]]


def _unknown_key(path: tuple[str | int, ...], root: type[BaseModel]) -> str:
    key = str(path[-1])
    model = _model_at(root, path[:-1])
    allowed = list(model.model_fields) if model is not None else []
    if f"{key}_env" in allowed and model is not None:
        example = model.model_fields[f"{key}_env"].default
        return (
            f"secrets are never written in the config file: put it in an environment variable "
            f"and name that variable with {key}_env (e.g. {key}_env: {example or 'MY_SECRET'})"
        )
    if close := difflib.get_close_matches(key, allowed, n=1):
        return f"unknown key; did you mean `{close[0]}`?"
    if allowed:
        return f"unknown key; allowed here: {', '.join(allowed)}"
    return "unknown key"


def _model_at(root: type[BaseModel], path: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``path`` under ``root``, if any."""
    node: Any = root
    for part in path:
        node = _step(node, part)
        if node is None:
            return None
    return _as_model(node)


def _step(annotation: Any, part: str | int) -> Any:
    """The type of ``annotation[part]``: a model's field, a mapping's value, a list's item."""
    if (model := _as_model(annotation)) is not None:
        field = model.model_fields.get(str(part))
        return field.annotation if field is not None else None
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin is list and args:
        return args[0]
    if origin in (Union, types.UnionType, Annotated):
        for member in args:
            if (found := _step(member, part)) is not None:
                return found
    return None


def _as_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        for member in get_args(annotation):
            if (model := _as_model(member)) is not None:
                return model
    return None


def _dotted(path: tuple[str | int, ...]) -> str:
    text = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)
    return text.removeprefix(".") or "(top level)"


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    return data
