"""Output redaction: recall and precision per type on the synthetic corpus, and its cost.

Quality, on ``pii_secrets_synthetic.jsonl`` (every line, whole text): a finding counts as a
true positive when its type and offsets equal a labelled span's; every other finding is a
false positive, and those that touch a labelled look-alike (order number, UUID, hash, invalid
card...) are also counted per look-alike kind. Targets: recall and precision >= 99 % per type.

Cost, in-process: the thread's CPU time (``thread_time_ns``) around each call, so time the
scheduler gives other processes on a shared machine does not count:

- per streamed chunk: replies cut into chunks of 20-80 characters, each fed to a
  :class:`StreamRedactor` (``prose``: generated replies with code, numbers and now and then a
  secret; ``dense``: the corpus texts, a finding every ~60 characters). Target p50 <= 50 µs.
  The hold-back columns say how many characters were held after each chunk, and the most.
- per SSE event: the prose chunks as chat-completion events through :class:`RedactingObserver`
  (JSON parsing and rewriting included);
- per whole answer: :func:`redact` on 1 kB and 10 kB of each kind of text.

Run: ``python -m bench.redaction [--corpus DIR] [--json PATH] [--doc docs/security.md]``;
``--doc`` rewrites the figures between the ``output-eval`` markers of that file.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from rich.console import Console
from rich.table import Table

from bench.harness.report import microseconds_table
from sidecar.security.secrets import TYPES, find, redact
from sidecar.security.stream_redact import RedactingObserver, StreamRedactor

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "security-dev"
CORPUS_FILE = "pii_secrets_synthetic.jsonl"


# --- quality ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Score:
    tp: int = 0
    fn: int = 0
    fp: int = 0

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None


@dataclass(slots=True)
class Quality:
    per_type: dict[str, Score] = field(default_factory=dict)
    lookalike_hits: Counter[str] = field(default_factory=Counter)  # findings on a look-alike
    lookalikes: Counter[str] = field(default_factory=Counter)  # look-alikes in the corpus
    texts: int = 0
    missed: list[tuple[str, str, str]] = field(default_factory=list)  # id, type, value (a few)
    wrong: list[tuple[str, str, str]] = field(default_factory=list)


def load(corpus: Path = CORPUS) -> list[dict[str, Any]]:
    with (corpus / CORPUS_FILE).open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def evaluate(rows: Iterable[dict[str, Any]]) -> Quality:
    quality = Quality(per_type={t: Score() for t in TYPES})
    for row in rows:
        quality.texts += 1
        text = row["text"]
        gold = {(s["start"], s["end"], s["type"]) for s in row["spans"]}
        found = {(s.start, s.end, s.type) for s in find(text)}
        for start, end, type_ in gold:
            score = quality.per_type.setdefault(type_, Score())
            if (start, end, type_) in found:
                score.tp += 1
            else:
                score.fn += 1
                _note(quality.missed, row["id"], type_, text[start:end])
        negatives = row.get("negatives") or []
        quality.lookalikes.update(n["kind"] for n in negatives)
        for start, end, type_ in found - gold:
            quality.per_type.setdefault(type_, Score()).fp += 1
            _note(quality.wrong, row["id"], type_, text[start:end])
            for n in negatives:
                if start < n["end"] and n["start"] < end:
                    quality.lookalike_hits[n["kind"]] += 1
    return quality


def _note(into: list[tuple[str, str, str]], row_id: str, type_: str, value: str) -> None:
    if len(into) < 20:
        into.append((row_id, type_, value[:60]))


def quality_table(quality: Quality) -> Table:
    table = Table(title=f"Redaction quality on {CORPUS_FILE} ({quality.texts} texts)")
    for column in ("type", "spans", "found", "missed", "false +", "recall", "precision"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for type_, s in quality.per_type.items():
        table.add_row(
            type_,
            str(s.tp + s.fn),
            str(s.tp),
            str(s.fn),
            str(s.fp),
            _pct(s.recall),
            _pct(s.precision),
        )
    total = Score(
        *(sum(getattr(s, f) for s in quality.per_type.values()) for f in ("tp", "fn", "fp"))
    )
    table.add_row(
        "[bold]all[/bold]",
        *(str(n) for n in (total.tp + total.fn, total.tp, total.fn, total.fp)),
        _pct(total.recall),
        _pct(total.precision),
    )
    hits = sum(quality.lookalike_hits.values())
    table.caption = (
        f"look-alikes flagged: {hits} of {sum(quality.lookalikes.values())} "
        f"({len(quality.lookalikes)} kinds)"
    )
    return table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


# --- cost -------------------------------------------------------------------------------------

_WORDS = [
    *("the", "a", "model", "request", "answer", "service", "cache", "token", "user", "value"),
    *("data", "system", "file", "error", "result", "function", "returns", "list", "which"),
    *("should", "when", "because", "update", "config", "report", "number", "and", "with"),
    *("from", "into", "over", "under", "latency", "stream", "chunk", "field", "record", "table"),
]
_CODE = (
    "```python\ndef handler(event, context):\n    total = sum(x * 2 for x in event)\n"
    '    return {"status": 200, "total": total}\n```'
)


def prose(rng: random.Random, size: int, secrets: Sequence[str]) -> str:
    """A reply as a model writes one: sentences, a list, a code block, numbers, and now and
    then a sentence from the corpus carrying a secret or personal data."""
    parts: list[str] = []
    length = 0
    while length < size:
        roll = rng.random()
        if roll < 0.08 and secrets:
            part = rng.choice(secrets)
        elif roll < 0.2:
            part = _CODE
        elif roll < 0.3:
            part = "\n".join(
                f"- step {i}: {' '.join(rng.choices(_WORDS, k=6))}" for i in range(1, 4)
            )
        else:
            words = rng.choices(_WORDS, k=rng.randint(8, 20))
            if rng.random() < 0.4:
                words.insert(rng.randrange(len(words)), f"{rng.randint(1, 2025)}")
            if rng.random() < 0.2:
                words.insert(
                    rng.randrange(len(words)), f"{rng.randint(1, 99)}.{rng.randint(0, 9)}%"
                )
            part = " ".join(words).capitalize() + "."
        parts.append(part)
        length += len(part) + 1
    return " ".join(parts)[:size]


def chunked(text: str, rng: random.Random) -> list[str]:
    chunks, position = [], 0
    while position < len(text):
        size = rng.randint(20, 80)
        chunks.append(text[position : position + size])
        position += size
    return chunks


@dataclass(slots=True)
class StreamCost:
    chunk_ns: list[int] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    max_held: int = 0


def stream_cost(texts: Iterable[str], rng: random.Random) -> StreamCost:
    cost = StreamCost()
    for text in texts:
        redactor = StreamRedactor("redact")
        for chunk in chunked(text, rng):
            started = time.thread_time_ns()
            redactor.feed(chunk)
            cost.chunk_ns.append(time.thread_time_ns() - started)
            cost.held.append(redactor.held)
        redactor.flush()
        cost.max_held = max(cost.max_held, redactor.max_held)
    return cost


def event_cost(texts: Iterable[str], rng: random.Random) -> list[int]:
    """The same chunks as chat-completion SSE events through the observer (parse, rewrite)."""
    timings = []
    for text in texts:
        observer = RedactingObserver("redact")
        for chunk in chunked(text, rng):
            choice = {"index": 0, "delta": {"content": chunk}, "finish_reason": None}
            event = b"data: " + orjson.dumps({**_CHUNK, "choices": [choice]}) + b"\n\n"
            started = time.thread_time_ns()
            observer.on_event(event)
            timings.append(time.thread_time_ns() - started)
    return timings


_CHUNK = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}


def whole_cost(text: str, rounds: int) -> list[int]:
    timings = []
    for _ in range(rounds):
        started = time.thread_time_ns()
        redact(text, "redact")
        timings.append(time.thread_time_ns() - started)
    return timings


def _row(ns: Sequence[int], **extra: float) -> dict[str, float]:
    p50, p99 = np.percentile(np.array(ns) / 1000, [50, 99])
    return {"n": len(ns), "p50_us": round(float(p50), 1), "p99_us": round(float(p99), 1), **extra}


def measure_cost(
    rows: Sequence[dict[str, Any]], *, replies: int, rounds: int
) -> dict[str, dict[str, float]]:
    rng = random.Random(7)
    carriers = [row["text"] for row in rows if row["spans"]]
    dense_text = " ".join(row["text"] for row in rows)
    prose_replies = [prose(rng, rng.randint(400, 3000), carriers) for _ in range(replies)]
    result: dict[str, dict[str, float]] = {}
    for name, texts in (("prose", prose_replies), ("dense", [r["text"] for r in rows])):
        stream_cost(texts[:20], rng)  # warm-up
        cost = stream_cost(texts, rng)
        result[f"chunk, {name}"] = _row(
            cost.chunk_ns, held_mean=round(float(np.mean(cost.held)), 1), held_max=cost.max_held
        )
    result["chunk as SSE event, prose"] = _row(
        event_cost(prose_replies, rng), held_mean=0.0, held_max=0
    )
    for name, source in (("prose", prose(rng, 12_000, carriers)), ("dense", dense_text)):
        for size in (1_000, 10_000):
            text = source[:size]
            whole_cost(text, 5)
            result[f"whole {size // 1000} kB, {name}"] = _row(
                whole_cost(text, rounds if size == 1_000 else max(1, rounds // 5)),
                held_mean=0.0,
                held_max=0,
            )
    return result


def show(quality: Quality, cost: dict[str, dict[str, float]]) -> None:
    console = Console()
    console.print(quality_table(quality))
    columns = {
        "n": "n",
        "p50": "p50_us",
        "p99": "p99_us",
        "held mean (chars)": "held_mean",
        "held max": "held_max",
    }
    console.print(
        microseconds_table(
            "Redaction cost (µs; all types on, action redact)", "case", cost, columns
        )
    )


DOC_START, DOC_END = "<!-- output-eval:start -->", "<!-- output-eval:end -->"


def markdown(quality: Quality, cost: dict[str, dict[str, float]]) -> str:
    lines = [
        f"Quality on `{CORPUS_FILE}` ({quality.texts} texts; a finding counts only with the "
        "labelled type and exact offsets):",
        "",
        "| type | spans | found | missed | false positives | recall | precision |",
        "|---|---|---|---|---|---|---|",
    ]
    for type_, s in quality.per_type.items():
        lines.append(
            f"| {type_} | {s.tp + s.fn} | {s.tp} | {s.fn} | {s.fp} | {_pct(s.recall)} "
            f"| {_pct(s.precision)} |"
        )
    hits = sum(quality.lookalike_hits.values())
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(quality.lookalikes.items()))
    lines += [
        "",
        f"Look-alikes flagged: {hits} of {sum(quality.lookalikes.values())} ({kinds}).",
        "",
        "Cost (CPU µs of the calling thread, all types on, action `redact`):",
        "",
        "| case | n | p50 | p99 | held after a chunk, mean (chars) | held, max |",
        "|---|---|---|---|---|---|",
    ]
    for case, row in cost.items():
        plain = case.startswith("chunk,")
        held = (row["held_mean"], int(row["held_max"])) if plain else ("", "")
        lines.append(
            f"| {case} | {int(row['n'])} | {row['p50_us']} | {row['p99_us']} "
            f"| {held[0]} | {held[1]} |"
        )
    return "\n".join(lines)


def write_doc(path: Path, block: str) -> None:
    text = path.read_text(encoding="utf-8")
    start, end = text.find(DOC_START), text.find(DOC_END)
    if start < 0 or end < start:
        raise SystemExit(f"{path}: no {DOC_START} ... {DOC_END} block to replace")
    path.write_text(text[: start + len(DOC_START)] + "\n" + block + "\n" + text[end:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--replies", type=int, default=300, help="generated replies streamed")
    parser.add_argument("--rounds", type=int, default=300, help="timed calls per whole answer")
    parser.add_argument("--json", type=Path, default=Path("bench/results/redaction.json"))
    parser.add_argument("--doc", type=Path, help="markdown file whose output-eval block to rewrite")
    args = parser.parse_args()
    rows = load(args.corpus)
    quality = evaluate(rows)
    cost = measure_cost(rows, replies=args.replies, rounds=args.rounds)
    show(quality, cost)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    scores = {
        t: {**asdict(s), "recall": s.recall, "precision": s.precision}
        for t, s in quality.per_type.items()
    }
    summary = {
        "quality": scores,
        "lookalike_hits": dict(quality.lookalike_hits),
        "cost_us": cost,
    }
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    if args.doc is not None:
        write_doc(args.doc, markdown(quality, cost))


if __name__ == "__main__":
    main()
