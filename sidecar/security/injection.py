"""Prompt-injection and jailbreak detection: normalise, match technique families, classify.

    text --normalize--> normalised text + decoded payloads + signals
         --techniques.match--> family scores (structural patterns, statistics)   -+
         --classifier.score--> probability from hashed n-grams                    -+-> score

The two layers combine as independent evidence, ``1 - (1 - patterns) * (1 - w * classifier)``,
with the classifier discounted (``CLASSIFIER_WEIGHT`` < 0.5): measured leave-one-source-out it
separates attacks from benign text of an unseen source far worse than the patterns do (alone,
it flagged 2 % of attacks and, at that, 5 % of the "act as ..." prompts of a held-out source), so
it never flags a text on its own at the default threshold; it corroborates, pushing weak
pattern evidence over the line. Before that its probability is put on the detector's scale
(``align``): its operating point (``Classifier.threshold``, chosen by the training script so
that out-of-source false positives stay at or under 1 %) maps to ``DEFAULT_THRESHOLD``.
A text is flagged at ``threshold``; a lower
``shadow_threshold`` says what a stricter setting *would* flag, so it can be tried in
production without blocking anyone.

Which parts of a request body are read, by role (``check_body``)::

    where                                   role        read
    messages[].content (str or text parts)  user        always
                                            tool        always (tool and function results)
                                            function    always
                                            system      only with check_system=True
                                            developer   only with check_system=True
                                            assistant   never (the model's own words)
                                            any other   always, as user (so is no role)
    messages as one string or one object    user/role   always, as a list of one
    input (Responses API, str)              user        always
    input[] items: message content          by role     as above
    input[] items: function_call_output     tool        always
    instructions (Responses API)            system      only with check_system=True
    prompt (legacy completions, str/list)   user        always

System and developer messages are written by the application, not its users, so they are
trusted unless asked otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.security import techniques
from sidecar.security.classifier import LONG_TEXT, Classifier
from sidecar.security.normalize import normalize
from sidecar.security.tokens import Tokens, tokenize

CLASSIFIER = "classifier"  # the technique name reported when the classifier flags
DEFAULT_THRESHOLD = 0.5
CLASSIFIER_WEIGHT = 0.45  # at most 0.45 alone: below the default threshold
# A long text's classifier score is its most suspicious window's, and the most suspicious of
# twenty windows of benign prose is often high: on 219 windows of 12 kB (package READMEs,
# Python's documentation and source) it lifted pattern evidence of 0.25-0.3 over the line in
# ten. On a long text the classifier corroborates only this much pattern evidence.
LONG_TEXT_CORROBORATES = 0.35
TRUSTED_ROLES = frozenset({"system", "developer"})
CHECKED_ROLES = frozenset({"user", "tool", "function"})
UNREAD_ROLES = frozenset({"assistant"})
KNOWN_ROLES = TRUSTED_ROLES | CHECKED_ROLES | UNREAD_ROLES
MAX_TEXT_CHARS = 100_000  # longer texts are checked on their first and last halves of this


@dataclass(frozen=True, slots=True)
class Verdict:
    flagged: bool
    score: float
    techniques: tuple[str, ...]  # strongest first; empty unless at least shadow-flagged
    shadow_flagged: bool = False  # the stricter shadow threshold would flag it


@dataclass(frozen=True, slots=True)
class Finding:
    """One technique found in one part of a request: what the stage reports (never the text)."""

    technique: str
    score: float
    role: str
    shadow: bool = False  # flagged only at the shadow threshold: count it, do not act on it


@dataclass(frozen=True, slots=True)
class Scored:
    """Everything the detector computed for a text, for evaluation and diagnostics."""

    families: dict[str, float]
    patterns: float
    classifier: float  # on the detector's scale (see ``align``)
    windowed: bool = False  # a long text, read by window (see ``LONG_TEXT_CORROBORATES``)


@dataclass(frozen=True, slots=True)
class _Patterns:
    """The text's tokens and pattern families: what the classifier step still needs."""

    tokens: Tokens
    families: dict[str, float]
    score: float

    @property
    def windowed(self) -> bool:
        """Whether the classifier reads this text by window (see ``LONG_TEXT_CORROBORATES``)."""
        return self.tokens.size > LONG_TEXT

    def scored(self, classifier: float) -> Scored:
        return Scored(self.families, self.score, classifier, self.windowed)


class InjectionDetector:
    def __init__(
        self, classifier: Classifier, threshold: float, shadow_threshold: float | None = None
    ) -> None:
        self.classifier = classifier
        self.threshold = threshold
        self.shadow_threshold = threshold if shadow_threshold is None else shadow_threshold

    @classmethod
    def load(
        cls,
        threshold: float | None = None,
        shadow_threshold: float | None = None,
        model_path: str | Path | None = None,
    ) -> InjectionDetector:
        """The shipped model (or ``model_path``); ``threshold`` defaults to 0.5."""
        chosen = DEFAULT_THRESHOLD if threshold is None else threshold
        return cls(Classifier.load(model_path), chosen, shadow_threshold)

    def scored(self, text: str) -> Scored:
        """Everything the detector computes for ``text``: the exact score."""
        patterns = self._patterns(text)
        return patterns.scored(self.classifier.score_tokens(patterns.tokens))

    def _patterns(self, text: str) -> _Patterns:
        if len(text) > MAX_TEXT_CHARS:
            half = MAX_TEXT_CHARS // 2
            text = f"{text[:half]}\n{text[-half:]}"
        norm = normalize(text)
        tokens = tokenize(norm.inspected_lower)  # one split, read by both layers
        families = techniques.match(norm, tokens)
        return _Patterns(tokens, families, techniques.combined(families))

    def scan_text(self, text: str) -> Verdict:
        return self.verdict(self.scored(text))

    def verdict(self, scored: Scored) -> Verdict:
        score = combine(scored.patterns, scored.classifier, windowed=scored.windowed)
        shadow = score >= self.shadow_threshold
        if not (shadow or score >= self.threshold):
            return Verdict(False, round(score, 4), ())
        found = sorted(scored.families.items(), key=lambda item: -item[1])
        floor = min(self.threshold, self.shadow_threshold) / 2  # weak families don't explain
        names = [name for name, value in found if value >= floor]
        counted = combine(scored.patterns, 1.0, windowed=scored.windowed) > scored.patterns
        if (counted and scored.classifier * CLASSIFIER_WEIGHT >= floor) or not names:
            names.append(CLASSIFIER)
        return Verdict(score >= self.threshold, round(score, 4), tuple(names), shadow)

    def check_body(self, body: dict[str, Any], *, check_system: bool = False) -> list[Finding]:
        """Findings for every checked part of an OpenAI request body (see the module table).

        The same findings as ``scan_text`` on each part, without running the classifier on a
        part whose pattern score is too low for any classifier output to lift it to the lowest
        threshold (with ``CLASSIFIER_WEIGHT`` < 0.5: any part with no pattern evidence at all,
        most prompts). Non-findings have no score to report, so nothing is lost."""
        return self.check_texts(texts_by_role(body, check_system=check_system))

    def check_texts(self, texts: Iterable[tuple[str, str]]) -> list[Finding]:
        """:meth:`check_body` for (role, text) pairs already taken from a body."""
        findings: list[Finding] = []
        lowest = min(self.threshold, self.shadow_threshold)
        for role, text in texts:
            patterns = self._patterns(text)
            if combine(patterns.score, 1.0, windowed=patterns.windowed) < lowest:
                continue  # even a certain classifier could not make this text flag: skip it
            verdict = self.verdict(patterns.scored(self.classifier.score_tokens(patterns.tokens)))
            if verdict.flagged or verdict.shadow_flagged:
                shadow = not verdict.flagged
                findings.extend(
                    Finding(name, verdict.score, role, shadow) for name in verdict.techniques
                )
        return findings


def combine(patterns: float, classifier: float, *, windowed: bool = False) -> float:
    """The detector's score from the pattern score and the aligned classifier probability
    (which, for a text the classifier reads by window, counts only beside pattern evidence of
    ``LONG_TEXT_CORROBORATES`` or more)."""
    if windowed and patterns < LONG_TEXT_CORROBORATES:
        return patterns
    return 1.0 - (1.0 - patterns) * (1.0 - CLASSIFIER_WEIGHT * classifier)


def align(probability: float, operating: float) -> float:
    """The classifier's probability on the detector's scale: piecewise linear, monotone, with
    its operating point at ``DEFAULT_THRESHOLD``."""
    if probability >= operating:
        span = (1.0 - DEFAULT_THRESHOLD) / max(1.0 - operating, 1e-9)
        return DEFAULT_THRESHOLD + (probability - operating) * span
    return probability * DEFAULT_THRESHOLD / operating


def texts_by_role(body: dict[str, Any], *, check_system: bool = False) -> Iterator[tuple[str, str]]:
    """The (role, text) pairs of a request body that the detector should read.

    What the reader cannot place is read, not skipped: a role it does not know (or a message
    without one) is read as the user's, and a ``messages`` or ``input`` that is a single string
    or object instead of a list is read as one, so a body shaped to slip past the check (which a
    lenient upstream might still accept) is checked like any other."""
    skipped = UNREAD_ROLES if check_system else UNREAD_ROLES | TRUSTED_ROLES
    messages = body.get("messages")
    if isinstance(messages, str):
        yield from _user_text(messages)
    elif isinstance(messages, list | dict):
        yield from _messages(_items(messages), skipped)
    inputs = body.get("input")
    if isinstance(inputs, str):
        yield from _user_text(inputs)
    elif isinstance(inputs, list | dict):
        yield from _response_items(_items(inputs), skipped)
    instructions = body.get("instructions")
    if check_system and isinstance(instructions, str):
        yield "system", instructions
    prompt = body.get("prompt")
    if isinstance(prompt, str):
        yield from _user_text(prompt)
    elif isinstance(prompt, list):
        yield from (("user", item) for item in prompt if isinstance(item, str))


def _items(value: list[Any] | dict[str, Any]) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _user_text(text: str) -> Iterator[tuple[str, str]]:
    if text:
        yield "user", text


def _role(message: dict[str, Any], skipped: frozenset[str]) -> str | None:
    """The role a message's text is read as, or None for one that is not read."""
    role = message.get("role", "user")
    if not isinstance(role, str) or role not in KNOWN_ROLES:
        return "user"  # unknown, misspelt or not a string: untrusted
    return None if role in skipped else role


def _messages(messages: list[Any], skipped: frozenset[str]) -> Iterator[tuple[str, str]]:
    for message in messages:
        if isinstance(message, str):
            yield from _user_text(message)
        elif isinstance(message, dict) and (role := _role(message, skipped)) is not None:
            yield from ((role, text) for text in _content_texts(message.get("content")))


def _response_items(items: list[Any], skipped: frozenset[str]) -> Iterator[tuple[str, str]]:
    for item in items:
        if isinstance(item, str):  # embeddings-style input: a list of strings
            yield from _user_text(item)
        elif not isinstance(item, dict):
            continue
        elif item.get("type") == "function_call_output":
            yield from (("tool", text) for text in _content_texts(item.get("output")))
        elif item.get("type", "message") == "message" and (role := _role(item, skipped)):
            yield from ((role, text) for text in _content_texts(item.get("content")))


def _content_texts(content: Any) -> Iterator[str]:
    """A message's text: a string, or the text of its text parts (images are not read)."""
    if isinstance(content, str):
        if content:
            yield content
    elif isinstance(content, list | dict):
        for part in _items(content):
            if isinstance(part, str):
                yield part
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                yield part["text"]
