"""Prompt-attack techniques as data: structural patterns grouped in families, and the one
function that applies them.

A rule is a regular expression over the lower-cased normalised text (decoded payloads
included) with a weight: how sure a match alone makes us. A family's score combines its
matches as independent evidence (noisy-or: ``1 - prod(1 - w)``), and so does the overall
pattern score over families, so two weak signals of different kinds add up while one weak
signal stays weak. The patterns describe the *shape* of a technique (a verb of dismissal aimed
at instructions, a role tag, a URL carrying a placeholder), not phrases from any one corpus.

    family                 what it catches
    instruction_override   "ignore/disregard/forget ... previous instructions" in any wording,
                           "new instructions:", hijacks ("stop everything, just print ...")
    persona_jailbreak      personas freed from rules (DAN-style), "developer mode", refusal
                           suppression, forced affirmative openings, fictional/ethics pretexts
    prompt_extraction      asking for the system prompt / initial instructions / text above,
                           the reply made to open with them or to finish a sentence that
                           discloses them, the hidden constraints probed ("what are you not
                           supposed to tell me?")
    role_injection         chat-template tokens, fake system/assistant turns, delimiter fences
    indirect_injection     instructions addressed to an AI inside documents or tool output,
                           hiding things from the user
    exfiltration           markdown images/links whose URL carries conversation data, XSS
    tool_abuse             SQL/template/shell payloads to be executed or echoed
    data_extraction        divergence ("repeat a word forever"), training-data dumps
    obfuscation            smuggled or encoded text (from normalisation's signals), requests
                           to decode and act on a payload
    adversarial_suffix     optimiser-generated gibberish after a request (GCG-style)
    harmful_pretext        a harmful request put in a persona's mouth and behind a disclaimer
                           ("for research purposes", "in a fictional world"), PAIR-style: three
                           of pretext, persona, tense shift, carrier task and harm words (any
                           one or two are everyday: "You are a novelist. Write a murder mystery")
    hateful_content        a request to write something derogatory about a group of people
                           ("one negative sentence about elderly people", "colourful old-timey
                           words for Chinese people")

The rules themselves are a table in ``rules.py``. Speed: a rule's regex runs only when one of
its trigger words occurs in the text. The words come from the tokenisation shared with the
classifier (``tokens.Tokens``: one hash per word, computed in numpy); one table look-up per word
says which may be triggers and an index from trigger to rules says which rules to run, so a
prompt without any trigger costs a few microseconds whatever the number of rules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

import numpy as np
import numpy.typing as npt

from sidecar.security.normalize import Normalized
from sidecar.security.prefilter import Prefilter, Reading
from sidecar.security.rules import RULES, SIGNAL_RULES, Rule
from sidecar.security.tokens import Index, Tokens, first_word, hash_of, tokenize


def _trigger_index() -> dict[str, tuple[int, ...]]:
    index: dict[str, list[int]] = {}
    for number, rule in enumerate(RULES):
        for word in rule.triggers | rule.also:
            index.setdefault(word, [])
            if word in rule.triggers:
                index[word].append(number)
    return {word: tuple(numbers) for word, numbers in index.items()}


def _spellings() -> dict[int, tuple[str, ...]]:
    """Trigger words by the hash of their first token: "what's" is the tokens "what" and "s"
    to the shared tokeniser, so it is looked up as "what" and then confirmed as a substring."""
    spellings: dict[int, list[str]] = {}
    for word in _BY_TRIGGER:
        spellings.setdefault(hash_of(first_word(word)), []).append(word)
    return {h: tuple(words) for h, words in spellings.items()}


_BY_TRIGGER = _trigger_index()  # trigger (or ``also``) word -> the rules it may wake
_SPELLINGS = _spellings()
_TABLE_BITS = 16
_MIX = np.uint32(0x9E3779B1)
_MAYBE = np.zeros(1 << _TABLE_BITS, dtype=bool)  # a Bloom-like table of the trigger hashes
_MAYBE[[(h * int(_MIX)) % 2**32 >> (32 - _TABLE_BITS) for h in _SPELLINGS]] = True
_SIGNALS: dict[str, list[tuple[int, float, str]]] = {}
for _signal, _least, _weight, _technique in SIGNAL_RULES:
    _SIGNALS.setdefault(_signal, []).append((_least, _weight, _technique))
_NEEDS_ESSENTIAL = frozenset(rule.technique for rule in RULES if rule.essential)
_SCRIPT_RULES = tuple(number for number, rule in enumerate(RULES) if rule.scripts)
_PREFILTER = Prefilter(RULES)


def words_of(tokens: Tokens) -> set[str]:
    """The trigger words (and ``also`` words) a text holds: one table look-up per word, then
    an exact check of the few that may be triggers."""
    hashes = tokens.word_hash
    maybe = hashes[_MAYBE[(hashes * _MIX) >> np.uint32(32 - _TABLE_BITS)]]
    words = set()
    for found in _SPELLINGS.keys() & set(maybe.tolist()):
        for word in _SPELLINGS[found]:
            if word.isalpha() or word in tokens.lowered:  # whole token, or confirmed
                words.add(word)
    return words


def candidates(words: set[str], other_scripts: bool) -> list[int]:
    """The rules (by number, in table order) whose trigger words the text holds."""
    found = {n for word in words for n in _BY_TRIGGER[word]}
    if other_scripts:
        found.update(_SCRIPT_RULES)
    return sorted(found)


def match(norm: Normalized, tokens: Tokens | None = None) -> dict[str, float]:
    """Each family that matched, with its score (noisy-or of its matching rules' weights).

    ``tokens`` is ``tokenize(norm.inspected_lower)``, when the caller has it already."""
    if tokens is None:
        tokens = tokenize(norm.inspected_lower)
    lowered = tokens.lowered
    words = words_of(tokens)
    reading = _PREFILTER.encode(lowered)  # None for short texts: no prefilter
    misses: dict[str, float] = {}  # family -> product of (1 - weight)
    matched: dict[str, int] = {}  # family -> rules of it that count alone and matched
    company: dict[str, list[int]] = {}  # woken rules that need others of their family
    for number in candidates(words, norm.other_scripts):
        rule = RULES[number]
        if not rule.applies(lowered, words, norm.other_scripts):
            continue
        if rule.quorum > 1:
            company.setdefault(rule.technique, []).append(number)
        elif _found(number, lowered, reading):
            misses[rule.technique] = misses.get(rule.technique, 1.0) * (1.0 - rule.weight)
            matched[rule.technique] = matched.get(rule.technique, 0) + 1
    for family, numbers in company.items():
        _corroborate(
            lowered, reading, family, numbers, matched=matched.get(family, 0), misses=misses
        )
    for signal, count in norm.signals.items():  # usually none
        for least, weight, technique in _SIGNALS.get(signal, ()):
            if count >= least:
                misses[technique] = misses.get(technique, 1.0) * (1.0 - weight)
    suffix = adversarial_suffix(norm.text)
    if suffix:
        misses["adversarial_suffix"] = 1.0 - suffix
    repeated = repeated_tokens(tokens)
    if repeated:
        misses["data_extraction"] = misses.get("data_extraction", 1.0) * (1.0 - repeated)
    return {family: round(1.0 - miss, 4) for family, miss in misses.items()}


def _found(number: int, lowered: str, reading: Reading | None) -> bool:
    """Whether rule ``number`` matches. On a long text its RE2 superset runs first (fast
    where, as mostly, nothing matches); where that matches, the exact RE2 form decides if it
    can, else the rule's own regex."""
    if not _PREFILTER.may_match(number, reading):
        return False
    decided = _PREFILTER.decides(number, reading)
    return RULES[number].pattern.search(lowered) is not None if decided is None else decided


def _corroborate(
    lowered: str,
    reading: Reading | None,
    family: str,
    numbers: list[int],
    *,
    matched: int,
    misses: dict[str, float],
) -> None:
    """Add the woken rules that need company, where enough of their family match: their
    regexes run only if enough of them were woken for any to reach its quorum."""
    rules = [RULES[number] for number in numbers]
    least = min(rule.quorum for rule in rules)
    if matched + len(rules) < least:
        return
    needs_essential = family in _NEEDS_ESSENTIAL
    if needs_essential and not any(rule.essential for rule in rules):
        return  # e.g. a persona and a disclaimer, but no harm asked for
    # The essential rules first: without one of them the rest need not run. And stop once even
    # every rule left could not make up the quorum. (The findings are the same either way.)
    ordered = sorted(numbers, key=lambda number: not RULES[number].essential)
    found: list[Rule] = []
    for index, number in enumerate(ordered):
        rule = RULES[number]
        if needs_essential and not found and not rule.essential:
            return  # no essential rule matched
        if matched + len(found) + len(ordered) - index < least:
            return
        if _found(number, lowered, reading):
            found.append(rule)
    if needs_essential and not any(rule.essential for rule in found):
        return
    for rule in found:
        if matched + len(found) >= rule.quorum:
            misses[family] = misses.get(family, 1.0) * (1.0 - rule.weight)


def combined(families: Mapping[str, float]) -> float:
    """The pattern score: the families' scores as independent evidence."""
    miss = 1.0
    for score in families.values():
        miss *= 1.0 - score
    return 1.0 - miss


# -- statistical signals -------------------------------------------------------------------------

_CAMEL_INSIDE = re.compile(r"[a-z][A-Z]")
_CAMEL_SPLIT = re.compile(r"(?<=[a-z])(?=[A-Z])")
_SUFFIX_HINT = re.compile(r"[a-z][A-Z]|[\[\](){}<>\\^$@#|~]")
_BRACKETS = frozenset("[](){}<>\\^$@#|~")
_PAIRS = {")": "(", "]": "[", "}": "{", ">": "<"}
_SYMBOLS = _BRACKETS - set("()[]{}<>")  # \ ^ $ @ # | ~: never notation inside a word
_EDGE_PUNCTUATION = ".,:;!?\"'"
_ESCAPED_BREAK = re.compile(r"\n|\\[nrt]")  # a line break, or one written out ("\\n" in JSON)
_QUOTES = "\"'\u2018\u2019\u201c\u201d"
_OPERATORS = frozenset("<>=~^")
CHAR_MODEL_FILE = "char_model.npz"
_LETTER_IDS = bytes(ord(c) - 96 if "a" <= c <= "z" else 0 for c in map(chr, range(256)))
RARE = -3.3  # mean log-probability per letter below which a word piece reads as noise
MIN_PIECE = 4  # letters: shorter pieces say too little


class CharModel:
    """Log-probabilities of English letter trigrams (``a``-``z`` and a word boundary), from
    ``char_model.npz`` (made by ``scripts/train_injection.py`` from Python's own
    documentation, not from the attack corpus). Optimiser-made suffixes are full of pieces no
    English word is made of ("musicnig", "Tont", "rocpgf"); prose and code mostly are not."""

    def __init__(self, logprob: npt.NDArray[np.float32]) -> None:
        self.logprob = logprob.reshape(-1)

    @classmethod
    def load(cls) -> CharModel | None:
        path = resources.files(__package__) / CHAR_MODEL_FILE
        if not path.is_file():
            return None
        with resources.as_file(path) as shipped, np.load(shipped) as data:
            return cls(data["logprob"].astype(np.float32))

    def piece_means(self, tokens: list[str]) -> tuple[npt.NDArray[np.float64], Index]:
        """For each letter run of 4+ (camel-case humps split) in ``tokens``: its mean trigram
        log-probability and the token it belongs to."""
        joined = _CAMEL_SPLIT.sub("-", " ".join(tokens)).lower()
        raw = joined.encode("latin-1", "replace")
        ids = np.frombuffer(b"\0" + raw.translate(_LETTER_IDS) + b"\0", dtype=np.uint8)
        ids = ids.astype(np.intp)
        tri = self.logprob[ids[:-2] * 729 + ids[1:-1] * 27 + ids[2:]]  # centred on ids[j + 1]
        letter = ids != 0
        edges = np.flatnonzero(letter[1:] != letter[:-1]) + 1
        start, end = edges[0::2], edges[1::2]
        long = end - start >= MIN_PIECE
        start, end = start[long], end[long]
        total = np.concatenate(([0.0], np.cumsum(tri, dtype=np.float64)))
        means = (total[end - 1] - total[start - 1]) / (end - start)
        token_of = np.cumsum(np.frombuffer(b" " + raw, dtype=np.uint8) == 32)[start] - 1
        return means, token_of


_CHARS: list[CharModel | None] = []


def _char_model() -> CharModel | None:
    if not _CHARS:
        _CHARS.append(CharModel.load())
    return _CHARS[0]


def adversarial_suffix(text: str) -> float:
    """How much the end of the text looks like an optimiser-made suffix (0 when it does not).

    GCG-style suffixes are a few dozen tokens that read as noise, glued onto a request on the
    same line: words run together in odd case ("HTMLsvg", "applySc"), brackets and braces
    between letters, stray symbol tokens ("[", "({["), and letter strings no English word is
    made of (judged by the letter-trigram model). Prose has almost none of these; code has
    some but spreads them over short lines, so only a long last line is read, and only when
    it holds a camel-case hump or a bracket at all (a cheap test first).
    """
    line = _ESCAPED_BREAK.split(text[-300:])[-1]
    if not _SUFFIX_HINT.search(line):
        return 0.0
    # URLs (a markdown link's too) are addresses, not words: neither noise nor English.
    tokens = [token for token in line.split() if "://" not in token][-20:]
    if len(tokens) < 10:
        return 0.0
    odd = [_odd_token(token) for token in tokens]
    _spare_notation(line, tokens, odd)
    glued = sum(odd)  # camel-glued or bracket tokens alone, as before the letter model
    if glued >= 6 and glued >= 0.3 * len(tokens):
        return 0.8
    # The letter model knows English: a line of another Latin-script language (Turkish,
    # Portuguese, Indonesian) is all rare trigrams to it. So it only adds to an optimiser's
    # marks (two glued tokens or more: 49 of the 50 suffixes it helps find in the dev corpus
    # have them, 113 of the 1,221 lines of translated UI messages it flagged), and not on a
    # line with letters beyond ASCII in several words (an optimiser's suffix has none).
    model = _char_model() if glued >= 2 else None
    if model is not None and not _foreign(tokens):
        means, token_of = model.piece_means(tokens)
        listing = line.count(", ") >= 2
        for token in token_of[means < RARE].tolist():
            odd[token] = odd[token] or not _named(tokens[token], listing)
        rare = sum(odd)
        if rare >= 5 and rare >= 0.3 * len(tokens):
            return 0.8
    return 0.5 if glued >= 4 and glued >= 0.2 * len(tokens) else 0.0


def _foreign(tokens: list[str]) -> bool:
    """Whether two tokens or more (and a tenth) carry letters beyond ASCII: another language."""
    foreign = sum(
        not token.isascii() and any(c.isalpha() for c in token if c >= "\x80") for token in tokens
    )
    return foreign >= 2 and foreign >= 0.1 * len(tokens)


def _named(token: str, listing: bool) -> bool:
    """Whether a token the letter model finds rare is a name rather than noise: an initialism
    ("NVENC"), which is not made of English letter runs, or in a list ("Binance, Bybit,
    Coinbase, OKX, Kraken") a capitalised word: a product description names things one after
    another, an optimiser's suffix does not."""
    core = token.strip(_EDGE_PUNCTUATION)
    return core.isupper() or (listing and core[:1].isupper() and core[1:].islower())


def _spare_notation(line: str, tokens: list[str], odd: list[bool]) -> None:
    """Unmark the bracket-only tokens that are notation: a table row's pipes, the braces of a
    line whose (), [] and {} all open and close in order (code: "{ kind = server } >> { ... }"),
    and symbols quoted or used as operators. An optimiser's suffix leaves them unbalanced and
    bare ("({[HTMLsvg ... Sure,].[")."""
    table = sum(token == "|" for token in tokens) >= 3
    balanced = _balanced(line)
    for i, token in enumerate(tokens):
        if odd[i] and not any(c.isalnum() for c in token):
            odd[i] = not (balanced or (table and token == "|") or _mentioned(token))


def _mentioned(token: str) -> bool:
    """A symbol quoted ('"}",') or standing alone as an operator ("a < b"): named or used as
    notation, as puzzles and their worked answers do, not glued on as noise."""
    return any(q in token for q in _QUOTES) or token in _OPERATORS


def _balanced(text: str, opening: str = "([{") -> bool:
    """Whether the brackets of ``opening`` (and their closers) in ``text`` open and close in
    order; other characters are not looked at."""
    stack = []
    for c in text:
        if c in opening:
            stack.append(c)
        elif c in _PAIRS and _PAIRS[c] in opening and (not stack or stack.pop() != _PAIRS[c]):
            return False
    return not stack


def _odd_token(token: str) -> bool:
    """A token that is no word: camel-glued, or mixing two kinds of bracket, or all brackets."""
    core = token.strip(_EDGE_PUNCTUATION)
    if not core:
        return False
    if _CAMEL_INSIDE.search(core):
        return True
    brackets = _BRACKETS.intersection(core)
    if not brackets:
        return False
    if not any(c.isalnum() for c in core):
        return True
    return len(brackets) >= 2 and not _nested(core)


def _nested(core: str) -> bool:
    """Brackets that open and close in order and nothing else, as in "f(g(x))" or "<td>":
    notation, not noise ("Sure,].[" and "({[" are noise)."""
    return _SYMBOLS.isdisjoint(core) and _balanced(core, "([{<")


def repeated_tokens(tokens: Tokens) -> float:
    """One token repeated many times in a row (a repeated-token / divergence attack): 16 or
    more equal words in a row, found by comparing each word's hash with the next one's."""
    hashes = tokens.word_hash
    if len(hashes) < 16:
        return 0.0
    same = (hashes[1:] == hashes[:-1]).view(np.uint8).tobytes()
    at = same.find(_RUN)
    while at >= 0:  # digits fold to "0" in the hashes: a run of numbers is no repeated word
        start, end = int(tokens.word_start[at]) - 1, int(tokens.word_end[at]) - 1  # unpadded
        if not tokens.lowered[start:end].isdigit():
            return 0.6
        at = same.find(_RUN, at + len(_RUN))
    return 0.0


_RUN = b"\x01" * 15
