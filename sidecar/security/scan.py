"""Offline prompt scanning: ``llm-sidecar scan FILE.jsonl``.

Reads ``{"id", "text"}`` lines (``-``: standard input) and writes one ``{"id", "flagged",
"score", "techniques"}`` line per input, in order, so users can try prompts and thresholds and
we can evaluate the detector on any labelled file. A bad line (not JSON, not an object, ``text``
not a string) is reported on stderr with its line number and skipped; the scan goes on (see
:mod:`sidecar.security.jsonl` for the exit status).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import orjson

from sidecar.security.injection import InjectionDetector
from sidecar.security.jsonl import process_lines


def scan_file(
    path: str | Path,
    out: TextIO,
    detector: InjectionDetector | None = None,
    err: TextIO | None = None,
) -> int:
    """Scan every line of ``path`` (``-``: standard input) into ``out``; the exit status of
    :func:`sidecar.security.jsonl.process_lines` (0 all scanned, 1 some skipped, 2 unreadable)."""
    scanner = detector or InjectionDetector.load()
    return process_lines(
        path, lambda line: scan_line(line, scanner), out, sys.stderr if err is None else err
    )


def scan_line(line: bytes, detector: InjectionDetector) -> str:
    """One input line to its result line; ValueError saying what is wrong with the line."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(row, dict):
        raise ValueError("expected a JSON object with 'id' and 'text'")
    text = row.get("text")
    if not isinstance(text, str):
        raise ValueError("'text' is missing or not a string")
    verdict = detector.scan_text(text)
    result = {
        "id": row.get("id"),
        "flagged": verdict.flagged,
        "score": verdict.score,
        "techniques": list(verdict.techniques),
    }
    return orjson.dumps(result).decode()
