"""One tokenisation of the normalised text, shared by the pattern rules and the classifier.

Before this, each layer lower-cased and split the text itself; on a 10 kB prompt that was a
third of the stage's time. Now the detector lower-cases once and makes one ``Tokens`` from it,
in a handful of numpy operations whatever the length:

    codes       the code points as hashed: digits fold to "0", whitespace to a space, padded
                with a space on each side
    prefix      prefix sums of ``codes[i] * P^i`` modulo 2^32, so the polynomial hash of any
                span ``[a, b)`` is ``(prefix[b] - prefix[a]) * P^-a``: every character n-gram
                and every word hashes in O(1) from two slices (P odd, hence invertible)
    words       runs of letters and digits (any script; punctuation splits), as start/end
                offsets and their hashes

The rules use the word hashes to know which trigger words a text holds (``hash_of`` gives a
trigger's hash, computed the same way), the classifier uses them all as features.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

U32 = npt.NDArray[np.uint32]
Index = npt.NDArray[np.intp]

_P = np.uint32(0x01000193)  # FNV-32 prime: odd, so invertible modulo 2^32
_P_INV = np.uint32(pow(int(_P), -1, 2**32))


def _powers(base: np.uint32, count: int) -> U32:
    powers = np.full(count, base, dtype=np.uint32)
    powers[0] = 1
    return np.cumprod(powers, dtype=np.uint32)  # wraps modulo 2^32, as intended


class _PowerTable:
    """P^i and P^-i for i below a size that grows (rarely) to the longest text seen."""

    def __init__(self, size: int) -> None:
        self.pow = _powers(_P, size)
        self.inv = _powers(_P_INV, size)

    def ensure(self, size: int) -> None:
        if size > len(self.pow):
            grown = max(size, 2 * len(self.pow))
            self.pow = _powers(_P, grown)
            self.inv = _powers(_P_INV, grown)


POWERS = _PowerTable(1 << 16)

# Code points as hashed. ASCII: digits fold to "0", whitespace to a space. Word characters:
# ASCII letters and digits, and every letter or digit of the BMP beyond ASCII (so "“ignore”"
# holds the word "ignore", while "résumé" stays one word).
_FOLD = np.arange(0x10000, dtype=np.uint32)
_FOLD[ord("0") : ord("9") + 1] = ord("0")
_FOLD[[9, 10, 11, 12, 13]] = ord(" ")
_WORD_CHAR = np.array([chr(c).isalnum() for c in range(0x10000)], dtype=bool)
_ASCII_FOLD = _FOLD[:128].copy()
_ASCII_WORD = _WORD_CHAR[:128].copy()


@dataclass(frozen=True, slots=True)
class Tokens:
    lowered: str  # the text the rules read
    codes: U32  # padded: codes[0] and codes[-1] are spaces
    prefix: U32  # len(codes) + 1
    word_start: Index  # offsets into codes
    word_end: Index
    word_hash: U32  # unmixed polynomial hash of each word

    @property
    def size(self) -> int:
        return len(self.codes)

    def span_hashes(self, n: int) -> U32:
        """The hash of every span of ``n`` code points, by start position."""
        count = self.size - n + 1
        if count <= 0:
            return np.zeros(0, dtype=np.uint32)
        return (self.prefix[n:] - self.prefix[:-n]) * POWERS.inv[:count]


def tokenize(lowered: str) -> Tokens:
    """Tokens of an already lower-cased text."""
    padded = f" {lowered} "
    if padded.isascii():
        raw = np.frombuffer(padded.encode("ascii"), dtype=np.uint8)
        codes, word = _ASCII_FOLD[raw], _ASCII_WORD[raw]
    else:
        wide = np.frombuffer(padded.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        if int(wide.max()) <= 0xFFFF:
            codes, word = _FOLD[wide], _WORD_CHAR[wide]
        else:  # beyond the BMP (emoji, rare scripts): as they are, and word characters
            bmp = np.minimum(wide, 0xFFFF)
            codes = np.where(wide > 0xFFFF, wide, _FOLD[bmp])
            word = _WORD_CHAR[bmp] | (wide > 0xFFFF)
    size = len(codes)
    POWERS.ensure(size + 1)
    prefix = np.zeros(size + 1, dtype=np.uint32)
    # dtype given: numpy would otherwise accumulate in 64 bits (2.5x slower) and cast back
    np.cumsum(codes * POWERS.pow[:size], dtype=np.uint32, out=prefix[1:])
    edges = np.flatnonzero(word[1:] != word[:-1]) + 1  # padding: starts and ends alternate
    word_start, word_end = edges[0::2], edges[1::2]
    word_hash = (prefix[word_end] - prefix[word_start]) * POWERS.inv[word_start]
    return Tokens(lowered, codes, prefix, word_start, word_end, word_hash)


def hash_of(word: str) -> int:
    """The ``word_hash`` a text holding ``word`` (one token, lower case) would have for it."""
    tokens = tokenize(word)
    if len(tokens.word_hash) != 1:
        raise ValueError(f"not a single word: {word!r}")
    return int(tokens.word_hash[0])


def first_word(text: str) -> str:
    """The first word of ``text`` as ``tokenize`` splits it ("what's" -> "what")."""
    tokens = tokenize(text)
    if not len(tokens.word_start):
        raise ValueError(f"no word in {text!r}")
    return f" {text} "[int(tokens.word_start[0]) : int(tokens.word_end[0])]
