"""``llm-sidecar redact FILE.jsonl``: the output checks, offline.

Reads ``{"id", "text"}`` lines (``-``: standard input) and writes one line per input::

    {"id": ..., "text": "<redacted text>", "spans": [{"start", "end", "type"}, ...]}

Spans are offsets in the original text, so a result can be checked against labels. Every type
is redacted (the offline tool shows everything the checks find). A line that cannot be read is
reported on stderr as ``FILE:LINE: problem`` and skipped; blank lines are skipped silently.
Exit status: 0 when every line was processed, 1 when some were skipped, 2 when the file could
not be read at all.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import orjson

from sidecar.security.jsonl import process_lines
from sidecar.security.secrets import Policy, redact


def redact_file(
    path: str | Path,
    out: TextIO,
    *,
    err: TextIO | None = None,
    actions: Policy | Mapping[str, str] | str = "redact",
) -> int:
    """Redact every line of ``path`` (``-``: standard input) into ``out``; the exit status of
    :func:`sidecar.security.jsonl.process_lines`."""
    policy = Policy.of(actions)
    return process_lines(
        path, lambda line: redact_line(line, policy), out, sys.stderr if err is None else err
    )


def redact_line(line: bytes | str, policy: Policy) -> str:
    """One input line to its output line; ValueError with a readable reason if it is not
    a JSON object with an ``id`` and a string ``text``."""
    try:
        record: Any = orjson.loads(line)
    except orjson.JSONDecodeError as exc:  # invalid UTF-8 included
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if "id" not in record:
        raise ValueError('missing "id"')
    text = record.get("text")
    if not isinstance(text, str):
        raise ValueError('"text" must be a string')
    result = redact(text, policy)
    spans = [{"start": s.start, "end": s.end, "type": s.type} for s in result.spans]
    return orjson.dumps({"id": record["id"], "text": result.text, "spans": spans}).decode()
