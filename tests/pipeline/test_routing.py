"""Router: which provider serves a model."""

from __future__ import annotations

import pytest

from sidecar.config import settings_from_dict
from sidecar.errors import SidecarError
from sidecar.pipeline.base import compose
from sidecar.pipeline.body import ReadBody
from sidecar.pipeline.identity import Identify
from sidecar.pipeline.routing import Router
from tests.helpers import Recorder, exchange

SETTINGS = settings_from_dict(
    {
        "providers": {
            "openai": {"base_url": "https://api.openai.com/v1"},
            "local": {"base_url": "http://127.0.0.1:11434/v1", "api_key_env": None},
        },
        "models": {"llama3": {"provider": "local"}},
    }
)


@pytest.mark.parametrize(
    ("model", "provider", "sent"),
    [
        ("gpt-4o", "openai", "gpt-4o"),
        ("llama3", "local", "llama3"),
        ("local/qwen2", "local", "qwen2"),
        ("meta-llama/Llama-3-8b", "openai", "meta-llama/Llama-3-8b"),
    ],
)
def test_model_table_then_prefix_then_default(model: str, provider: str, sent: str) -> None:
    """Listed models go to their provider; 'provider/model' picks a provider; else the first."""
    name, _, upstream_model = Router(SETTINGS).provider_for(model)
    assert (name, upstream_model) == (provider, sent)


async def test_prefix_is_stripped_from_the_body_sent_upstream() -> None:
    """With a provider prefix, the upstream receives the bare model name."""
    ex = exchange(body={"model": "local/qwen2"})
    ex.body, ex.model = {"model": "local/qwen2"}, "local/qwen2"
    recorder = Recorder()
    await Router(SETTINGS)(ex, recorder)
    assert ex.provider_name == "local"
    assert b'"model":"qwen2"' in ex.upstream_body()


async def test_unknown_provider_header_is_invalid_input_before_any_limit() -> None:
    """X-Sidecar-Provider must name a configured provider: the identity stage refuses it with
    the other request headers, before rate limits, budgets or usage records see the call."""
    ex = exchange(body={"model": "gpt-4o"}, headers={"X-Sidecar-Provider": "azure"})
    recorder = Recorder()
    chain = compose([ReadBody(SETTINGS.limits.max_body_bytes), Identify(SETTINGS)], recorder)
    with pytest.raises(SidecarError) as caught:
        await chain(ex)
    assert caught.value.reason == "unknown_provider"
    assert "openai, local" in caught.value.message
    assert recorder.seen == []
