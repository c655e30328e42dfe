"""The output detectors as data: one row per pattern, in priority order.

A pattern only proposes; :mod:`sidecar.security.validators` decides::

    type              proposed by                                  kept when
    PRIVATE_KEY       -----BEGIN ... PRIVATE KEY-----              >= 16 base64 chars follow
    JWT               eyJ....                                      header JSON has "alg"
    ANTHROPIC_KEY     sk-ant-...                                   not a placeholder
    OPENAI_KEY        sk-..., sk-proj-...                          not a placeholder
    GITHUB_TOKEN      ghp_ gho_ ghu_ ghs_ ghr_ github_pat_          not a placeholder
    SLACK_TOKEN       xoxb- xoxp- xoxa- xoxr- xoxs- xoxe- xapp-     not a placeholder
    STRIPE_KEY        sk_live_ rk_live_                            not a placeholder
    GOOGLE_API_KEY    AIza + 35                                    not a placeholder
    AWS_ACCESS_KEY    AKIA / ASIA + 16                             not a placeholder
    AWS_SECRET_KEY    40 chars after an AWS secret key name,       mixed case, entropy
                      or within 160 chars after an AWS key id
    GENERIC_SECRET    a token after secret= / token: / Bearer      high entropy, not a UUID
                      the password of scheme://user:PASSWORD@host  not a placeholder (${..})
    EMAIL             local@domain.tld                             not a file name or scp path
    IBAN              CC00 + the country's length, grouped or not  mod-97
    CREDIT_CARD       13-19 digits, spaced, dashed or dotted       Luhn, network, grouping;
                                                                 not after "Order #" or
                                                                 another id's label
    US_SSN            AAA-GG-SSSS (or unseparated after "SSN")     SSA issuing rules
    PHONE             +CC ..., (NXX) NXX-XXXX, 0NN NNNN NNNN       digit count, NANP rules
                      (or unseparated after "phone:")
    IP_ADDRESS        dotted quad; IPv6 (a trailing :port is cut)  parsers; not versions
                                                                 or section numbers

Speed (this runs on every streamed chunk): Python's engine skips ahead fast only to a literal
that opens a pattern; a lookbehind, an alternation or a character class first makes it try
every position (5-15 ns a character). So the key patterns open with their literal prefix (one
pattern per prefix), the one-character lookbehinds are checked here (:func:`_bounded`), each
row has a gate of substrings that must occur first, and the numeric and IBAN rows search the
text's :func:`shape` (capitals as ``A``, digits as ``9``) for literals: they only look inside
runs of digits and separators, or at ``AA99``.

Detectors read at most ``LOOKBACK`` characters before a match (key names, "SSN", a key id) and
at most two past the run of characters a match is made of: that is what lets the stream
redactor reach the same result chunk by chunk.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Final

from sidecar.security import validators as v
from sidecar.security.pem import HEADER as PEM_HEADER
from sidecar.security.pem import PemBody

Found = tuple[int, int, str]  # start, end, type
Finder = Callable[[str, int, int], Iterator[Found]]  # text, first start, search end

LOOKBACK: Final = 200  # the most text any detector reads before a match
_AWS_ID_WINDOW = 160  # a 40-character secret this close after an AWS key id is its secret


Gate = Callable[[str, int], bool]  # text, first start: may the detector find anything?


@dataclass(frozen=True, slots=True)
class Detector:
    types: tuple[str, ...]
    gate: tuple[str, ...]  # runs only if one of these occurs at or after the start
    find: Finder
    numeric: bool = False  # matches lie inside runs of digits and separators
    test: Gate | None = None  # a gate that is a test rather than substrings


def _chars(ranges: str) -> frozenset[str]:
    out: set[str] = set()
    for low, high in re.findall(r"(.)-(.)", ranges):
        out.update(chr(c) for c in range(ord(low), ord(high) + 1))
    out.update(re.sub(r".-.", "", ranges))
    return frozenset(out)


_ALNUM = _chars("A-Za-z0-9")
_TOKEN = _chars("A-Za-z0-9_-")


def _bounded(
    regex: re.Pattern[str], text: str, pos: int, end: int, not_after: frozenset[str]
) -> Iterator[re.Match[str]]:
    """``regex.finditer`` with the lookbehind "not right after one of ``not_after``"."""
    while (m := regex.search(text, pos, end)) is not None:
        start = m.start()
        if start > 0 and text[start - 1] in not_after:
            pos = start + 1
            continue
        yield m
        pos = m.end()


# --- provider keys: a fixed prefix, then a token --------------------------------------------


def _prefixed(type_: str, *patterns: str) -> Finder:
    """Tokens that open with a fixed prefix: each pattern starts with a literal, which lets the
    engine skip to it (an alternation at the start would not), so a choice of prefixes is a
    choice of patterns."""
    regexes = [re.compile(p) for p in patterns]

    def find(text: str, pos: int, end: int) -> Iterator[Found]:
        for regex in regexes:
            for m in _bounded(regex, text, pos, end, _TOKEN):
                token = m.group()
                if not v.placeholder(token) and len(set(token)) >= 8:
                    yield m.start(), m.end(), type_

    return find


_T = r"A-Za-z0-9_\-"  # the characters of most API tokens
_OPENAI = rf"sk-(?!ant-)(?:proj-|svcacct-|admin-|None-)?[{_T}]{{20,}}(?![{_T}])"
_ANTHROPIC = rf"sk-ant-(?:[a-z]+[0-9]*-)?[{_T}]{{20,}}(?![{_T}])"
_GITHUB = (
    r"gh[pousr]_[A-Za-z0-9]{30,255}(?![A-Za-z0-9_])",
    r"github_pat_[A-Za-z0-9_]{22,255}(?![A-Za-z0-9_])",
)
_SLACK = (r"xox[abeoprs]-[0-9]+-[A-Za-z0-9-]{8,}", r"xapp-[0-9]-[A-Za-z0-9-]{8,}")
_STRIPE = r"k_live_[A-Za-z0-9]{16,247}(?![A-Za-z0-9_])"
_GOOGLE = rf"AIza[{_T}]{{35}}(?![{_T}])"
_AWS_ID_SHAPE = r"IA[A-Z0-9]{16}(?![A-Za-z0-9])"
_AWS_ID = re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")


# --- JWT and PEM ------------------------------------------------------------------------------

_JWT = re.compile(r"e(?:yJ|yA|wo)[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_.\-]*")
_JWT_BEFORE = _TOKEN | {"."}


def _jwts(text: str, pos: int, end: int) -> Iterator[Found]:
    for m in _bounded(_JWT, text, pos, end, _JWT_BEFORE):
        token = m.group().rstrip(".")  # a sentence may end right after the token
        parts = token.split(".")
        count = v.jose_parts(parts[0])
        if count and len(parts) > count:  # ... or go on: "<header>.<payload>.<sig>.Next"
            token = ".".join(parts[:count])
        if v.jwt(token):
            yield m.start(), m.start() + len(token), "JWT"


def pem_block(text: str, header: re.Match[str]) -> int | None:
    """Where the private-key block opened by ``header`` ends; None if it holds no key."""
    body = PemBody()
    body.feed(text[header.end() :])
    end = body.finish()
    return header.end() + end if body.is_key else None


def _pems(text: str, pos: int, end: int) -> Iterator[Found]:
    for header in PEM_HEADER.finditer(text, pos, end):
        if (block_end := pem_block(text, header)) is not None:
            yield header.start(), block_end, "PRIVATE_KEY"


# --- secrets known by the name they are given -----------------------------------------------

# A value: token characters, no trailing dot (the sentence's), base64 padding allowed.
_VALUE = re.compile(
    r"[A-Za-z0-9_\-+/~][A-Za-z0-9_\-+/.~]*(?<!\.)={0,2}(?![A-Za-z0-9_\-+/~=]|\.[A-Za-z0-9_\-+/~])"
)
_VALUE_CHARS = _chars("A-Za-z0-9_-") | set("+/.~")
# Found with str.find in lower-cased text; the name around them is judged by key_before.
_ANCHORS = ("secret", "token", "pass", "pwd", "key", "auth", "credential", "bearer", "basic")
_ASSIGN = re.compile(r"[A-Za-z0-9_.\-]{0,40}?[\"']?[ \t]{0,3}(?::=|=>|[:=])[ \t]{0,3}[\"']?")
_SCHEME = re.compile(r"[ \t]+")
_SECRET_WORDS = (
    "secret", "token", "password", "passwd", "passphrase", "pwd", "apikey", "accesskey",
    "authkey", "privatekey", "credential", "signingkey", "sessionkey", "encryptionkey",
    "authorization", "accountkey",  # Azure storage: "...;AccountKey=<base64>;..."
)  # fmt: skip
_NOT_SECRET_KEYS = (
    "tokens", "count", "type", "url", "uri", "path", "file", "name", "length", "limit", "size",
    "endpoint", "policy", "hash", "id",
)  # fmt: skip
_KEY_CHARS = _chars("A-Za-z0-9") | set("_.-")
_SCHEMES = ("bearer ", "basic ")
_NAME_REACH = 100  # a name, its quotes and "=" or ":" end at most this far before the value
_LONGEST_VALUE = 4096  # an AWS session token is ~1 kB; longer runs are data, not a secret


def key_before(text: str, start: int) -> str | None:
    """The name a value at ``start`` is given (``key=``, ``"key": "``, ``Bearer ``).

    Lower-cased without separators (``AWS_SECRET_ACCESS_KEY`` -> ``awssecretaccesskey``);
    None unless the value sits in such a context under a name that says it is a secret.
    """
    if text[max(0, start - 8) : start].lower().endswith(_SCHEMES):
        return "authorization"
    j = _skip_back(text, start, "\"' \t")
    if text[max(0, j - 2) : j] in ("=>", ":="):
        j -= 2
    elif j >= 1 and text[j - 1] in ":=":
        j -= 1
    else:
        return None
    end = j = _skip_back(text, j, "\"' \t")
    floor = max(0, j - 60)
    while j > floor and text[j - 1] in _KEY_CHARS:
        j -= 1
    key = text[j:end].lower().replace("_", "").replace("-", "").replace(".", "")
    if not key or key.endswith(_NOT_SECRET_KEYS):
        return None
    return key if any(word in key for word in _SECRET_WORDS) else None


def _skip_back(text: str, j: int, chars: str, most: int = 4) -> int:
    for _ in range(most):
        if j > 0 and text[j - 1] in chars:
            j -= 1
    return j


def _lowered(text: str) -> str:
    """Lower case, keeping offsets (a few characters grow when lower-cased: those stay)."""
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(low if len(low := c.lower()) == 1 else c for c in text)


def _named_secrets(text: str, pos: int, end: int) -> Iterator[Found]:
    """Name first: a secret-sounding name, ``=`` or ``:`` (or ``Bearer``), then its value; and
    a 40-character AWS secret shortly after an AWS key id, named or not."""
    start = max(0, pos - _NAME_REACH)  # a name before ``pos`` may still name a value after it
    lowered = _lowered(text[start:end])
    values: set[int] = set()
    for anchor in _ANCHORS:
        assign = _SCHEME if anchor in ("bearer", "basic") else _ASSIGN
        scheme = assign is _SCHEME
        at = lowered.find(anchor)
        while at >= 0:
            after = start + at + len(anchor)
            if scheme or _separator_near(text, after):
                m = assign.match(text, after)
                if m is not None and m.end() >= pos:
                    values.add(m.end())
            at = lowered.find(anchor, at + 1)
    for value_at in sorted(values):
        if found := _named_value(text, value_at):
            yield found
    yield from _aws_after_ids(text, pos, end)


def _separator_near(text: str, after: int) -> bool:
    """A cheap first test for _ASSIGN: an "=" or ":" close enough after a name's anchor."""
    reach = after + 48
    return text.find("=", after, reach) >= 0 or text.find(":", after, reach) >= 0


# Values in the shapes the provider rows know are theirs to judge (and far more often found).
_PROVIDER_PREFIXES = (
    "sk-", "sk_live_", "rk_live_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_",
    "xox", "xapp-", "AIza", "AKIA", "ASIA", "eyJ",
)  # fmt: skip


def _named_value(text: str, at: int) -> Found | None:
    if at > 0 and text[at - 1] in _VALUE_CHARS:
        return None
    if text.startswith(_PROVIDER_PREFIXES, at):
        return None
    value = _VALUE.match(text, at)
    if value is None or (key := key_before(text, at)) is None:
        return None
    raw = value.group()
    if "secret" in key and ("aws" in key or "access" in key) and _aws_shaped(raw):
        return at, value.end(), "AWS_SECRET_KEY"
    if len(raw) <= _LONGEST_VALUE and v.random_token(raw.rstrip("=")):
        return at, value.end(), "GENERIC_SECRET"
    return None


_AWS_RUN = re.compile(r"[A-Za-z0-9/+]{40,}=*")
_AWS_RUN_CHARS = _ALNUM | set("/+")


def _aws_shaped(value: str) -> bool:
    """40 characters of base64 with both cases, random-looking, not the documentation's."""
    return (
        len(value) == 40
        and _AWS_RUN.fullmatch(value) is not None
        and "=" not in value
        and value.lower() != value != value.upper()
        and not v.placeholder(value)
        and v.entropy(value) >= 4.0
    )


_AWS_ID_PREFIXES = ("AKIA", "ASIA")


def _aws_after_ids(text: str, pos: int, end: int) -> Iterator[Found]:
    if _AWS_ID_PREFIXES[0] not in text and _AWS_ID_PREFIXES[1] not in text:
        return
    for key_id in _AWS_ID.finditer(text, max(0, pos - _AWS_ID_WINDOW - 20), end):
        # A run starting inside the window shows at least 42 characters before this bound: a
        # longer one is not cut down to a 40-character look-alike.
        bound = min(end, key_id.end() + _AWS_ID_WINDOW + 42)
        for m in _AWS_RUN.finditer(text, max(pos, key_id.end()), bound):
            if m.start() > key_id.end() + _AWS_ID_WINDOW:
                break
            if (m.start() == 0 or text[m.start() - 1] not in _AWS_RUN_CHARS) and _aws_shaped(
                m.group()
            ):
                yield m.start(), m.end(), "AWS_SECRET_KEY"


# --- personal data ----------------------------------------------------------------------------

# A password in a URL's user info: scheme://user:PASSWORD@host (database and broker URLs). The
# user part is at most 64 characters back from the password, inside LOOKBACK.
_URL_PASSWORD = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,20}://[^\s:/?#@]{0,64}:([^\s/?#@]{1,128})@")
_PLACEHOLDER_OPENERS = ("${", "$", "<", "{", "%(")


def _url_passwords(text: str, pos: int, end: int) -> Iterator[Found]:
    at = text.find("://", pos, end)
    while at >= 0:
        scheme = at
        while scheme > max(0, at - 21) and (
            text[scheme - 1].isalnum() or text[scheme - 1] in "+.-"
        ):
            scheme -= 1
        found = _URL_PASSWORD.match(text, scheme)
        if found is not None and found.start(1) >= pos and not _placeholder(found.group(1)):
            yield found.start(1), found.end(1), "GENERIC_SECRET"
        at = text.find("://", at + 3, end)


def _placeholder(value: str) -> bool:
    """``${DB_PASSWORD}``, ``<password>``, ``****``: a template's blank, not a secret."""
    return value.startswith(_PLACEHOLDER_OPENERS) or set(value) <= set("*xX.")


_EMAIL_LOCAL = _chars("A-Za-z0-9") | set("._%+-")
# Labels of letters and digits of any script (an internationalised domain, "münchen.de"), so
# an address is redacted whole rather than cut where its first accented letter is.
_EMAIL_DOMAIN = re.compile(
    r"(?:[^\W_](?:(?:[^\W_]|-){0,61}[^\W_])?\.)+[^\W\d_]{2,24}"
    r"(?![^\W_]|-|\.[^\W_])"
)
_FILE_EXTENSIONS = frozenset(
    (
        *("png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "pdf"),
        *("js", "ts", "css", "py", "json", "yaml", "yml", "txt", "html", "htm", "xml"),
    )
)


def _emails(text: str, pos: int, end: int) -> Iterator[Found]:
    at = text.find("@", pos, end)
    while at >= 0:
        start = at
        while start > max(0, at - 64) and _local_char(text, start - 1):
            start -= 1
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if domain is not None and _email_ok(text, start, at, domain.end()) and start >= pos:
            yield start, domain.end(), "EMAIL"
        at = text.find("@", at + 1, end)


def _local_char(text: str, i: int) -> bool:
    """Whether ``text[i]`` can be part of an address's local part: ASCII letters, digits and
    ``._%+-``, a letter or digit of another script ("jürgen"), or an apostrophe inside a name
    ("o'brien", not the quote before "'ana@...")."""
    char = text[i]
    if char in _EMAIL_LOCAL:
        return True
    if char == "'":
        return 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
    return not char.isascii() and char.isalnum()


def _email_ok(text: str, start: int, at: int, end: int) -> bool:
    local = text[start:at]
    if not local or not text[start].isalnum() or local.endswith(".") or ".." in text[start:end]:
        return False
    if start > 0 and _local_char(text, start - 1):
        return False  # longer than an address's local part
    if text[start:end].rsplit(".", 1)[1].lower() in _FILE_EXTENSIONS:
        return False  # image@2x.png
    return not (text[end : end + 1] == ":" and text[end + 1 : end + 2].strip())  # git@host:repo


# The text's shape: capitals become A, digits 9, the separators of numbers stay, the rest _.
# A literal search in it (AA99 for an IBAN, runs of 9s for numbers) is far faster than a
# pattern opening with a character class over the text.
_SHAPE = str.maketrans(
    {chr(c): "A" if chr(c).isupper() else "9" if chr(c).isdigit() else "_" for c in range(128)}
    | {c: c for c in " ().-+"}
)


@functools.lru_cache(maxsize=8)
def shape(text: str) -> str:
    return text.translate(_SHAPE)


_IBAN = re.compile(r"[A-Z]{2}[0-9]{2}(?:[ .\-]?[A-Z0-9]){11,34}")
_IBAN_JOINERS = " .-"  # groups of four are written apart with one of these, the same throughout


def _ibans(text: str, pos: int, end: int) -> Iterator[Found]:
    outline = shape(text)
    at = outline.find("AA99", pos, end)
    while at >= 0:
        m = _IBAN.match(text, at)
        iban_end = None
        if m is not None and (at == 0 or text[at - 1] not in _ALNUM):
            iban_end = _iban_end(text, at, m.end())
        if iban_end is not None:
            yield at, iban_end, "IBAN"
        at = outline.find("AA99", iban_end or at + 1, end)


def _iban_end(text: str, start: int, limit: int) -> int | None:
    """End of the IBAN at ``start``: as many characters as its country's IBANs have, in one
    block or in groups of four (apart by spaces, dots or dashes); None if there is none or its
    checksum fails."""
    length = v.IBAN_LENGTHS.get(text[start : start + 2])
    if length is None:
        return None
    joiner = text[start + 4] if text[start + 4 : start + 5] in tuple(_IBAN_JOINERS) else " "
    chars: list[str] = []
    end = start
    while end < limit and len(chars) < length:
        if text[end] != joiner:
            chars.append(text[end])
        end += 1
    if len(chars) < length:
        return None
    groups = text[start:end].split(joiner)
    if len(groups) > 1 and not (all(len(g) == 4 for g in groups[:-1]) and len(groups[-1]) <= 4):
        return None
    if text[end : end + 1].isalnum():
        return None  # the number goes on: not this country's length
    return end if v.iban_checksum("".join(chars)) else None


# Numeric patterns: they consume only digits and " ().-+", the characters of a numeric run,
# found in the text's shape from a digit, then back over an opening "(" or "+".
_NUMERIC_RUN = re.compile(r"9[9 ().\-+]{5,}9")
_NUM_BEFORE = _chars("A-Za-z0-9") | set("_.+-")
_NUM_AFTER = r"(?![A-Za-z0-9_\-]|\.[0-9])"
_GROUP_BEFORE = re.compile(r"(?<![A-Za-z0-9])[A-Z0-9]*[0-9][A-Z0-9]* $")


def _labelled(label: re.Pattern[str], text: str, start: int, reach: int) -> bool:
    """Whether ``label`` is found in the ``reach`` characters before ``start`` (the labels that
    end in ``$`` must end right there): "SSN", "Order #", "phone:", "Chapter" before a number.
    ``reach`` stays within LOOKBACK, so a stream reads the same label."""
    return label.search(text, max(0, start - reach), start) is not None


def continues_number(text: str, start: int) -> bool:
    """Whether a spaced number at ``start`` is the tail of a longer one ("GB38 7686 0454 ..."),
    i.e. follows a group of digits and capitals and one space."""
    return _GROUP_BEFORE.search(text, max(0, start - 12), start) is not None


_CARD = re.compile(r"[0-9]{4}(?:[ \-.]?[0-9]){9,15}" + _NUM_AFTER)
_CARD_PIECES = re.compile(r"([ \-.])")


# A number labelled as some other identifier ("Order #4532015112830366", "reference
# 5876731232411218") is that identifier, however Luhn-valid: one in ten random numbers is.
_ID_LABEL = re.compile(
    r"(?i)(?:\b(?:order|invoice|tracking|shipment|parcel|reference|ref|confirmation|booking|"
    r"reservation|ticket|receipt|serial|sku|isbn|transaction|txn|case|claim|member|customer)"
    r"(?: (?:number|no\.?|id|code))?[ \t]*[:#]?[ \t]*|#)$"
)


def _cards(text: str, pos: int, end: int) -> Iterator[Found]:
    for m in _bounded(_CARD, text, pos, end, _NUM_BEFORE):
        pieces = _CARD_PIECES.split(m.group())
        if len(pieces) > 1 and pieces[1] == " " and continues_number(text, m.start()):
            continue
        if _labelled(_ID_LABEL, text, m.start(), 40):
            continue
        # The pattern may run on into the next number ("4111 ... 1111 2024"): try shorter.
        for keep in range(len(pieces), 0, -2):
            if v.credit_card(pieces[:keep]):
                yield m.start(), m.start() + sum(map(len, pieces[:keep])), "CREDIT_CARD"
                break


_SSN = re.compile(r"([0-9]{3})([\- ]?)([0-9]{2})\2([0-9]{4})" + _NUM_AFTER)
_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|social security(?: number| no\.?)?)\b")


def _ssns(text: str, pos: int, end: int) -> Iterator[Found]:
    for m in _bounded(_SSN, text, pos, end, _NUM_BEFORE):
        if m.group(2) != "-" and not _labelled(_SSN_CONTEXT, text, m.start(), 32):
            continue  # 123 45 6789 or 123456789 only where the text says it is an SSN
        if v.us_ssn(m.group(1), m.group(3), m.group(4)):
            yield m.start(), m.end(), "US_SSN"


_PHONE_INTL = re.compile(
    r"\+[1-9][0-9]{0,2}(?:[ .\-]?\(0?[0-9]{1,4}\))?(?:[ .\-]?[0-9]{1,7}){1,6}"
    r"(?![A-Za-z0-9_]|[.\-][0-9])"
)
_PHONE_NANP = (
    re.compile(r"\([0-9]{3}\) ?[0-9]{3}[ .\-][0-9]{4}" + _NUM_AFTER),  # (415) 555-2671
    re.compile(r"[0-9]{3}([ .\-])[0-9]{3}\1[0-9]{4}" + _NUM_AFTER),  # 415-555-2671
    re.compile(r"1([ .\-])[0-9]{3}\1[0-9]{3}\1[0-9]{4}" + _NUM_AFTER),  # 1-800-555-0199
)
# National numbers with a trunk 0: 020 7946 0958, (020) 7946 0958, 07700 900123, 030 1234567,
# 06 84 42 10 25.
_PHONE_TRUNK = re.compile(
    r"(?:0[0-9]{1,4}|\(0[0-9]{1,4}\))([ .\-])[0-9]{2,8}(?:\1[0-9]{2,8}){0,3}"
    r"(?![A-Za-z0-9_\-:/]|\.[0-9])"
)
# Digits run together are a phone number only where the text calls them one ("phone:
# 4155552671", "tel. 02079460958"); anywhere else ten digits are an id, an amount, a timestamp.
_PHONE_RUN = re.compile(r"[0-9]{10,11}" + _NUM_AFTER)
_PHONE_LABEL = re.compile(
    r"(?i)\b(?:phone|telephone|tel|mobile|cell|fax|call|whatsapp)"
    r"(?: (?:no\.?|number|#))?[ \t]*[:.#]?[ \t]*$"
)
_DIGIT = re.compile(r"[0-9]")
_TRUNK_ZERO = re.compile(r"\(0\)")


def _digits(number: str) -> str:
    return "".join(_DIGIT.findall(number))


def _phones(text: str, pos: int, end: int) -> Iterator[Found]:
    for m in _bounded(_PHONE_INTL, text, pos, end, _ALNUM | {"_", "+"}):
        if (length := _international_length(m.group())) is not None:
            yield m.start(), m.start() + length, "PHONE"
    for regex in _PHONE_NANP:
        for m in _bounded(regex, text, pos, end, _NUM_BEFORE):
            spaced = m.re is not _PHONE_NANP[0] and m.group(1) == " "
            if spaced and continues_number(text, m.start()):
                continue
            if v.nanp(_digits(m.group())):
                yield _country_one(text, m.start(), m.re is _PHONE_NANP[0]), m.end(), "PHONE"
    for m in _bounded(_PHONE_TRUNK, text, pos, end, _NUM_BEFORE):
        if 10 <= len(_digits(m.group())) <= 12 and not continues_number(text, m.start()):
            yield m.start(), m.end(), "PHONE"
    for m in _bounded(_PHONE_RUN, text, pos, end, _NUM_BEFORE):
        number = m.group()
        national = number[0] == "0" or v.nanp(number)
        if national and _labelled(_PHONE_LABEL, text, m.start(), 24):
            yield m.start(), m.end(), "PHONE"


_GROUP_END = re.compile(r"[0-9](?=[ .\-]|$)")


def _international_length(number: str) -> int | None:
    """The length of the valid number ``number`` starts with: the pattern may have run on into
    the next number ("+1 415 555 2671 5 pm"), so shorter ends are tried too."""
    for end in sorted((m.end() for m in _GROUP_END.finditer(number)), reverse=True):
        digits = _digits(_TRUNK_ZERO.sub("", number[:end]))
        if len(digits) < 8:
            return None
        if v.international_phone(digits):
            return end
    return None


def _country_one(text: str, start: int, parenthesised: bool) -> int:
    """Where a North American number starts if a "1 " country code precedes its "(415)"."""
    if (
        parenthesised
        and text[max(0, start - 2) : start] in ("1 ", "1-", "1.")
        and (start < 3 or text[start - 3] not in _NUM_BEFORE)
    ):
        return start - 2
    return start


_IPV4 = re.compile(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}" + _NUM_AFTER)
# A dotted quad that numbers a version or a part of a document ("Chapter 3.2.1.4", "§ 4.1.2.3")
_VERSION_CONTEXT = re.compile(
    r"(?i)(?:\b(?:version|release|build|ver\.?|v|chapter|ch\.|section|sec\.|clause|article|"
    r"art\.|paragraph|para\.|figure|fig\.|table|step|appendix|exercise)|\u00a7)\s*$"
)


def _ipv4s(text: str, pos: int, end: int) -> Iterator[Found]:
    for m in _bounded(_IPV4, text, pos, end, _ALNUM | {"_", ".", "-"}):
        if v.ipv4(m.group()) and not _labelled(_VERSION_CONTEXT, text, m.start(), 14):
            yield m.start(), m.end(), "IP_ADDRESS"


_IPV6 = re.compile(
    r"(?:[0-9A-Fa-f]{1,4}|:)(?::[0-9A-Fa-f]{0,4}){1,7}(?::[0-9]{1,5})?(?:\.[0-9]{1,3}){0,3}"
    r"(?![A-Za-z0-9_:])"
)
_IPV6_PAIR = re.compile(r":[0-9A-Fa-f]{0,4}:")  # two colons close together: where to look
_IPV6_CHARS = _chars("0-9A-Fa-f") | {":"}
_IPV6_BEFORE = _ALNUM | {"_", ":", "."}


def _ipv6s(text: str, pos: int, end: int) -> Iterator[Found]:
    """From each pair of nearby colons back to the start of its run of hex digits and colons,
    then the address pattern from there (a pattern that opens with either would be slow)."""
    search_from = pos
    while (pair := _IPV6_PAIR.search(text, search_from, end)) is not None:
        start = pair.start()
        while start > pos and text[start - 1] in _IPV6_CHARS and pair.start() - start < 48:
            start -= 1
        m = _IPV6.match(text, start)
        if m is None or (start > 0 and text[start - 1] in _IPV6_BEFORE):
            search_from = pair.end()
            continue
        search_from = m.end()
        candidate = m.group()
        if candidate.count(":") < 2:
            continue
        if not v.ipv6(candidate):
            candidate = candidate.rsplit(":", 1)[0]  # "address:port" written without brackets
        if v.ipv6(candidate):
            yield m.start(), m.start() + len(candidate), "IP_ADDRESS"


# --- the table --------------------------------------------------------------------------------


def _named_gate(text: str, pos: int) -> bool:
    """A secret-sounding name with ``=`` or ``:`` near, a Bearer/Basic scheme, or a key id."""
    if _AWS_ID_PREFIXES[0] in text or _AWS_ID_PREFIXES[1] in text:
        return True
    region = text[max(0, pos - _NAME_REACH) :]
    lowered = region.lower()
    if "bearer" in lowered or "basic" in lowered:
        return True
    if "=" not in region and ":" not in region:
        return False
    return any(anchor in lowered for anchor in _ANCHORS)


DETECTORS: tuple[Detector, ...] = (
    Detector(("PRIVATE_KEY",), ("-----BEGIN",), _pems),
    Detector(("JWT",), ("eyJ", "eyA", "ewo"), _jwts),
    Detector(("ANTHROPIC_KEY",), ("sk-ant-",), _prefixed("ANTHROPIC_KEY", _ANTHROPIC)),
    Detector(("OPENAI_KEY",), ("sk-",), _prefixed("OPENAI_KEY", _OPENAI)),
    Detector(("GITHUB_TOKEN",), ("gh", "github_pat_"), _prefixed("GITHUB_TOKEN", *_GITHUB)),
    Detector(("SLACK_TOKEN",), ("xox", "xapp-"), _prefixed("SLACK_TOKEN", *_SLACK)),
    Detector(("STRIPE_KEY",), ("k_live_",), _prefixed("STRIPE_KEY", "s" + _STRIPE, "r" + _STRIPE)),
    Detector(("GOOGLE_API_KEY",), ("AIza",), _prefixed("GOOGLE_API_KEY", _GOOGLE)),
    Detector(
        ("AWS_ACCESS_KEY",),
        ("AKIA", "ASIA"),
        _prefixed("AWS_ACCESS_KEY", "AK" + _AWS_ID_SHAPE, "AS" + _AWS_ID_SHAPE),
    ),
    Detector(("AWS_SECRET_KEY", "GENERIC_SECRET"), (), _named_secrets, test=_named_gate),
    Detector(("GENERIC_SECRET",), ("://",), _url_passwords),
    Detector(("EMAIL",), ("@",), _emails),
    Detector(("IBAN",), (), _ibans),
    Detector(("CREDIT_CARD",), (), _cards, numeric=True),
    Detector(("US_SSN",), (), _ssns, numeric=True),
    Detector(("PHONE",), (), _phones, numeric=True),
    Detector(("IP_ADDRESS",), (), _ipv4s, numeric=True),
    Detector(("IP_ADDRESS",), (":",), _ipv6s),
)
TYPES: tuple[str, ...] = tuple(dict.fromkeys(t for d in DETECTORS for t in d.types))


def _numeric_runs(text: str, pos: int) -> list[tuple[int, int]]:
    runs = []
    for m in _NUMERIC_RUN.finditer(shape(text), pos):
        start = m.start()
        while start > pos and text[start - 1] in "(+":
            start -= 1
        runs.append((start, m.end()))
    return runs


@functools.cache
def _plan(types: frozenset[str] | None) -> tuple[Detector, ...]:
    """The detectors for ``types`` (None: all)."""
    return tuple(d for d in DETECTORS if types is None or not types.isdisjoint(d.types))


def candidates(text: str, pos: int, types: frozenset[str] | None) -> list[Found]:
    """Every validated match starting at or after ``pos``, overlapping ones included."""
    end = len(text)
    runs: list[tuple[int, int]] | None = None
    found: list[Found] = []
    for d in _plan(types):
        if d.gate:
            for literal in d.gate:
                if text.find(literal, pos) >= 0:
                    break
            else:
                continue
        if d.numeric:
            if runs is None:
                runs = _numeric_runs(text, pos)
            for run_start, run_end in runs:  # two characters past the run for lookaheads
                found.extend(d.find(text, run_start, min(end, run_end + 2)))
        elif d.test is None or d.test(text, pos):
            found.extend(d.find(text, pos, end))
    if types is not None:
        found = [f for f in found if f[2] in types]
    return found
