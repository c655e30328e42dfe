"""Offline prompt scanning: ``llm-sidecar scan FILE.jsonl``.

Reads ``{"id", "text"}`` lines and writes one ``{"id", "flagged", "score", "techniques"}`` line
per input, in order, so users can try prompts and thresholds and we can evaluate the detector
on any labelled file. A bad line (not JSON, not an object, ``text`` not a string) is reported on
stderr with its line number and skipped; the scan goes on.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO

import orjson

from sidecar.security.injection import InjectionDetector


def scan_file(
    path: str | Path,
    out: TextIO,
    detector: InjectionDetector | None = None,
    err: TextIO | None = None,
) -> int:
    """Scan every line of ``path`` into ``out``; the number of bad lines (0 = all scanned)."""
    detector = detector or InjectionDetector.load()
    err = err or sys.stderr
    bad = 0
    with Path(path).open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            problem = _scan_line(line, detector, out)
            if problem:
                bad += 1
                print(f"{path}:{number}: {problem}", file=err)
    return bad


def _scan_line(line: bytes, detector: InjectionDetector, out: TextIO) -> str | None:
    """Write the result for one line, or say what is wrong with it."""
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(row, dict):
        return "expected a JSON object with 'id' and 'text'"
    text = row.get("text")
    if not isinstance(text, str):
        return "'text' is missing or not a string"
    verdict = detector.scan_text(text)
    result = {
        "id": row.get("id"),
        "flagged": verdict.flagged,
        "score": verdict.score,
        "techniques": list(verdict.techniques),
    }
    out.write(orjson.dumps(result).decode() + "\n")
    return None
