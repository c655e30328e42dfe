"""A small prompt-attack classifier: hashed character and word n-grams, logistic regression.

Inference is numpy only; the weights ship as ``injection_model.npz`` beside this module and are
made by ``scripts/train_injection.py`` (scikit-learn, a dev dependency) with this same
``features`` function, so training and serving cannot disagree on what a feature is.

Features, all from the lower-cased normalised text with digits folded to ``0`` (the shared
``tokens.Tokens``, so the text is lower-cased and split once for the rules and this layer):

    kind                 what                                  why
    char 4-grams         every window of the text              spelling-, language- and
                                                               tokenisation-agnostic
    word unigrams        runs of letters/digits                the vocabulary of attacks
    word bigrams         two consecutive words                 a little word order

Only 4-grams: measured leave-one-source-out, 3/4/5-grams together did no better (ROC AUC 0.63
against 0.62; detection of the combined detector 64.6 % against 64.7 % at the same false
positives) and cost two thirds more features to hash and look up on every request.

Each n-gram's polynomial hash (from ``Tokens.prefix``) is mixed by one multiplication and its
top ``bits`` bits index the weight table. A text's feature vector is its n-gram counts divided
by the square root of their number; the score is the logistic of its dot product with the
weights.

Long texts are scored by window: an attack hidden in one paragraph of a 10 kB document should
not be diluted by the rest, so the score is the maximum over overlapping windows of ``WINDOW``
characters. The windows cost little extra: every feature is credited to the position it starts
at, so one cumulative sum over positions gives every window's total and count by subtraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sidecar.security.tokens import POWERS, Tokens, tokenize

MODEL_FILE = "injection_model.npz"
LONG_TEXT = 2_048  # texts longer than this are scored by window
WINDOW = 512  # characters per window (most training texts are shorter)
STRIDE = 256
CHAR_NGRAMS = (4,)

_MIX = np.uint32(0x9E3779B1)  # Fibonacci hashing: the product's top bits mix all of the hash
_WORD_SALT = np.uint32(0x51ED270B)  # keeps the word "all" apart from the 3-gram "all"
_BIGRAM_SALT = np.uint32(0x2545F491)

U32 = npt.NDArray[np.uint32]
Index = npt.NDArray[np.intp]
F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Parts:
    """Every hashed feature index of a text in one array: the character n-grams of each size
    in ``CHAR_NGRAMS`` order (each by start position), then the words, then the word pairs
    (by the position of their first word). ``bounds[k]:bounds[k + 1]`` is the k-th kind."""

    index: U32
    bounds: tuple[int, ...]


def parts(tokens: Tokens, bits: int) -> Parts:
    """The features in one array, made in place: two operations per n-gram size and one
    multiply and shift for all (a dozen numpy calls whatever the text's length)."""
    size, prefix = tokens.size, tokens.prefix
    start, end = tokens.word_start, tokens.word_end
    sizes = [max(size - n + 1, 0) for n in CHAR_NGRAMS]
    sizes += [len(start), max(len(start) - 1, 0)]
    bounds = (0, *np.cumsum(sizes).tolist())
    index = np.empty(bounds[-1], dtype=np.uint32)
    for k, n in enumerate(CHAR_NGRAMS):
        span = index[bounds[k] : bounds[k + 1]]
        np.subtract(prefix[n:], prefix[:-n], out=span)
        span *= POWERS.inv[: len(span)]
    words = index[bounds[-3] : bounds[-2]]
    np.bitwise_xor(tokens.word_hash, _WORD_SALT, out=words)
    if len(start) > 1:
        pairs = index[bounds[-2] :]
        np.subtract(prefix[end[1:]], prefix[start[:-1]], out=pairs)
        pairs *= POWERS.inv[start[:-1]]
        pairs ^= _BIGRAM_SALT
    index *= _MIX
    index >>= np.uint32(32 - bits)
    return Parts(index, bounds)


@dataclass(frozen=True, slots=True)
class Features:
    """All hashed feature indices of a text (what training builds rows from)."""

    index: U32


def features(text: str, bits: int) -> Features:
    """The hashed n-gram features of an (already normalised) text."""
    return Features(parts(tokenize(text.lower()), bits).index)


@dataclass(frozen=True, slots=True)
class Classifier:
    weights: F32
    bias: float
    bits: int
    threshold: float  # the probability above which the classifier alone flags a text

    @classmethod
    def load(cls, path: str | Path | None = None) -> Classifier:
        """The shipped model, or the one at ``path``."""
        if path is None:
            with resources.as_file(resources.files(__package__) / MODEL_FILE) as shipped:
                return cls._read(shipped)
        return cls._read(Path(path))

    @classmethod
    def _read(cls, path: Path) -> Classifier:
        with np.load(path) as data:
            return cls(
                weights=data["weights"].astype(np.float32),
                bias=float(data["bias"]),
                bits=int(data["bits"]),
                threshold=float(data["threshold"]),
            )

    def score(self, text: str) -> float:
        """Probability that the text is an attack: the most suspicious window's, if long."""
        return self.score_tokens(tokenize(text.lower()))

    def score_tokens(self, tokens: Tokens) -> float:
        found = parts(tokens, self.bits)
        contributions = self.weights[found.index]
        count = len(contributions)
        if count == 0:
            return _logistic(self.bias)
        if tokens.size <= LONG_TEXT:
            return _logistic(float(contributions.sum()) / np.sqrt(count) + self.bias)
        return self._windowed(tokens, contributions, found.bounds)

    def _windowed(self, tokens: Tokens, contributions: F32, bounds: tuple[int, ...]) -> float:
        """The highest window logit. Every feature belongs to the position it starts at (a
        character n-gram where its first character is, a word or a pair of words where its
        first word starts); positions are summed in blocks of ``STRIDE`` (a reshape and a sum
        for the n-grams, a ``bincount`` for the words) and a window is ``WINDOW // STRIDE``
        neighbouring blocks. A cumulative sum over 10 kB of positions measured 5x slower."""
        blocks = -(-tokens.size // STRIDE)
        first = np.arange(blocks) * STRIDE
        weight = np.zeros(blocks)
        count = np.zeros(blocks)
        padded = np.zeros(blocks * STRIDE, dtype=np.float32)
        for k in range(len(CHAR_NGRAMS)):
            chars = contributions[bounds[k] : bounds[k + 1]]
            padded[: len(chars)] = chars
            padded[len(chars) :] = 0.0
            weight += padded.reshape(blocks, STRIDE).sum(axis=1, dtype=np.float64)
            count += np.clip(len(chars) - first, 0, STRIDE)
        block = tokens.word_start // STRIDE
        pairs = contributions[bounds[-2] :]
        weight += np.bincount(block, contributions[bounds[-3] : bounds[-2]], minlength=blocks)
        weight += np.bincount(block[: len(pairs)], pairs, minlength=blocks)
        count += np.bincount(block, minlength=blocks) + np.bincount(
            block[: len(pairs)], minlength=blocks
        )
        weight, count = _windows(weight), _windows(count)
        logits = weight / np.sqrt(np.maximum(count, 1.0))
        return _logistic(float(logits.max()) + self.bias)


def _windows(blocks: F64) -> F64:
    """Sums of ``WINDOW // STRIDE`` neighbouring blocks (all of them, if fewer)."""
    per = WINDOW // STRIDE
    if len(blocks) <= per:
        return np.array([blocks.sum()])
    out = blocks[: len(blocks) - per + 1].copy()
    for i in range(1, per):
        out += blocks[i : len(blocks) - per + 1 + i]
    return out


def _logistic(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))
