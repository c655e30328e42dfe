"""CaptureUsage: usage from whole replies and from streams, and the include_usage rewrite."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import orjson

from sidecar import stream
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.usage import CaptureUsage
from tests.helpers import Recorder, exchange


def streaming_exchange(wants_usage: bool = False) -> Exchange:
    ex = exchange(body={"model": "gpt-4o", "stream": True})
    ex.body = {"model": "gpt-4o", "stream": True}
    ex.stream, ex.client_wants_usage = True, wants_usage
    return ex


async def events(*items: bytes) -> AsyncGenerator[bytes]:
    for item in items:
        yield item


CHUNK = (
    b'data: {"model":"gpt-4o-2024","choices":[{"delta":{"content":"hi"},"finish_reason":null}],'
    b'"usage":null}\n\n'
)
STOP = b'data: {"model":"gpt-4o-2024","choices":[{"delta":{},"finish_reason":"stop"}]}\n\n'
USAGE = (
    b'data: {"model":"gpt-4o-2024","choices":[],'
    b'"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\n'
)
DONE = b"data: [DONE]\n\n"


async def test_whole_reply_usage_and_model_are_read() -> None:
    """Chat-style usage and the answering model are read from a JSON reply."""
    ex = exchange(body={"model": "gpt-4o"})
    reply = Reply(
        200,
        body=orjson.dumps(
            {
                "model": "gpt-4o-2024-08-06",
                "choices": [{"finish_reason": "stop"}],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 5,
                    "prompt_tokens_details": {"cached_tokens": 4},
                },
            }
        ),
    )
    await CaptureUsage()(ex, Recorder(reply))
    assert ex.usage is not None
    assert (ex.usage.input_tokens, ex.usage.output_tokens, ex.usage.cached_input_tokens) == (
        10,
        5,
        4,
    )
    assert ex.response_model == "gpt-4o-2024-08-06"
    assert ex.finish_reasons == ["stop"]


async def test_stream_asks_upstream_for_usage_and_strips_it_for_the_client() -> None:
    """Usage is captured from the extra chunk, which the client never sees."""
    ex = streaming_exchange()
    reply = Reply(200, stream=events(CHUNK, STOP, USAGE, DONE))
    result = await CaptureUsage()(ex, Recorder(reply))
    assert ex.body is not None
    assert ex.body["stream_options"] == {"include_usage": True}
    assert result.stream is not None
    relayed = [event async for event in stream.relay(result, ex)]
    assert relayed == [CHUNK, STOP, DONE]
    assert ex.usage is not None
    assert (ex.usage.input_tokens, ex.usage.output_tokens) == (7, 3)
    assert ex.finish_reasons == ["stop"]


async def test_stream_keeps_the_usage_chunk_when_the_client_asked() -> None:
    """A client that asked for include_usage gets the chunk, and we still read it."""
    ex = streaming_exchange(wants_usage=True)
    reply = Reply(200, stream=events(CHUNK, USAGE, DONE))
    result = await CaptureUsage()(ex, Recorder(reply))
    assert result.stream is not None
    assert [event async for event in stream.relay(result, ex)] == [CHUNK, USAGE, DONE]
    assert ex.usage is not None
    assert ex.usage.output_tokens == 3


async def test_responses_stream_usage_comes_from_response_completed() -> None:
    """For the Responses API, usage is read from the response.completed event."""
    ex = exchange(path="responses", body={"model": "gpt-4o", "stream": True})
    ex.body, ex.stream = {"model": "gpt-4o", "stream": True}, True
    completed = (
        b"event: response.completed\n"
        b'data: {"type":"response.completed","response":{"object":"response","model":"gpt-4o",'
        b'"status":"completed","usage":{"input_tokens":5,"output_tokens":9}}}\n\n'
    )
    result = await CaptureUsage()(ex, Recorder(Reply(200, stream=events(completed))))
    assert result.stream is not None
    assert [event async for event in stream.relay(result, ex)] == [completed]
    assert ex.usage is not None
    assert (ex.usage.input_tokens, ex.usage.output_tokens) == (5, 9)
    assert ex.body is not None
    assert "stream_options" not in ex.body


async def test_usage_written_with_spaces_is_still_read_and_stripped() -> None:
    """Upstreams that pretty-print JSON ('"usage": {') are parsed like compact ones."""
    spaced_stop = (
        b'data: {"model": "gpt-4o", "choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
    )
    spaced_usage = (
        b'data: {"model": "gpt-4o", "choices": [], '
        b'"usage": {"prompt_tokens": 11, "completion_tokens": 4}}\n\n'
    )
    ex = streaming_exchange()
    reply = Reply(200, stream=events(CHUNK, spaced_stop, spaced_usage, DONE))
    result = await CaptureUsage()(ex, Recorder(reply))
    assert [event async for event in stream.relay(result, ex)] == [CHUNK, spaced_stop, DONE]
    assert ex.usage is not None
    assert (ex.usage.input_tokens, ex.usage.output_tokens) == (11, 4)
    assert ex.finish_reasons == ["stop"]
