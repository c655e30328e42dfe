"""ResponseCache, driven directly: streamed answers stored whole and replayed in either form,
and concurrent identical misses sharing one upstream call."""

from __future__ import annotations

import asyncio
from typing import Any

from sidecar.errors import SidecarError
from sidecar.exchange import Usage
from sidecar.replay import ChatAssembler, chat_events, event_json, responses_events
from tests.pipeline.cache_harness import (
    CHAT,
    RESPONSES,
    Harness,
    Result,
    response_answer,
)

# --- streams and replays ---------------------------------------------------------------------


async def test_a_streamed_chat_answer_is_stored_as_a_chat_completion(h: Harness) -> None:
    """The chunks are assembled into the equivalent non-stream answer (content, role, finish
    reason, usage from the chunk the client did not see), served to a non-stream request."""
    streamed = await h.ask({**CHAT, "stream": True})
    assert b'"usage"' not in streamed.body  # the client did not ask for it
    await h.background.run()
    hit = await h.ask(CHAT)
    assert hit.ex.cache == "HIT"
    answer = hit.json
    assert answer["object"] == "chat.completion"
    assert answer["id"] == "chatcmpl-1"
    choice = answer["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "answer 1"
    assert choice["finish_reason"] == "stop"
    assert answer["usage"]["prompt_tokens"] == 7
    assert answer["usage"]["completion_tokens"] == 3


async def test_a_stored_chat_answer_replays_as_chunks_with_usage_only_when_asked(
    h: Harness,
) -> None:
    """A streaming request gets chat.completion.chunk events then [DONE]; the usage chunk
    comes only with stream_options.include_usage."""
    await h.ask(CHAT)
    await h.background.run()
    plain = await h.ask({**CHAT, "stream": True})
    assert plain.ex.cache == "HIT"
    assert plain.reply.headers["Content-Type"].startswith("text/event-stream")
    assert plain.body.endswith(b"data: [DONE]\n\n")
    chunks = plain.events
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "answer 1"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in chunk for chunk in chunks)
    with_usage = await h.ask({**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert with_usage.ex.cache == "HIT"
    last = with_usage.events[-1]
    assert last["choices"] == []
    assert last["usage"]["completion_tokens"] == 3
    assert h.upstream.calls == 1


async def test_a_streamed_response_is_stored_from_response_completed(h: Harness) -> None:
    """Responses API streams are stored as their response.completed event's response, which
    a non-stream request then gets."""
    await h.ask({**RESPONSES, "stream": True}, "responses")
    await h.background.run()
    hit = await h.ask(RESPONSES, "responses")
    assert hit.ex.cache == "HIT"
    assert hit.json == response_answer(1)
    assert hit.ex.usage == Usage(input_tokens=5, output_tokens=2)


async def test_a_stored_response_replays_as_the_responses_event_sequence(h: Harness) -> None:
    """A streaming Responses request gets created, in_progress, the item and its text, and
    completed, numbered in order."""
    await h.ask(RESPONSES, "responses")
    await h.background.run()
    replay = await h.ask({**RESPONSES, "stream": True}, "responses")
    assert replay.ex.cache == "HIT"
    names = [event["type"] for event in replay.events]
    assert names == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in replay.events] == list(range(len(names)))
    assert replay.events[-1]["response"] == response_answer(1)
    assert b"event: response.completed\n" in replay.body


def test_responses_with_tool_calls_and_refusals_replay_item_by_item() -> None:
    """Function calls stream their arguments, refusals their text; each item is added before
    its deltas and done after them, with the same id."""
    call = {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f",
            "arguments": '{"a": 1}', "status": "completed"}  # fmt: skip
    refusal = {"type": "refusal", "refusal": "no"}
    message = {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
               "content": [refusal]}  # fmt: skip
    answer = {**response_answer(1), "output": [call, message]}
    replay = [event_json(event) or {} for event in responses_events(answer)]
    steps = [(e["type"], e.get("output_index"), e.get("item_id")) for e in replay]
    assert steps[2:-1] == [
        ("response.output_item.added", 0, None),
        ("response.function_call_arguments.delta", 0, "fc_1"),
        ("response.function_call_arguments.done", 0, "fc_1"),
        ("response.output_item.done", 0, None),
        ("response.output_item.added", 1, None),
        ("response.content_part.added", 1, "msg_1"),
        ("response.refusal.delta", 1, "msg_1"),
        ("response.refusal.done", 1, "msg_1"),
        ("response.content_part.done", 1, "msg_1"),
        ("response.output_item.done", 1, None),
    ]
    assert replay[2]["item"]["arguments"] == ""
    assert replay[3]["delta"] == '{"a": 1}'
    assert replay[7]["part"] == {"type": "refusal", "refusal": ""}
    assert replay[8]["delta"] == "no"


def test_chat_chunks_with_tool_calls_assemble_and_replay_losslessly() -> None:
    """Tool-call deltas (id and name first, arguments in pieces) and several choices are
    assembled, and replaying the result assembles to the same answer again."""

    def chunk(index: int, delta: dict[str, Any], reason: str | None = None) -> dict[str, Any]:
        return {"id": "c", "created": 1, "model": "m", "choices": [
            {"index": index, "delta": delta, "finish_reason": reason}]}  # fmt: skip

    call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}}
    assembler = ChatAssembler()
    for piece in (
        chunk(
            0,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{**call, "function": {"name": "f", "arguments": ""}}],
            },
        ),
        chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": '{"a":'}}]}),
        chunk(0, {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}),
        chunk(1, {"role": "assistant", "content": "two"}),
        chunk(0, {}, "tool_calls"),
        chunk(1, {}, "stop"),
    ):
        assembler.add(piece)
    answer = assembler.completion(Usage(3, 4))
    assert answer is not None
    first, second = answer["choices"]
    assert first["message"]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
    ]
    assert (first["message"]["content"], first["finish_reason"]) == (None, "tool_calls")
    assert (second["message"]["content"], second["finish_reason"]) == ("two", "stop")
    assert answer["usage"]["total_tokens"] == 7
    again = ChatAssembler()
    for event in chat_events(answer, include_usage=True):
        if (obj := event_json(event)) is not None:
            again.add(obj)
    assert again.completion(None) == answer


# --- single flight ---------------------------------------------------------------------------


async def crowd(h: Harness, n: int, body: dict[str, Any] | None = None) -> list[Result]:
    """``n`` identical requests at once, while the first upstream call is held."""
    h.upstream.gate = asyncio.Event()
    tasks = [asyncio.create_task(h.ask(body)) for _ in range(n)]
    await h.upstream.entered.wait()
    for _ in range(n * 4):  # let every other request reach the point where it waits
        await asyncio.sleep(0)
    h.upstream.gate.set()
    return await asyncio.gather(*tasks)


async def test_concurrent_identical_misses_make_one_upstream_call(h: Harness) -> None:
    """20 identical requests at once: one calls the upstream (MISS), 19 wait for it and are
    answered from its answer (HIT), before anything is stored."""
    results = await crowd(h, 20)
    assert h.upstream.calls == 1
    assert sorted(r.ex.cache for r in results) == ["HIT"] * 19 + ["MISS"]
    assert {r.body for r in results} == {results[0].body}
    assert len(h.background.jobs) == 1  # one store, after the replies


async def test_waiters_of_a_streamed_first_call_get_its_answer_when_it_completes(
    h: Harness,
) -> None:
    """A stream leads: a waiting non-stream request gets the assembled answer once the
    stream completed, without another upstream call."""
    h.upstream.gate = asyncio.Event()
    leader = asyncio.create_task(h.ask({**CHAT, "stream": True}))
    await h.upstream.entered.wait()
    waiter = asyncio.create_task(h.ask(CHAT))
    for _ in range(8):
        await asyncio.sleep(0)
    assert not waiter.done()
    h.upstream.gate.set()
    streamed, answered = await leader, await waiter
    assert (streamed.ex.cache, answered.ex.cache) == ("MISS", "HIT")
    assert answered.json["choices"][0]["message"]["content"] == "answer 1"
    assert h.upstream.calls == 1


async def test_waiters_call_on_their_own_when_the_first_call_fails(h: Harness) -> None:
    """If the call they wait for fails, the waiters do not fail with it: each calls."""
    h.upstream.fail_first = True
    h.upstream.gate = asyncio.Event()
    tasks = [asyncio.create_task(h.ask()) for _ in range(5)]
    await h.upstream.entered.wait()
    for _ in range(20):
        await asyncio.sleep(0)
    h.upstream.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if isinstance(r, SidecarError)]
    answered = [r for r in results if isinstance(r, Result)]
    assert len(failures) == 1
    assert len(answered) == 4
    assert h.upstream.calls >= 2


async def test_a_waiter_stops_waiting_at_the_operations_deadline(h: Harness) -> None:
    """A waiter waits for the first call at most the operation's deadline (0.05 s here), then
    calls on its own, and later requests follow its call instead of the slow one."""
    quick = {"X-Sidecar-Operation": "quick"}
    h.upstream.gate = asyncio.Event()
    leader = asyncio.create_task(h.ask(headers=quick))
    await h.upstream.entered.wait()
    waiter = await asyncio.wait_for(h.ask(headers=quick), 5)
    assert waiter.ex.cache == "MISS"
    assert waiter.json["choices"][0]["message"]["content"] == "answer 2"
    later = await h.ask(headers=quick)
    assert later.ex.cache == "HIT"
    assert later.json["choices"][0]["message"]["content"] == "answer 2"
    assert h.upstream.calls == 2
    h.upstream.gate.set()
    assert (await leader).ex.cache == "MISS"


async def test_a_request_arriving_before_the_store_finished_is_served_from_the_flight(
    h: Harness,
) -> None:
    """Between the reply and its store, an identical request is answered from the landed
    call (a HIT), not by calling the upstream again."""
    await h.ask()
    assert len(h.background.jobs) == 1  # not stored yet
    again = await h.ask()
    assert again.ex.cache == "HIT"
    assert h.upstream.calls == 1
