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
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import Any

import re2

from sidecar.security.rules import Rule

log = logging.getLogger(__name__)

# The parser behind ``re.compile``: private, but the one exact reading of a pattern there is
# (``sre_parse``, its public alias, warns of deprecation on import).
_parser: Any = importlib.import_module("re._parser")
_c: Any = importlib.import_module("re._constants")

LONG_TEXT = 400  # characters: from about here on the prefilter pays for itself (measured)
MAX_BOUNDED = 4  # a counted repeat allowed more than this many times becomes * or +

_ANY = r"(?s:.)"
_LINE = r"[^\n]"  # "." without DOTALL
_NOT_SPACE = r"\S"  # RE2's \S: anything but [\t\n\f\r ]; every \w and \d is one of those
_RE2_SPACE = "\t\n\f\r "
_SPACE = r"\s\x{0b}\x{1c}-\x{1f}\x{85}\p{Z}"  # str.isspace(): ASCII, \x1c-\x1f, \x85, Z*
_WORD = r"\p{L}\p{N}\p{M}_"
_DIGIT = r"\p{N}"
_ALLOWED_FLAGS = 0  # set from _c below: DOTALL and UNICODE (the default for str patterns)


class Unsupported(Exception):
    """A construct the translation does not cover: the rule runs without a prefilter."""


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


def _sequence(items: Any, dotall: bool) -> str:
    return "".join(_node(op, av, dotall) for op, av in items)


def _node(op: Any, av: Any, dotall: bool) -> str:
    if op is _c.LITERAL:
        return _literal(av)
    if op is _c.NOT_LITERAL:
        return f"[^{_literal(av)}]"
    if op is _c.ANY:
        return _ANY if dotall else _LINE
    if op is _c.IN:
        return _class(av)
    if op is _c.CATEGORY:
        return _class([(op, av)])
    if op is _c.BRANCH:
        return "(?:" + "|".join(_sequence(branch, dotall) for branch in av[1]) + ")"
    if op is _c.SUBPATTERN:
        _group, add_flags, del_flags, items = av
        if add_flags or del_flags:
            raise Unsupported("inline flags")
        return "(?:" + _sequence(items, dotall) + ")"
    if op is _c.ATOMIC_GROUP:
        return "(?:" + _sequence(av, dotall) + ")"
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT, _c.POSSESSIVE_REPEAT):
        least, most, items = av
        inner = "(?:" + _sequence(items, dotall) + ")"
        if most is _c.MAXREPEAT or most > MAX_BOUNDED:
            return inner + ("*" if least == 0 else "+")
        return f"{inner}{{{least},{most}}}"
    if op is _c.AT:
        return "^" if av in (_c.AT_BEGINNING, _c.AT_BEGINNING_STRING) else ""
    if op in (_c.ASSERT, _c.ASSERT_NOT):
        return ""
    raise Unsupported(str(op))


def superset(pattern: str, flags: int) -> str:
    """An RE2 pattern matching wherever the Python ``pattern`` (compiled with ``flags``) can."""
    parsed = _parser.parse(pattern, flags)
    if parsed.state.flags & ~(_c.SRE_FLAG_DOTALL | _c.SRE_FLAG_UNICODE):
        raise Unsupported("flags")
    return _sequence(parsed.data, bool(parsed.state.flags & _c.SRE_FLAG_DOTALL))


def _compile(rule: Rule) -> Any:
    options = re2.Options()
    options.never_capture = True
    # A DFA that outgrows its budget (8 MB by default; RE2 allocates as states are visited,
    # about 25 MB for all rules after megabytes of varied text) falls back to a slower search
    # that finds the same; RE2 would log each time.
    options.log_errors = False
    try:
        return re2.compile(superset(rule.pattern.pattern, rule.pattern.flags), options)
    except (Unsupported, re2.error) as exc:
        log.debug("no prefilter for %r: %s", rule.pattern.pattern[:60], exc)
        return None


class Prefilter:
    """The RE2 superset of each rule (None where there is none), by rule number."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.supersets: tuple[Any, ...] = tuple(_compile(rule) for rule in rules)

    @staticmethod
    def encode(lowered: str) -> bytes | None:
        """The text as RE2 reads it, for a text long enough to be worth it and valid UTF-8."""
        if len(lowered) < LONG_TEXT:
            return None
        try:
            return lowered.encode()
        except UnicodeEncodeError:  # a lone surrogate: RE2 would not read it as Python does
            return None

    def may_match(self, number: int, encoded: bytes | None) -> bool:
        """False only when rule ``number`` cannot match the text ``encoded`` came from."""
        regex = self.supersets[number]
        return encoded is None or regex is None or regex.search(encoded) is not None
