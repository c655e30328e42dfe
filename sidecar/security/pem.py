"""Where a PEM private-key block ends, read line by line so a stream can follow it too.

A block is its header (``-----BEGIN ... PRIVATE KEY-----``), the body, and usually the footer.
Models also print blocks cut short (no footer) or inside a string with ``\\n`` escapes, so the
body is read as lines until one of these::

    line                                    the block
    contains -----END ...-----              ends after the footer
    base64 (A-Z a-z 0-9 + / = and \\)        goes on
    "Proc-Type: 4,ENCRYPTED" before data    goes on (encrypted PEM headers)
    one blank line                          goes on; a second one ends it at the last data
                                            (the header's own line end is none)
    anything else                           ends at the last data (or at the line's leading
                                            base64 run, if it is at least 16 characters)

A header with less than :data:`MIN_MATERIAL` base64 characters after it is prose about PEM
("the file begins with -----BEGIN PRIVATE KEY-----"), not a key. The reader is fed text in
pieces of any size and reaches the same end whatever the pieces: the whole-text scan and the
stream redactor share it.
"""

from __future__ import annotations

import re

HEADER = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----")
_FOOTER = re.compile(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")
_BASE64 = re.compile(r"[A-Za-z0-9+/=\\]+")
_BASE64_PREFIX = re.compile(r"[A-Za-z0-9+/=\\]+")
_HEADER_LINE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,14}: .*")  # shorter than MIN_MATERIAL

MIN_MATERIAL = 16  # base64 characters after the header before it counts as a key
MAX_BODY = 65_536  # a body longer than this ends there (the largest keys are ~5 kB)


class PemBody:
    """Reads a body after its header; offsets are relative to the body's first character."""

    __slots__ = (
        "_blank",
        "_data",
        "_line",
        "_line_start",
        "_run",
        "committed",
        "end",
        "material",
        "seen",
    )

    def __init__(self) -> None:
        self.seen = 0  # characters fed so far
        self.committed = 0  # the block reaches at least here
        self.material = 0  # base64 characters in accepted lines
        self.end: int | None = None  # where the block ends, once known
        self._line: list[str] = []  # the line being read
        self._line_start = 0
        self._data = False  # a base64 line was read (no more PEM header lines after it)
        self._blank = 0  # consecutive blank lines
        self._run = 0  # base64 run the line being read starts with, once it is MIN_MATERIAL long

    def feed(self, text: str) -> int | None:
        """Read more of the body; the block's end once known (it may lie in earlier text)."""
        if self.end is not None:
            return self.end
        room = MAX_BODY - self.seen
        if len(text) >= room:  # the body is read up to MAX_BODY characters, however it arrives
            self._read(text[:room])
            return self.finish()
        self._read(text)
        return self.end

    def _read(self, text: str) -> None:
        position = 0
        while self.end is None and position < len(text):
            newline = text.find("\n", position)
            piece = text[position:] if newline < 0 else text[position:newline]
            self._line.append(piece)
            self.seen += len(piece)
            if newline < 0:
                self._partial()
                break
            self._complete("".join(self._line))
            self.seen += 1
            self._line, self._line_start = [], self.seen
            position = newline + 1

    def finish(self) -> int:
        """The text ended: the line being read is the last."""
        if self.end is None:
            self._complete("".join(self._line))
        if self.end is None:
            self.end = self.committed
        return self.end

    @property
    def is_key(self) -> bool:
        """Enough key material was read (for a block that has ended)."""
        return self.material >= MIN_MATERIAL

    @property
    def certain_key(self) -> bool:
        """The block will be a key however it goes on (the line being read counts)."""
        return self.material + self._run >= MIN_MATERIAL

    def _partial(self) -> None:
        """A line still arriving: a footer in it settles the end; a long base64 run commits."""
        line = "".join(self._line)
        if (footer := _FOOTER.search(line)) is not None:
            self._complete(line[: footer.end()])
            return
        run = _base64_run(line)
        if run >= MIN_MATERIAL:
            # Whatever the line turns out to be, the block reaches at least this far.
            self.committed = max(self.committed, self._line_start + run)
            self._run = run

    def _complete(self, line: str) -> None:
        start, self._run = self._line_start, 0
        content = line.removesuffix("\r")
        if "-----END" in content and (footer := _FOOTER.search(content)) is not None:
            self.material += _base64_run(content)
            self.end = start + footer.end()
        elif not content.strip():
            # The header's own line ending is no blank line: an OpenPGP armor goes header,
            # blank line, data.
            if start > 0:
                self._blank += 1
            if self._blank > 1:
                self.end = self.committed
        elif _BASE64.fullmatch(content):
            self._blank = 0
            self._data = True
            self.material += len(content)
            self.committed = start + len(content)
        elif not self._data and _HEADER_LINE.fullmatch(content):
            self._blank = 0
            self.committed = start + len(content)
        else:
            run = _base64_run(content)
            if run >= MIN_MATERIAL:
                self.material += run
                self.committed = start + run
            self.end = self.committed


def _base64_run(line: str) -> int:
    """Length of the base64 run a line starts with."""
    run = _BASE64_PREFIX.match(line)
    return 0 if run is None else run.end()
