"""Configuration: seed defaults, env overrides, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.config import Admin, ConfigError, load_settings, settings_from_dict
from sidecar.pipeline.routing import Router


def test_embedded_defaults_match_the_spec_seed() -> None:
    """With no file, the seed operations of SPEC are in force."""
    settings = settings_from_dict({})
    chat = settings.operation("chat")
    assert chat.rate_limit is not None
    assert (chat.rate_limit.requests, chat.rate_limit.per_s) == (30, 60)
    assert chat.fallbacks == ["gpt-4o", "gpt-4", "gpt-3.5-turbo"]
    assert settings.operation("image-generation").cache_ttl_s == 86400
    assert settings.default_provider == "openai"
    assert settings.limits.max_body_bytes == 10 * 1024 * 1024


def test_operations_override_the_seed_key_by_key() -> None:
    """Overriding one key of a seeded operation keeps its other seeded keys."""
    settings = settings_from_dict({"operations": {"chat": {"slow_ms": 1000}, "mine": {}}})
    assert settings.operation("chat").slow_ms == 1000
    assert settings.operation("chat").fallbacks == ["gpt-4o", "gpt-4", "gpt-3.5-turbo"]
    assert "mine" in settings.operations


def test_env_overrides_storage_urls() -> None:
    """REDIS_URL and DATABASE_URL beat the file."""
    settings = settings_from_dict(
        {"redis_url": "redis://file"},
        env={"REDIS_URL": "redis://env:6379/1", "DATABASE_URL": "postgresql://db/x"},
    )
    assert settings.redis_url == "redis://env:6379/1"
    assert settings.database_url == "postgresql://db/x"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"operations": {"chat": {"rate_limit": {"requests": 0, "per_s": 60}}}},
            "operations.chat.rate_limit.requests: Input should be greater than 0",
        ),
        ({"listen": {"prot": 1}}, "listen.prot: unknown key; did you mean `port`?"),
        ({"providers": {"x": {"base_url": "ftp://x"}}}, "providers.x.base_url: must start with"),
        ({"models": {"llama3": {"provider": "nope"}}}, "models.llama3.provider: unknown provider"),
        ({"security": {"injection": "maybe"}}, "security.injection: Input should be"),
    ],
)
def test_errors_name_the_key_path(raw: dict[str, object], message: str) -> None:
    """Every validation error starts with the dotted path of the offending key."""
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(raw)
    assert message in str(caught.value)


def test_yaml_file_errors_are_clear(tmp_path: Path) -> None:
    """Unreadable files, bad YAML and non-mappings each get their own message."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("listen: {host: [}\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_settings(listing)


def test_check_config_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """check-config exits 0 on a good file and 2 with the key path on a bad one."""
    good = tmp_path / "good.yaml"
    good.write_text(
        "providers:\n  local: {base_url: 'http://127.0.0.1:11434/v1', api_key_env: null}\n"
    )
    assert main(["check-config", str(good)]) == 0
    assert "valid" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("operations:\n  chat:\n    rate_limit: {requests: -1, per_s: 60}\n")
    assert main(["check-config", str(bad)]) == 2
    assert "operations.chat.rate_limit.requests" in capsys.readouterr().err


def test_check_config_says_what_is_missing_or_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], unused_tcp_port: int
) -> None:
    """A key variable that is not set and a Redis that does not answer are problems (exit 1)."""
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        "providers:\n  openai: {api_key_env: SIDECAR_TEST_UNSET_KEY}\n"
        f"redis_url: 'redis://:pw@127.0.0.1:{unused_tcp_port}/0'\n"
    )
    assert main(["check-config", str(config)]) == 1
    out = capsys.readouterr().out
    assert "SIDECAR_TEST_UNSET_KEY is not set" in out
    assert "redis: unreachable" in out
    assert ":pw@" not in out


# --- what a new user met (trial): YAML's off, typo'd providers, messages ------------------------

# SPEC's own sample configuration, verbatim (unquoted `moderation: off`, `output: redact`).
SPEC_SAMPLE = """\
listen: {host: 127.0.0.1, port: 8787}
providers:                       # first one is the default
  openai: {base_url: https://api.openai.com/v1, api_key_env: OPENAI_API_KEY, timeout_s: 60}
  local:  {base_url: http://127.0.0.1:11434/v1, api_key_env: null}
models:                          # model -> provider (unlisted models go to the default provider)
  llama3: {provider: local}
redis_url: null                  # null = in-process backends (single instance only)
database_url: sqlite:///sidecar-usage.db   # or postgresql://...
operations:                      # seed defaults shown
  chat:             {rate_limit: {requests: 30, per_s: 60}, cache_ttl_s: 0,     slow_ms: 5000,  \
fallbacks: [gpt-4o, gpt-4, gpt-3.5-turbo]}
  image-generation: {rate_limit: {requests: 10, per_s: 60}, cache_ttl_s: 86400, slow_ms: 15000, \
fallbacks: ["dall-e-3:hd", "dall-e-3:standard", "dall-e-2:standard"]}
  evaluation:       {rate_limit: {requests: 20, per_s: 60}, cache_ttl_s: 3600,  slow_ms: 3000}
  tool-execution:   {cache_ttl_s: 300, slow_ms: 2000}
  intent:           {cache_ttl_s: 600}
  embedding:        {cache_ttl_s: 86400}
budgets: {monthly_usd: 50, notify_at: 0.8, enforce: true, users: {alice: 200}}
pricing_file: null               # overrides/extends the shipped pricing table (format below)
admission:                       # live priority admission
  max_concurrency: 64            # concurrent upstream calls per provider
  max_wait_ms: {high: 30000, normal: 10000, batch: 300000}
security:
  injection: block               # block | flag | off
  moderation: off                # off | fail_open | fail_closed
  duplicates: {max: 0, per_s: 60}   # same content from the same user more than max times
  output: redact                 # redact | block | flag | off, or a map per type
admin: {token_env: SIDECAR_ADMIN_TOKEN}
alerts: {webhook_url: null}      # slow operations, budget thresholds, security events
"""


def test_the_spec_sample_config_is_valid(tmp_path: Path) -> None:
    """SPEC's sample, where YAML reads `moderation: off` as false, loads as written."""
    config = tmp_path / "sidecar.yaml"
    config.write_text(SPEC_SAMPLE)
    settings = load_settings(config, env={})
    assert settings.security.moderation == "off"
    assert settings.models["llama3"].provider == "local"


@pytest.mark.parametrize("word", ["off", "Off", "no", "false"])
@pytest.mark.parametrize(
    "key", ["injection", "moderation", "output", "output_map"], ids=lambda key: key
)
def test_every_choice_with_off_accepts_yamls_unquoted_off(
    tmp_path: Path, key: str, word: str
) -> None:
    """Every field whose choices include "off" takes YAML's boolean reading of an unquoted off."""
    config = tmp_path / "sidecar.yaml"
    value = f"{{EMAIL: {word}}}" if key == "output_map" else word
    config.write_text(f"security:\n  {key.removesuffix('_map')}: {value}\n")
    security = load_settings(config, env={}).security
    if key == "output_map":
        assert security.output == {"EMAIL": "off"}
    else:
        assert getattr(security, key) == "off"


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("security: {injection: on}", "security.injection: `on` (true) does not say which mode"),
        ("security: {moderation: on}", "write fail_open or fail_closed (or off)"),
        ("security: {output: yes}", "security.output: `on` (true) does not say which mode"),
        ("security: {output: {EMAIL: on}}", "security.output.EMAIL: `on` (true)"),
        ("security: {output: banana}", "security.output: must be one of redact, block, flag"),
        ("security: {output: {EMAIL: nope}}", "security.output.EMAIL: Input should be 'redact'"),
        (
            "security: {moderation: maybe}",
            "security.moderation: Input should be 'off', 'fail_open'",
        ),
        ("admission: {max_wait_ms: {urgent: 1}}", "admission.max_wait_ms.urgent: Input should be"),
    ],
)
def test_choice_errors_name_the_users_key_and_the_choices_only(
    tmp_path: Path, yaml_text: str, message: str
) -> None:
    """`on` is refused with the choices (it does not say which is meant); no error shows
    pydantic's own location parts (literal[...], function-...[...], [key]); one line each."""
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml_text + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env={})
    text = str(caught.value)
    assert message in text
    assert len(text.splitlines()) == 1
    assert "[" not in text.split(":", maxsplit=1)[0]
    assert "literal" not in text
    assert "function-" not in text


def test_unknown_keys_get_a_suggestion_and_inline_secrets_name_the_env_key() -> None:
    """A typo'd key says which key was meant; an inline secret says to name its variable
    with the *_env key, and the secret itself is never repeated."""
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(
            {
                "operations": {"chat": {"cache_ttl": 60}},
                "providers": {"openai": {"api_key": "sk-live-0123456789"}},
                "admin": {"token": "hunter2-admin"},
            }
        )
    lines = str(caught.value).splitlines()
    assert "operations.chat.cache_ttl: unknown key; did you mean `cache_ttl_s`?" in lines
    (api_key,) = [line for line in lines if line.startswith("providers.openai.api_key:")]
    assert "api_key_env" in api_key
    assert "environment variable" in api_key
    (token,) = [line for line in lines if line.startswith("admin.token:")]
    assert "token_env" in token
    assert "sk-live" not in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "Extra inputs" not in str(caught.value)


def test_cross_key_errors_have_their_path_and_come_with_the_others() -> None:
    """An unknown models.X.provider is reported under its own key, together with a schema
    error elsewhere in the same file (not only once the rest is fixed)."""
    with pytest.raises(ConfigError) as caught:
        settings_from_dict(
            {"models": {"llama3": {"provider": "lcoal"}}, "listen": {"port": "eighty"}}
        )
    lines = str(caught.value).splitlines()
    assert any(line.startswith("listen.port: ") for line in lines)
    assert "models.llama3.provider: unknown provider 'lcoal' (configured: openai)" in lines
    assert "(top level)" not in str(caught.value)


TWO_PROVIDERS = {
    "openai": {"api_key_env": None},
    "local": {"base_url": "http://127.0.0.1:11434/v1", "api_key_env": None},
}


@pytest.mark.parametrize(
    ("section", "path"),
    [
        (
            {"operations": {"chat": {"fallbacks": ["gpt-4o", "nope/gpt-4o-mini"]}}},
            "operations.chat.fallbacks[1]",
        ),
        (
            {"operations": {"image-generation": {"fallbacks": ["nope/dall-e-3:hd"]}}},
            "operations.image-generation.fallbacks[0]",
        ),
        (
            {"security": {"moderation_model": "nope/omni-moderation-latest"}},
            "security.moderation_model",
        ),
    ],
)
def test_a_model_prefixed_with_an_unknown_provider_is_refused(
    section: dict[str, object], path: str
) -> None:
    """`nope/gpt-4o-mini` (no provider `nope`) is refused with its key and the providers
    configured, instead of sending the literal name to the default provider."""
    with pytest.raises(ConfigError) as caught:
        settings_from_dict({"providers": TWO_PROVIDERS, **section})
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "'nope'" in message
    assert "configured: openai, local" in message


def test_a_typo_of_a_provider_name_suggests_it() -> None:
    with pytest.raises(ConfigError, match="Did you mean `local/llama3`"):
        settings_from_dict(
            {"providers": TWO_PROVIDERS, "operations": {"chat": {"fallbacks": ["locl/llama3"]}}}
        )


def test_models_whose_own_name_has_a_slash_are_written_unambiguously() -> None:
    """A model named like `meta-llama/Llama-3-8b` is routed by its provider prefix or by a
    models: entry, and reaches that provider under its own full name."""
    settings = settings_from_dict(
        {
            "providers": TWO_PROVIDERS,
            "models": {"mistralai/Mistral-7B": {"provider": "local"}},
            "operations": {
                "chat": {"fallbacks": ["local/meta-llama/Llama-3-8b", "mistralai/Mistral-7B"]}
            },
        }
    )
    router = Router(settings)
    assert router.provider_for("local/meta-llama/Llama-3-8b")[::2] == (
        "local",
        "meta-llama/Llama-3-8b",
    )
    assert router.provider_for("mistralai/Mistral-7B")[::2] == ("local", "mistralai/Mistral-7B")
    # A request (not the file) may still name any model: it goes to the default provider as is.
    assert router.provider_for("meta-llama/Llama-3-8b")[::2] == ("openai", "meta-llama/Llama-3-8b")


def test_the_admin_token_comes_from_token_env_then_sidecar_admin_token() -> None:
    """admin.token_env names the variable; unset or empty, SIDECAR_ADMIN_TOKEN is the token,
    so exporting it never leaves the endpoints open; with neither there is a warning."""
    admin = Admin(token_env="MY_ADMIN")
    assert admin.token({"SIDECAR_ADMIN_TOKEN": "zzz"}) == "zzz"
    assert admin.token({"MY_ADMIN": "mine", "SIDECAR_ADMIN_TOKEN": "zzz"}) == "mine"
    assert admin.token({"MY_ADMIN": "", "SIDECAR_ADMIN_TOKEN": "zzz"}) == "zzz"
    assert admin.token({}) is None
    assert admin.unauthenticated_warning({"SIDECAR_ADMIN_TOKEN": "zzz"}) is None
    warning = admin.unauthenticated_warning({})
    assert warning is not None
    assert "unauthenticated" in warning
    assert "$MY_ADMIN" in warning
    assert "$SIDECAR_ADMIN_TOKEN" in warning


def test_jobs_without_workers_or_redis_are_warned_about() -> None:
    """jobs.workers: false keeps `serve` from running jobs; without Redis no other process can
    reach its queues either, so the jobs would never run: a warning says so."""
    token = {"SIDECAR_ADMIN_TOKEN": "t"}
    stranded = settings_from_dict({"jobs": {"workers": False}}, env={})
    assert any("no worker runs them" in w for w in stranded.warnings(token))
    shared = settings_from_dict(
        {"jobs": {"workers": False}, "redis_url": "redis://127.0.0.1/0"}, env={}
    )
    assert shared.warnings(token) == []
    assert settings_from_dict({}, env={}).warnings(token) == []


def test_a_shadow_threshold_that_is_not_stricter_is_warned_about() -> None:
    """A shadow threshold tries a lower one without acting; at or above the real threshold it
    could never count anything."""
    token = {"SIDECAR_ADMIN_TOKEN": "t"}
    useless = settings_from_dict({"security": {"injection_shadow_threshold": 0.8}}, env={})
    assert any("injection_shadow_threshold" in w for w in useless.warnings(token))
    stricter = settings_from_dict({"security": {"injection_shadow_threshold": 0.4}}, env={})
    assert stricter.warnings(token) == []
