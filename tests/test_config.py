"""Configuration: seed defaults, env overrides, and errors that name the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.cli import main
from sidecar.config import ConfigError, load_settings, settings_from_dict


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
        ({"listen": {"prot": 1}}, "listen.prot: Extra inputs are not permitted"),
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
