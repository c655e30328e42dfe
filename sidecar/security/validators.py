"""The checks that tell a real secret or identifier from a look-alike of the same shape.

A pattern finds candidates; these decide. Each is a pure function of the candidate text, so the
rules can be tested one by one::

    candidate             accepted when                                  rejects, e.g.
    card number           Luhn, a card network's prefix and length,      order ids, ISBN-13,
                          4-4-4-4 / 4-6-5 grouping                       ledger ids
    IBAN                  country length, ISO 7064 mod-97 = 1            mistyped IBANs
    US SSN                area not 000/666/9xx, group not 00,            test fixtures
                          serial not 0000
    IPv4 / IPv6           octets <= 255 / the ipaddress parser;          versions, netmasks,
                          not loopback, unspecified or a netmask         MAC addresses, C++ ::
    phone                 8-15 digits; North American numbers NXX-NXX    dates, order numbers
    JWT                   header decodes to a JSON object with "alg"     dotted identifiers
    any secret            not a placeholder (EXAMPLE, xxxx, <your-...>)  documentation samples
    generic secret        high entropy, mixed characters, not a UUID     words, hashes in context
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re
from collections import Counter

import orjson

# --- payment cards ----------------------------------------------------------------------------

# (prefix range low, high, allowed lengths): the networks' published IIN ranges.
_CARD_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),  # Visa
    (51, 55, frozenset({16})),  # Mastercard
    (2221, 2720, frozenset({16})),  # Mastercard 2-series
    (34, 34, frozenset({15})),  # American Express
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset({16, 17, 18, 19})),  # Discover
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),
    (3528, 3589, frozenset({16, 17, 18, 19})),  # JCB
    (300, 305, frozenset({14, 15, 16, 17, 18, 19})),  # Diners Club
    (36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    (38, 39, frozenset({16, 17, 18, 19})),
    (62, 62, frozenset({16, 17, 18, 19})),  # UnionPay
    (2200, 2204, frozenset({16, 17, 18, 19})),  # Mir
    (50, 50, frozenset({16, 17, 18, 19})),  # Maestro
    (56, 58, frozenset({16, 17, 18, 19})),
    (67, 67, frozenset({16, 17, 18, 19})),
)
_CARD_GROUPINGS = ((4, 6, 5), (4, 6, 4))  # Amex and Diners print 4-6-5 and 4-6-4


def luhn(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_network(digits: str) -> bool:
    """Whether a card network issues numbers with this prefix and length."""
    for low, high, lengths in _CARD_RANGES:
        width = len(str(low))
        if low <= int(digits[:width]) <= high and len(digits) in lengths:
            return True
    return False


def card_grouping(groups: list[str]) -> bool:
    """As cards are printed: one block, fours (the last may be shorter), or 4-6-5 / 4-6-4."""
    sizes = tuple(len(g) for g in groups)
    if len(sizes) == 1:
        return True
    if sizes in _CARD_GROUPINGS:
        return True
    return all(size == 4 for size in sizes[:-1]) and 1 <= sizes[-1] <= 4


def credit_card(pieces: list[str]) -> bool:
    """Groups of digits and the separators between them, as split from the text."""
    groups = pieces[::2]
    digits = "".join(groups)
    return (
        13 <= len(digits) <= 19
        and len(set(pieces[1::2])) <= 1
        and card_grouping(groups)
        and len(set(digits)) > 1
        and card_network(digits)
        and luhn(digits)
    )


# --- IBAN -------------------------------------------------------------------------------------

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32,
    "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
    "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def iban_checksum(compact: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1."""
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


# --- US social security numbers ---------------------------------------------------------------

_RETIRED_SSNS = frozenset({"078051120", "219099999"})  # printed on sample cards, then voided


def us_ssn(area: str, group: str, serial: str) -> bool:
    """SSA rules: area 000, 666 and 900-999 are never issued, nor group 00 or serial 0000."""
    return (
        area not in ("000", "666")
        and area[0] != "9"
        and group != "00"
        and serial != "0000"
        and area + group + serial not in _RETIRED_SSNS
    )


# --- IP addresses -----------------------------------------------------------------------------

_NETMASK_OCTETS = frozenset({0, 128, 192, 224, 240, 248, 252, 254, 255})


def ipv4(candidate: str) -> bool:
    parts = candidate.split(".")
    if any(len(p) > 1 and p[0] == "0" for p in parts):  # 01.02.03.04 reads as a version
        return False
    octets = [int(p) for p in parts]
    if any(o > 255 for o in octets):
        return False
    if octets[0] in (0, 127):  # unspecified, loopback: no one's address
        return False
    return not (octets[0] == 255 and all(o in _NETMASK_OCTETS for o in octets))


def ipv6(candidate: str) -> bool:
    try:
        address = ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    if address.is_loopback or address.is_unspecified:
        return False
    # "dead::beef" or "std::map"-like pairs: a real address has digits and some length
    groups = [g for g in candidate.split(":") if g]
    return any(c.isdigit() for c in candidate) and (len(groups) >= 3 or len(candidate) >= 6)


# --- phone numbers ----------------------------------------------------------------------------


def nanp(digits: str) -> bool:
    """A North American number: area code and exchange both start with 2-9."""
    if len(digits) == 11 and digits[0] == "1":
        digits = digits[1:]
    return len(digits) == 10 and digits[0] >= "2" and digits[3] >= "2"


def international_phone(digits: str) -> bool:
    """E.164: a country code and at most 15 digits; +1 numbers follow the NANP rules."""
    if not 8 <= len(digits) <= 15 or digits[0] == "0":
        return False
    return nanp(digits) if digits[0] == "1" else True


# --- JWT --------------------------------------------------------------------------------------


def b64url_decode(part: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        return None


def jose_parts(part: str) -> int:
    """How many dot-separated parts a compact token with this header has: 5 when it is
    encrypted (JWE: the header names an "enc"), else 3 (JWS); 0 when ``part`` is no JOSE
    header (base64url of a JSON object naming its algorithm)."""
    raw = b64url_decode(part)
    if raw is None:
        return 0
    try:
        header = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return 0
    if not (isinstance(header, dict) and isinstance(header.get("alg"), str)):
        return 0
    return 5 if "enc" in header else 3


def jwt_header(part: str) -> bool:
    """A JOSE header: base64url of a JSON object naming its algorithm."""
    return jose_parts(part) > 0


def jwt(token: str) -> bool:
    """Header, payload and signature (JWS) or five parts (JWE), the header a JOSE header. The
    other parts are only base64url-shaped (the pattern checks that): a stream cut short or a
    signature run into the next word is still the token."""
    parts = token.split(".")
    return len(parts) in (3, 5) and len(parts[1]) >= 2 and jwt_header(parts[0])


# --- secrets in general -----------------------------------------------------------------------

# Words and characters of documentation samples and templates (looked for in lower case).
_PLACEHOLDER_WORDS = (
    "example", "xxxx", "your", "placeholder", "redacted", "dummy", "sample", "changeme",
    "replace", "insert", "fake", "***", "...", "<", ">", "00000000",
)  # fmt: skip
_RUNS = tuple(c * 6 for c in "xX*0.#-_=")


def placeholder(value: str) -> bool:
    """A documentation sample or template value, not a credential."""
    lowered = value.lower()
    return any(word in lowered for word in _PLACEHOLDER_WORDS) or any(run in value for run in _RUNS)


_N_LOG_N = [0.0] + [n * math.log2(n) for n in range(1, 257)]


def entropy(value: str) -> float:
    """Shannon entropy in bits per character: log2(L) - sum(n log2 n) / L over the counts."""
    size = len(value)
    if not size:
        return 0.0
    counts = Counter(value).values()
    total = sum(_N_LOG_N[n] if n <= 256 else n * math.log2(n) for n in counts)
    return math.log2(size) - total / size


_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_HEX = re.compile(r"[0-9a-fA-F]+")
_WORDS = re.compile(r"[A-Za-z]+(?:[_.-][A-Za-z]+)*")


_LOWER, _UPPER, _DIGITS = re.compile("[a-z]"), re.compile("[A-Z]"), re.compile("[0-9]")


def random_token(value: str) -> bool:
    """Looks machine-generated: enough length, mixed character classes, high entropy.

    Hex strings count only from 32 characters (API secrets); UUIDs, words joined by
    separators and pure numbers never do.
    """
    if len(value) < 16 or _UUID.fullmatch(value) or _WORDS.fullmatch(value):
        return False
    if "://" in value or value.startswith(("/", "./", "~")):
        return False
    if _HEX.fullmatch(value):
        good = len(value) >= 32 and not value.isdigit() and entropy(value) >= 3.0
    else:
        classes = sum(1 for cls in (_LOWER, _UPPER, _DIGITS) if cls.search(value) is not None)
        good = classes >= 2 and entropy(value) >= 3.5
    return good and not placeholder(value)
