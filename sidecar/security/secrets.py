"""Secrets and personal data in model output: find them, then redact, block or flag them.

:func:`find` lists what is in a text; :func:`redact` applies a :class:`Policy` (an action per
type) and says what it did; :func:`redact_answer` does so for every text of a JSON answer. The
detectors themselves, one row per pattern with its validator, are in
:mod:`sidecar.security.secret_patterns`; streams are handled by
:mod:`sidecar.security.stream_redact`, which reaches the same result chunk by chunk.

Actions::

    redact   replace with [REDACTED:TYPE]
    block    the whole answer is refused (the caller raises :func:`blocked_error`); the text is
             redacted as well, so it is safe even if a caller forgets to block
    flag     leave the text, report the span
    off      do not look for this type at all

Types: PRIVATE_KEY, JWT, ANTHROPIC_KEY, OPENAI_KEY, GITHUB_TOKEN, SLACK_TOKEN, STRIPE_KEY,
GOOGLE_API_KEY, AWS_ACCESS_KEY, AWS_SECRET_KEY, GENERIC_SECRET, EMAIL, IBAN, CREDIT_CARD,
US_SSN, PHONE, IP_ADDRESS (:data:`TYPES`; earlier wins where two overlap).
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson

from sidecar.errors import ErrorCode, SidecarError
from sidecar.security.secret_patterns import LOOKBACK, TYPES, Found, candidates

__all__ = [
    "ACTIONS",
    "LOOKBACK",
    "TYPES",
    "AnswerRedaction",
    "Finding",
    "Policy",
    "Redaction",
    "Span",
    "apply",
    "blocked_error",
    "find",
    "findings_of",
    "marker",
    "redact",
    "redact_answer",
    "redact_body",
    "scan",
]


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    type: str


_PRIORITY = {t: i for i, t in enumerate(TYPES)}


# Spaces that word processors and locales put between a number's groups ("4111\u00a01111 ...",
# French "1\u202f234"): read as plain spaces, one character for one, so offsets hold.
GROUP_SPACES = "\u00a0\u2007\u2009\u202f"
_AS_SPACES = str.maketrans(dict.fromkeys(GROUP_SPACES, " "))


def scan(text: str, pos: int = 0, types: frozenset[str] | None = None) -> list[Span]:
    """Findings that start at or after ``pos`` (``text[:pos]`` is read only as context),
    non-overlapping, in text order; ``types`` limits what is looked for."""
    if not text.isascii() and any(space in text for space in GROUP_SPACES):
        text = text.translate(_AS_SPACES)
    return _resolve(candidates(text, pos, types))


def _resolve(found: list[Found]) -> list[Span]:
    """Where two findings overlap keep the higher-priority type (then the earlier, longer)."""
    if len(found) <= 1:
        return [Span(*f) for f in found]
    starts: list[int] = []  # of the kept findings, which never overlap: sorted by end too
    kept: list[Found] = []
    for f in sorted(found, key=lambda f: (_PRIORITY[f[2]], f[0], f[0] - f[1])):
        at = bisect.bisect_left(starts, f[1])  # the kept ones from here start after f ends
        if at and kept[at - 1][1] > f[0]:
            continue
        starts.insert(at, f[0])
        kept.insert(at, f)
    return [Span(*f) for f in kept]


def find(text: str) -> list[Span]:
    """Every secret and piece of personal data in ``text``: non-overlapping, sorted."""
    return scan(text)


# --- what to do with them ---------------------------------------------------------------------

ACTIONS: Final = ("redact", "block", "flag", "off")


@dataclass(frozen=True, slots=True)
class Policy:
    """The action per type. Config gives one action for all, or a map per type in which
    ``"*"`` sets the action for the types it does not name (``redact`` if absent)."""

    actions: Mapping[str, str]
    enabled: frozenset[str]  # the types not switched off: only these are looked for

    @classmethod
    def of(cls, actions: Policy | Mapping[str, str] | str) -> Policy:
        if isinstance(actions, Policy):
            return actions
        if isinstance(actions, str):
            return _uniform(actions)
        unknown = set(actions) - set(TYPES) - {"*"}
        if unknown:
            raise ValueError(f"unknown output check type(s): {', '.join(sorted(unknown))}")
        default = _checked(actions.get("*", "redact"))
        return cls._build({t: _checked(actions.get(t, default)) for t in TYPES})

    @classmethod
    def _build(cls, actions: dict[str, str]) -> Policy:
        return cls(actions, frozenset(t for t, a in actions.items() if a != "off"))

    def action(self, type_: str) -> str:
        return self.actions.get(type_, "off")

    def replaces(self, type_: str) -> bool:
        return self.actions.get(type_) in ("redact", "block")


@functools.cache
def _uniform(action: str) -> Policy:
    return Policy._build(dict.fromkeys(TYPES, _checked(action)))


def _checked(action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown output action {action!r}; expected one of {', '.join(ACTIONS)}")
    return action


def marker(type_: str) -> str:
    return f"[REDACTED:{type_}]"


@dataclass(frozen=True, slots=True)
class Redaction:
    """The text with findings replaced; spans are offsets in the original text."""

    text: str
    redacted: tuple[Span, ...]
    flagged: tuple[Span, ...]
    blocked: tuple[Span, ...]

    @property
    def block(self) -> bool:
        return bool(self.blocked)

    @property
    def spans(self) -> tuple[Span, ...]:
        return tuple(sorted(self.redacted + self.flagged + self.blocked, key=lambda s: s.start))


def apply(text: str, spans: Iterable[Span], policy: Policy, start: int = 0, end: int = -1) -> str:
    """``text[start:end]`` (to the end if ``end`` < 0) with every span the policy replaces
    (redact, block) replaced by its marker; the spans must lie inside and be sorted."""
    end = len(text) if end < 0 else end
    out: list[str] = []
    position = start
    for span in spans:
        if policy.replaces(span.type):
            out.append(text[position : span.start])
            out.append(marker(span.type))
            position = span.end
    out.append(text[position:end])
    return "".join(out)


def sort_by_action(spans: Iterable[Span], policy: Policy) -> dict[str, list[Span]]:
    by_action: dict[str, list[Span]] = {"redact": [], "flag": [], "block": []}
    for span in spans:
        by_action[policy.action(span.type)].append(span)
    return by_action


def redact(text: str, actions: Policy | Mapping[str, str] | str) -> Redaction:
    """Apply ``actions`` (a :class:`Policy`, one action for all types, or a map per type)."""
    policy = Policy.of(actions)
    if not policy.enabled:
        return Redaction(text, (), (), ())
    spans = scan(text, 0, policy.enabled)
    by_action = sort_by_action(spans, policy)
    return Redaction(
        apply(text, spans, policy),
        tuple(by_action["redact"]),
        tuple(by_action["flag"]),
        tuple(by_action["block"]),
    )


BLOCK_REASON: Final = "sensitive_output"


def blocked_error(types: Iterable[str]) -> SidecarError:
    """The error for an answer refused by the output policy: 400 INVALID_INPUT with
    ``reason: sensitive_output``, like a blocked prompt; it names the types, never the text."""
    names = ", ".join(sorted(set(types))) or "sensitive data"
    return SidecarError(
        ErrorCode.INVALID_INPUT,
        f"The answer was withheld by the output policy: it contained {names}.",
        reason=BLOCK_REASON,
    )


# --- whole answers ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding in an answer: where (a JSON path and offsets in that text) and the action."""

    type: str
    action: str
    where: str
    start: int
    end: int


def findings_of(spans: Iterable[Span], where: str, policy: Policy) -> list[Finding]:
    return [Finding(s.type, policy.action(s.type), where, s.start, s.end) for s in spans]


@dataclass(frozen=True, slots=True)
class AnswerRedaction:
    answer: dict[str, Any]  # the answer with its texts redacted (the same object, changed)
    findings: tuple[Finding, ...]
    changed: bool

    @property
    def blocked_types(self) -> list[str]:
        return sorted({f.type for f in self.findings if f.action == "block"})

    @property
    def block(self) -> bool:
        return any(f.action == "block" for f in self.findings)


def redact_answer(
    answer: dict[str, Any], actions: Policy | Mapping[str, str] | str
) -> AnswerRedaction:
    """Redact the texts of a non-streamed answer in place: ``choices[].message.content``
    (a string or text parts) and ``.refusal``, legacy ``choices[].text``, the Responses API's
    ``output[].content[].text`` and ``.refusal``, and the arguments of tool and function calls
    (each string inside the arguments' JSON). If ``block`` is true the caller answers
    :func:`~sidecar.security.secrets.blocked_error` instead."""
    policy = Policy.of(actions)
    findings: list[Finding] = []
    changed = False
    if not policy.enabled:
        return AnswerRedaction(answer, (), False)
    for where, holder, key in _answer_texts(answer):
        result = redact(holder[key], policy)
        findings.extend(findings_of(result.spans, where, policy))
        if result.text != holder[key]:
            holder[key] = result.text
            changed = True
    for where, holder, key in _answer_arguments(answer):
        arguments, found = redact_arguments(holder[key], policy, where)
        findings.extend(found)
        if arguments != holder[key]:
            holder[key] = arguments
            changed = True
    return AnswerRedaction(answer, tuple(findings), changed)


def redact_arguments(arguments: str, policy: Policy, where: str) -> tuple[str, list[Finding]]:
    """A call's arguments (a JSON text): each string value redacted on its own, so a redaction
    never cuts into JSON syntax or an escape sequence; re-encoded only if one changed. Arguments
    that are not JSON are redacted as plain text."""
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        result = redact(arguments, policy)
        return result.text, findings_of(result.spans, where, policy)
    findings: list[Finding] = []

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, str):
            result = redact(node, policy)
            findings.extend(findings_of(result.spans, path, policy))
            return result.text
        if isinstance(node, list):
            return [walk(item, f"{path}[{i}]") for i, item in enumerate(node)]
        if isinstance(node, dict):
            return {key: walk(item, f"{path}.{key}") for key, item in node.items()}
        return node

    redacted = walk(value, where)
    return (arguments if redacted == value else orjson.dumps(redacted).decode()), findings


def redact_body(
    body: bytes, actions: Policy | Mapping[str, str] | str
) -> tuple[bytes, AnswerRedaction]:
    """:func:`redact_answer` on a JSON body; the body is re-encoded only if a text changed (a
    body that is not a JSON object has no texts to check and is returned as it is)."""
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body, AnswerRedaction({}, (), False)
    if not isinstance(answer, dict):
        return body, AnswerRedaction({}, (), False)
    result = redact_answer(answer, actions)
    return (orjson.dumps(result.answer) if result.changed else body), result


def _answer_texts(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(path, the object holding a text, its key) for every text of an answer."""
    texts: list[tuple[str, dict[str, Any], str]] = []
    for i, choice in enumerate(answer.get("choices") or ()):
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            texts.append((f"choices[{i}].text", choice, "text"))
        message = choice.get("message")
        if isinstance(message, dict):
            if isinstance(message.get("refusal"), str):
                texts.append((f"choices[{i}].message.refusal", message, "refusal"))
            content = message.get("content")
            if isinstance(content, str):
                texts.append((f"choices[{i}].message.content", message, "content"))
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    if isinstance(part, dict) and isinstance(part.get("text"), str):
                        texts.append((f"choices[{i}].message.content[{j}]", part, "text"))
    for i, item in enumerate(answer.get("output") or ()):
        if isinstance(item, dict):
            for j, part in enumerate(item.get("content") or ()):
                if not isinstance(part, dict):
                    continue
                if part.get("type") == "output_text" and isinstance(part.get("text"), str):
                    texts.append((f"output[{i}].content[{j}]", part, "text"))
                elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
                    texts.append((f"output[{i}].content[{j}].refusal", part, "refusal"))
    return texts


def _answer_arguments(answer: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """(path, the object holding a call's arguments, its key) for every tool or function call
    of an answer: Chat Completions' ``tool_calls`` and legacy ``function_call``, and the
    Responses API's ``function_call`` items."""
    calls: list[tuple[str, dict[str, Any], str]] = []
    for i, choice in enumerate(answer.get("choices") or ()):
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            continue
        for k, call in enumerate(message.get("tool_calls") or ()):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                path = f"choices[{i}].message.tool_calls[{k}].function.arguments"
                calls.append((path, function, "arguments"))
        function = message.get("function_call")
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            calls.append((f"choices[{i}].message.function_call.arguments", function, "arguments"))
    for i, item in enumerate(answer.get("output") or ()):
        if (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and isinstance(item.get("arguments"), str)
        ):
            calls.append((f"output[{i}].arguments", item, "arguments"))
    return calls
