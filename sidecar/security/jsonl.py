"""The input of the offline commands (``scan``, ``redact``): JSONL lines from a file, or from
standard input when the file is ``-`` (``cat prompts.jsonl | llm-sidecar scan -``).

Both commands share its contract: a line that cannot be used is reported on stderr as
``FILE:LINE: problem`` and skipped, blank lines silently; the exit status is 0 when every line
was processed, 1 when some were skipped, 2 when the input could not be read at all.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TextIO

STDIN = "-"

# One input line to its output line, or ValueError saying what is wrong with it.
LineHandler = Callable[[bytes], str]


def process_lines(path: str | Path, handle: LineHandler, out: TextIO, err: TextIO) -> int:
    """Apply ``handle`` to every non-blank line of ``path``, writing results to ``out``."""
    try:
        source = _open(path)
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror or exc}", file=err)
        return 2
    failed = 0
    with source:
        for number, line in enumerate(source, start=1):
            if not line.strip():
                continue
            try:
                result = handle(line)
            except ValueError as exc:
                print(f"{path}:{number}: {exc}", file=err)
                failed += 1
                continue
            out.write(result + "\n")  # a closed pipe here is the caller's (BrokenPipeError)
    return 1 if failed else 0


def _open(path: str | Path) -> BinaryIO:
    if str(path) == STDIN:
        return open(sys.stdin.fileno(), "rb", closefd=False)  # read it, leave it open
    return Path(path).open("rb")
