"""A one-pass prefilter for the technique rules on long texts, so a rule's regex runs only
where it could match.

Python's ``re`` tries a pattern at every position of a text: 50-200 ns a character for each
rule, so a 10 kB document that wakes a hundred rules (most varied prose does) cost 15-35 ms.
RE2 reads a text once with a DFA (about 2 ns a byte) but knows no lookarounds. So each rule's
pattern is translated into an RE2 pattern that matches wherever the rule's could, and more:

    lookahead, lookbehind, \\b, \\B, $, \\Z    dropped (they only ever refuse a match)
    \\w, \\d (and classes of them)             any character but ASCII whitespace
    \\s                                       every character Python counts as a space
    a class negating a category              any character
    {m,n} with n over 4                       * or +

A superset: where RE2 finds nothing, the rule's own regex would not either, and where it
finds something the rule's regex decides. The findings are therefore exactly what the rules
alone give; only the work changes (a test checks every character class against both engines
over all of Unicode, and the verdicts over the corpora). A rule the translation does not
cover (a backreference, a flag other than DOTALL) gets no prefilter and always runs, as does
every rule on a text that is not valid UTF-8 (lone surrogates). Short texts skip the
prefilter altogether: below ``LONG_TEXT`` characters the rules are cheap and the extra pass
is not.

On long texts (``EXACT_TEXT`` characters or more) a rule without lookarounds,
backreferences or atomic groups needs no second opinion. Such a rule also gets an *exact*
translation, in which ``\\b`` stays and ``\\w``, ``\\d`` and ``\\s`` become the ASCII characters
Python counts as such (``\\s`` also holds ``\\v`` and ``\\x1c``-``\\x1f``). On a text whose every
letter, digit and space is ASCII (typographic quotes and dashes allowed: they are none of
those to either engine), RE2's classes and boundaries then mean what Python's do, and whether
a regular pattern matches somewhere does not depend on the engine, so where a superset
matches, the exact form's answer is final and the rule's regex does not run. (One rule took
68 µs a 1 kB document in Python's ``re``, 2.2 µs in RE2; ``check_body`` on 10 kB of
documentation: 3.45 -> 2.8 ms.) A test compares the two on texts generated from every rule.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import re2

from sidecar.security.rules import Rule

log = logging.getLogger(__name__)

# The parser behind ``re.compile``: private, but the one exact reading of a pattern there is
# (``sre_parse``, its public alias, warns of deprecation on import).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

LONG_TEXT = 400  # characters: from about here on the prefilter pays for itself (measured)
# From about here on RE2's exact answer beats running the rule's regex after its superset:
# below, Python's regex (often finding its match early) costs less than a second RE2 pass.
EXACT_TEXT = 2_000
MAX_BOUNDED = 4  # a counted repeat allowed more than this many times becomes * or +

_ANY = r"(?s:.)"
_LINE = r"[^\n]"  # "." without DOTALL
_NOT_SPACE = r"\S"  # RE2's \S: anything but [\t\n\f\r ]; every \w and \d is one of those
_RE2_SPACE = "\t\n\f\r "
_SPACE = r"\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}"  # str.isspace(): ASCII, \x1c-\x1f, \x85, Z*
_WORD = r"\p{L}\p{N}\p{M}_"
_DIGIT = r"\p{N}"
# Python's classes as they read an ASCII text (str.isspace() also holds \x1c-\x1f)
_ASCII_WORD = "0-9A-Za-z_"
_ASCII_DIGIT = "0-9"
_ASCII_SPACE = r"\t\n\x{0b}\x{0c}\r \x{1c}-\x{1f}"
_ASCII_BYTES = bytes(range(128))  # deleted from a text to see what else it holds


class Reading(NamedTuple):
    """A text as RE2 reads it (UTF-8), and whether exact translations decide on it alone."""

    data: bytes
    exact: bool


def ascii_classes(data: bytes) -> bool:
    """Whether every letter, digit, underscore and space of the UTF-8 text ``data`` is ASCII:
    where Python's ``\\w``, ``\\d``, ``\\s`` and ``\\b`` mean what RE2's ASCII ones do. (Its
    other characters are found by deleting the ASCII bytes: 6 µs for 10 kB, where a regex
    took 90.)"""
    if data.isascii():
        return True
    others = set(data.translate(None, _ASCII_BYTES).decode())
    return not any(char.isalnum() or char.isspace() for char in others)  # "_" is ASCII


class Unsupported(Exception):
    """A construct the translation does not cover: the rule runs without a prefilter (or,
    for the exact translation, with its regex after the superset)."""


def _literal(code: int) -> str:
    char = chr(code)
    return char if char.isascii() and char.isalnum() else rf"\x{{{code:x}}}"


def _class_item(op: Any, av: Any) -> str | None:
    """One item of a character class in RE2 syntax; None for a negated category (whose
    complement would have to be exact)."""
    if op is _c.LITERAL:
        return _literal(av)
    if op is _c.RANGE:
        return f"{_literal(av[0])}-{_literal(av[1])}"
    if op is _c.CATEGORY:
        if av in (_c.CATEGORY_WORD, _c.CATEGORY_UNI_WORD):
            return _WORD
        if av in (_c.CATEGORY_DIGIT, _c.CATEGORY_UNI_DIGIT):
            return _DIGIT
        if av in (_c.CATEGORY_SPACE, _c.CATEGORY_UNI_SPACE):
            return _SPACE
        return None
    raise Unsupported(str(op))


_ASCII_CATEGORIES = {
    _c.CATEGORY_WORD: _ASCII_WORD,
    _c.CATEGORY_UNI_WORD: _ASCII_WORD,
    _c.CATEGORY_DIGIT: _ASCII_DIGIT,
    _c.CATEGORY_UNI_DIGIT: _ASCII_DIGIT,
    _c.CATEGORY_SPACE: _ASCII_SPACE,
    _c.CATEGORY_UNI_SPACE: _ASCII_SPACE,
}


def _exact_class(items: list[tuple[Any, Any]]) -> str:
    """A class as it reads an ASCII text: categories become their ASCII members, so a negated
    class is exact there too."""
    negated = bool(items) and items[0][0] is _c.NEGATE
    parts = []
    for op, av in items[1:] if negated else items:
        if op is _c.CATEGORY:
            if av not in _ASCII_CATEGORIES:  # \W, \D, \S inside a class
                raise Unsupported(f"category {av}")
            parts.append(_ASCII_CATEGORIES[av])
        else:
            parts.append(_class_item(op, av) or "")
    return ("[^" if negated else "[") + "".join(parts) + "]"


def _holds_re2_space(op: Any, av: Any) -> bool:
    if op is _c.LITERAL:
        return chr(av) in _RE2_SPACE
    if op is _c.RANGE:
        return any(av[0] <= ord(char) <= av[1] for char in _RE2_SPACE)
    return av not in (_c.CATEGORY_WORD, _c.CATEGORY_UNI_WORD, _c.CATEGORY_DIGIT,
                      _c.CATEGORY_UNI_DIGIT)  # fmt: skip


def _class(items: list[tuple[Any, Any]]) -> str:
    negated = bool(items) and items[0][0] is _c.NEGATE
    body = items[1:] if negated else items
    has_category = any(op is _c.CATEGORY for op, _ in body)
    if negated:
        if has_category:  # [^\w...]: a complement in RE2 would have to be exact
            return _ANY
        return "[^" + "".join(_class_item(op, av) or "" for op, av in body) + "]"
    if has_category and not any(_holds_re2_space(op, av) for op, av in body):
        return _NOT_SPACE  # [\w'-]: far smaller automata than Unicode letter classes
    parts = [_class_item(op, av) for op, av in body]
    if None in parts:
        return _ANY
    return "[" + "".join(part or "" for part in parts) + "]"


_EXACT_AT = {
    _c.AT_BEGINNING: "^",
    _c.AT_BEGINNING_STRING: "^",
    _c.AT_END_STRING: "$",  # \Z: RE2's $ without (?m) is the very end
    _c.AT_BOUNDARY: r"\b",
    _c.AT_NON_BOUNDARY: r"\B",
    _c.AT_UNI_BOUNDARY: r"\b",
    _c.AT_UNI_NON_BOUNDARY: r"\B",
}
MAX_RE2_REPEAT = 1000  # RE2 refuses larger counted repeats


class _Translation:
    """A parsed Python pattern written for RE2: a superset, or (``exact``) the same pattern as
    it reads ASCII texts."""

    def __init__(self, *, dotall: bool, exact: bool) -> None:
        self.dotall, self.exact = dotall, exact

    def sequence(self, items: Any) -> str:
        return "".join(self.node(op, av) for op, av in items)

    def node(self, op: Any, av: Any) -> str:
        if op is _c.LITERAL:
            return _literal(av)
        if op is _c.NOT_LITERAL:
            return f"[^{_literal(av)}]"
        if op is _c.ANY:
            return _ANY if self.dotall else _LINE
        if op is _c.IN:
            return _exact_class(av) if self.exact else _class(av)
        if op is _c.CATEGORY:
            return self.node(_c.IN, [(op, av)])
        if op is _c.BRANCH:
            return "(?:" + "|".join(self.sequence(branch) for branch in av[1]) + ")"
        if op is _c.SUBPATTERN:
            _group, add_flags, del_flags, items = av
            if add_flags or del_flags:
                raise Unsupported("inline flags")
            return "(?:" + self.sequence(items) + ")"
        if op in (_c.MAX_REPEAT, _c.MIN_REPEAT):  # lazy or not: the same texts match
            return self.repeat(*av)
        if op is _c.AT:
            return self.anchor(av)
        if self.exact:  # lookarounds, atomic groups, possessive repeats: not regular in RE2
            raise Unsupported(str(op))
        if op is _c.ATOMIC_GROUP:
            return "(?:" + self.sequence(av) + ")"
        if op is _c.POSSESSIVE_REPEAT:
            return self.repeat(*av)
        if op in (_c.ASSERT, _c.ASSERT_NOT):
            return ""
        raise Unsupported(str(op))

    def repeat(self, least: int, most: Any, items: Any) -> str:
        inner = "(?:" + self.sequence(items) + ")"
        unbounded = most is _c.MAXREPEAT
        if self.exact:
            if max(least, 0 if unbounded else most) > MAX_RE2_REPEAT:
                raise Unsupported("repeat count")
            return inner + (f"{{{least},}}" if unbounded else f"{{{least},{most}}}")
        if unbounded or most > MAX_BOUNDED:
            return inner + ("*" if least == 0 else "+")
        return f"{inner}{{{least},{most}}}"

    def anchor(self, at: Any) -> str:
        if not self.exact:
            return "^" if at in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING) else ""
        if at not in _EXACT_AT:  # $ (also before a final newline), multiline anchors
            raise Unsupported(str(at))
        return _EXACT_AT[at]


def translate(pattern: str, flags: int, *, exact: bool = False) -> str:
    """An RE2 pattern matching wherever the Python ``pattern`` (compiled with ``flags``) can;
    ``exact``: one matching an ASCII text exactly where it does."""
    parsed = _parser.parse(pattern, flags)
    if parsed.state.flags & ~(_c.SRE_FLAG_DOTALL | _c.SRE_FLAG_UNICODE):
        raise Unsupported("flags")
    dotall = bool(parsed.state.flags & _c.SRE_FLAG_DOTALL)
    return _Translation(dotall=dotall, exact=exact).sequence(parsed.data)


def superset(pattern: str, flags: int) -> str:
    """An RE2 pattern matching wherever the Python ``pattern`` (compiled with ``flags``) can."""
    return translate(pattern, flags)


def _compile(rule: Rule, *, exact: bool) -> Any:
    options = re2.Options()
    options.never_capture = True
    # A DFA that outgrows its budget (8 MB by default; RE2 allocates as states are visited,
    # about 25 MB for all rules after megabytes of varied text) falls back to a slower search
    # that finds the same; RE2 would log each time.
    options.log_errors = False
    try:
        return re2.compile(
            translate(rule.pattern.pattern, rule.pattern.flags, exact=exact), options
        )
    except (Unsupported, re2.error) as exc:
        log.debug("no %s RE2 form for %r: %s", exact, rule.pattern.pattern[:60], exc)
        return None


class Prefilter:
    """The RE2 superset of each rule, and its exact form on ASCII texts (None where there is
    none), by rule number."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.supersets: tuple[Any, ...] = tuple(_compile(rule, exact=False) for rule in rules)
        # A rule for other scripts runs only on texts that hold them: never read exactly.
        self.exact: tuple[Any, ...] = tuple(
            None if rule.scripts else _compile(rule, exact=True) for rule in rules
        )

    @staticmethod
    def encode(lowered: str) -> Reading | None:
        """The text as RE2 reads it, for a text long enough to be worth it and valid UTF-8."""
        if len(lowered) < LONG_TEXT:
            return None
        try:
            data = lowered.encode()
        except UnicodeEncodeError:  # a lone surrogate: RE2 would not read it as Python does
            return None
        return Reading(data, len(lowered) >= EXACT_TEXT and ascii_classes(data))

    def may_match(self, number: int, reading: Reading | None) -> bool:
        """False only when rule ``number`` cannot match the text ``reading`` came from."""
        regex = self.supersets[number]
        return reading is None or regex is None or regex.search(reading.data) is not None

    def decides(self, number: int, reading: Reading | None) -> bool | None:
        """Whether rule ``number`` matches the text ``reading`` came from, where RE2 alone can
        tell (the text's classes are ASCII and the rule has an exact form); else None."""
        if reading is None or not reading.exact:
            return None
        regex = self.exact[number]
        return None if regex is None else regex.search(reading.data) is not None
