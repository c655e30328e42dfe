"""Text normalisation: undo the tricks that hide an attack from the checks that read the text.

What is undone, in order, and the signal each step records (``Normalized.signals``)::

    step              undoes                                                   signal
    hidden carriers   Unicode tag characters (ASCII smuggled as U+E0020..7E),  tag_chars
                      variation selectors carrying bytes, invisible-operator   variation_selectors
                      bit strings: each decoded into a payload, then removed   invisible
    invisibles        zero-width, bidi controls, soft hyphen                   invisible
    NFKC              fullwidth, mathematical and circled letters, ligatures
    combining marks   stacked diacritics ("Zalgo")                             combining
    homoglyphs        Cyrillic/Greek/IPA look-alikes of Latin letters, folded  homoglyphs
                      only where they pose as Latin (Russian stays Russian)
    markup            emphasis and inline tags inside words, letters spaced    markup
                      out one by one ("i g n o r e")
    whitespace        runs of spaces and blank lines
    payloads          base64/base32, hex, binary, percent-encoding, rot13,     one per kind, e.g.
                      atbash, Caesar, Morse, Braille, leetspeak, letters       base64, rot13, leet,
                      marked in parentheses ("(t)errible"): decoded copies     marked_letters
                      kept apart from the text

Percent-encoding counts as ``percent`` only when it escapes a letter or digit ("%69%67%6E");
an address escaping its punctuation ("is%3Aopen") is decoded too but signalled as
``url_escapes``, which weighs nothing.

The normalised text keeps its case; a lower-cased copy is made once (``lowered``) and shared by
the checks. Decoding is bounded
(a few candidates, a few kilobytes each) and keeps a candidate only when it decodes to readable
text, so hashes, UUIDs and binary blobs are not reported.

Speed: this runs on every prompt, and a Python regex costs 10-40 µs per kilobyte, so no step
runs a regex over the text unless a cheaper test says it may find something: ``in`` tests, a
character-class "shape" of the text made by one ``str.translate``, and for non-ASCII text one
numpy table look-up that says which kinds of special character are present at all.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np

MAX_PAYLOADS = 6  # decoded copies kept per text
MAX_CANDIDATES = 8  # candidates tried per encoding
MAX_PAYLOAD_CHARS = 4096  # longest candidate decoded


@dataclass(frozen=True, slots=True)
class Normalized:
    """The normalised text, the payloads decoded from it, and what was undone to get there."""

    text: str
    payloads: tuple[str, ...] = ()
    signals: dict[str, int] = field(default_factory=dict)
    other_scripts: bool = False  # letters beyond Latin and punctuation (Greek, Cyrillic, CJK...)
    lowered: str | None = None  # ``text.lower()``, made once here (the checks all need it)

    @property
    def inspected(self) -> str:
        """Everything the checks should read: the text, then each decoded payload."""
        if not self.payloads:
            return self.text
        return "\n".join((self.text, *self.payloads))

    @property
    def inspected_lower(self) -> str:
        """``inspected.lower()``, reusing the lower-cased text."""
        lowered = self.text.lower() if self.lowered is None else self.lowered
        if not self.payloads:
            return lowered
        return "\n".join((lowered, *(payload.lower() for payload in self.payloads)))


# -- character tables ----------------------------------------------------------------------------

# Look-alikes of Latin letters (the common Unicode confusables).
_CONFUSABLES = {
    # Cyrillic
    "\u0430": "a", "\u0441": "c", "\u0435": "e", "\u04bb": "h", "\u0456": "i", "\u0458": "j",
    "\u043e": "o", "\u0440": "p", "\u0455": "s", "\u0445": "x", "\u0443": "y", "\u04cf": "l",
    "\u0410": "A", "\u0412": "B", "\u0421": "C", "\u0415": "E", "\u041d": "H", "\u0406": "I",
    "\u0408": "J", "\u041a": "K", "\u041c": "M", "\u041e": "O", "\u0420": "P", "\u0405": "S",
    "\u0422": "T", "\u0425": "X", "\u0423": "Y",
    # Greek
    "\u03bf": "o", "\u03bd": "v", "\u03c1": "p", "\u03c5": "u", "\u03ba": "k", "\u03b9": "i",
    "\u0391": "A", "\u0392": "B", "\u0395": "E", "\u0396": "Z", "\u0397": "H", "\u0399": "I",
    "\u039a": "K", "\u039c": "M", "\u039d": "N", "\u039f": "O", "\u03a1": "P", "\u03a4": "T",
    "\u03a5": "Y", "\u03a7": "X",
    # Latin letters that pass for others (IPA, dotless)
    "\u0251": "a", "\u0261": "g", "\u0131": "i", "\u0237": "j", "\u028f": "y", "\u0269": "i",
}  # fmt: skip
_FOLD = str.maketrans(_CONFUSABLES)
_BRAILLE_LETTERS = str.maketrans(
    dict(zip("⠁⠃⠉⠙⠑⠋⠛⠓⠊⠚⠅⠇⠍⠝⠕⠏⠟⠗⠎⠞⠥⠧⠺⠭⠽⠵⠀", "abcdefghijklmnopqrstuvwxyz ", strict=True))
)

# Kinds of special character, as bits in a table indexed by code point (the BMP; above it only
# tag characters and supplementary variation selectors matter, tested by range).
_INVISIBLE_BIT, _COMBINING_BIT, _CONFUSABLE_BIT, _NATIVE_BIT = 1, 2, 4, 8
_SELECTOR_BIT, _BRAILLE_BIT, _BITS_BIT, _OTHER_BIT = 16, 32, 64, 128
_LATIN_BIT = 256  # Latin letters beyond ASCII (accented, Turkic, ...), look-alikes aside
_KINDS = np.zeros(0x10000, dtype=np.uint16)
for _first, _last, _bit in (
    (0x00AD, 0x00AD, _INVISIBLE_BIT),
    (0x180E, 0x180E, _INVISIBLE_BIT),
    (0x200B, 0x200F, _INVISIBLE_BIT),
    (0x202A, 0x202E, _INVISIBLE_BIT),
    (0x2060, 0x2064, _INVISIBLE_BIT),
    (0x2066, 0x2069, _INVISIBLE_BIT),
    (0xFEFF, 0xFEFF, _INVISIBLE_BIT),
    (0x2062, 0x2062, _BITS_BIT),
    (0x2064, 0x2064, _BITS_BIT),
    (0x0300, 0x036F, _COMBINING_BIT),
    (0x0483, 0x0489, _COMBINING_BIT),
    (0x1AB0, 0x1AFF, _COMBINING_BIT),
    (0x1DC0, 0x1DFF, _COMBINING_BIT),
    (0x20D0, 0x20FF, _COMBINING_BIT),
    (0x0370, 0x03FF, _NATIVE_BIT),
    (0x0400, 0x04FF, _NATIVE_BIT),
    (0xFE00, 0xFE0D, _SELECTOR_BIT),  # VS15/VS16 (emoji presentation) are ordinary
    (0x2800, 0x28FF, _BRAILLE_BIT),
    (0x0370, 0x1FFF, _OTHER_BIT),  # letters of other scripts, Greek up (not punctuation)
    (0x3000, 0xFFFF, _OTHER_BIT),
):
    _KINDS[_first : _last + 1] |= _bit
for _code in range(0x00C0, 0x0250):
    if chr(_code).isalpha() and chr(_code) not in _CONFUSABLES:
        _KINDS[_code] |= _LATIN_BIT
for _char in _CONFUSABLES:
    _KINDS[ord(_char)] |= _CONFUSABLE_BIT

_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_INVISIBLE_IN_LATIN = re.compile(
    f"(?<=[A-Za-z0-9]){_INVISIBLE.pattern}+|{_INVISIBLE.pattern}+(?=[A-Za-z0-9])"
)
_COMBINING = re.compile("[\u0300-\u036f\u0483-\u0489\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff]+")
_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_FLAG_TAGS = re.compile("\U0001f3f4[\U000e0061-\U000e007a]+\U000e007f")  # subdivision flags
_VARIATION = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]+")
_BITS = re.compile("[\u2062\u2064\u200b]{7,}")
_BRAILLE = re.compile("[\u2800-\u28ff][\u2800-\u28ff ]{3,}")
_MIXED_WORD = re.compile(f"[a-zA-Z][{''.join(_CONFUSABLES)}]|[{''.join(_CONFUSABLES)}][a-zA-Z]")
_WORD = re.compile(r"[^\W\d_]+")

# -- markup and whitespace -----------------------------------------------------------------------

# The "shape" of ASCII text: letters a, digits 0, whitespace kept, everything else "."
_SHAPE = str.maketrans(
    {
        c: "a" if c.isalpha() else "0" if c.isdigit() else c if c.isspace() else "."
        for c in map(chr, range(128))
    }
)
_EMPHASIS_MARKS = "*~`"  # markdown emphasis and code marks: removed ("_" and "|" mean things)
_INLINE_TAGS = re.compile(
    r"</?(?:b|i|u|s|em|strong|span|mark|sup|sub|small|font|del|ins)\b[^>]{0,80}>", re.I
)
# Letters spaced out one by one, words apart by two to four spaces: "i g n o r e   a l l"
_SPACED_LETTERS = re.compile(r"(?<![^\W_])(?:[^\W\d_](?:[ .\-]| {2,4})){3,}[^\W\d_](?![^\W_])")
_SPACED_SEPARATORS = re.compile(r" {2,4}|[ .\-]")

# -- payloads ------------------------------------------------------------------------------------

_HEX_SHAPE = str.maketrans(
    {
        c: "h" if c in "0123456789abcdefABCDEF" else c if c in " ,:" else "."
        for c in map(chr, range(128))
    }
)
_HEX_RUNS = (" hh hh hh hh ", "hh:hh:hh:hh", "hh,hh,hh,hh", " hhhhhhhh hhhhhhhh hhhhhhhh ")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{16,}={0,2}")
_BASE32 = re.compile(r"[A-Z2-7]+=*")
_HEX = re.compile(r"(?:(?:0x|\\x)?[0-9A-Fa-f]{2}[ :,]?){8,}")
_BINARY = re.compile(r"(?:[01]{8}[ ,]?){4,}")
_PERCENT = re.compile(r"\S*(?:%[0-9A-Fa-f]{2}\S*){3,}")
_ESCAPED_ALNUM = re.compile(r"%(?:3[0-9]|[46][1-9A-Fa-f]|[57][0-9Aa])")  # %30-%39, %41-%5A, %61-%7A
_MORSE = re.compile(r"(?:[.\-]{1,7}[ /]+){5,}[.\-]{1,7}")
# Words run together as a constant's name: "SYSTEM_CMD::REVEAL_YOUR_SYSTEM_PROMPT"
_CONSTANT_NAME = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+){2,}\b")
_NAME_CHARS = frozenset("0123456789_")
# Characters written as escapes ("\x6F", "\u0049"), as in a string literal
_ESCAPES = re.compile(r"\\(?:x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4}))")
# One letter in parentheses inside a word, the message spelled out ("(t)errible (e)leven ...",
# "( )" a space): the mark must touch a word, so "(a) first, (b) second" lists are not read.
# A letter or a space in parentheses; whether it marks a word's letter is read from its
# neighbours in Python (a regex starting with a lookbehind is tried at every character: 160 µs
# over 10 kB of documentation, against 5 µs for this one, which starts with a literal "(").
_PARENTHESISED = re.compile(r"\(([A-Za-z ])\)")
_LEET_WORD = re.compile(r"[a-z0-9@$]*[013457@$][a-z0-9@$]*", re.I)
_HEXISH = re.compile(r"[0-9a-fA-F]+")
_LEET = str.maketrans("013457@$", "oieastas")
_LOWER = "abcdefghijklmnopqrstuvwxyz"


def _shift(by: int) -> dict[int, int]:
    moved = _LOWER[by:] + _LOWER[:by]
    return str.maketrans(_LOWER + _LOWER.upper(), moved + moved.upper())


_ATBASH = str.maketrans(_LOWER + _LOWER.upper(), _LOWER[::-1] + _LOWER.upper()[::-1])
_SHIFTS = [_shift(by) for by in range(26)]
# Common English words, plain and after each cipher: a text holding more of the enciphered forms
# than of the plain ones is that cipher applied to English.
_COMMON = (" the ", " and ", " you ", " is ", " to ", " your ")
_CIPHERS = {
    "rot13": (_SHIFTS[13], tuple(w.translate(_SHIFTS[13]) for w in _COMMON)),
    "atbash": (_ATBASH, tuple(w.translate(_ATBASH) for w in _COMMON)),
}
# The same words written backwards (" eht ", " dna "...): a text reversed to hide it. Not " si "
# (Spanish and Italian "if"), and two different ones at least ("DNA" alone is a word).
_REVERSED = tuple(w[::-1] for w in _COMMON if w != " is ")
_MORSE_CODE = {
    ".-": "a", "-...": "b", "-.-.": "c", "-..": "d", ".": "e", "..-.": "f", "--.": "g",
    "....": "h", "..": "i", ".---": "j", "-.-": "k", ".-..": "l", "--": "m", "-.": "n",
    "---": "o", ".--.": "p", "--.-": "q", ".-.": "r", "...": "s", "-": "t", "..-": "u",
    "...-": "v", ".--": "w", "-..-": "x", "-.--": "y", "--..": "z", "-----": "0",
    ".----": "1", "..---": "2", "...--": "3", "....-": "4", ".....": "5", "-....": "6",
    "--...": "7", "---..": "8", "----.": "9",
}  # fmt: skip


def normalize(text: str) -> Normalized:
    signals: dict[str, int] = {}
    payloads: list[str] = []
    other_scripts = False
    if not text.isascii():
        text, other_scripts = _unicode(text, signals, payloads)
    shape = _ascii(text).translate(_SHAPE)
    text = _whitespace(_markup(text, shape, signals))
    lowered = text.lower()
    _decode_payloads(text, lowered, shape, signals, payloads)
    return Normalized(text, tuple(payloads), signals, other_scripts, lowered)


def _ascii(text: str) -> str:
    """The text with non-ASCII characters as "?": ``str.translate`` is fast on ASCII only."""
    return text if text.isascii() else text.encode("ascii", "replace").decode("ascii")


def _whitespace(text: str) -> str:
    """Runs of blanks become one space and blank-line runs one blank line; lines stay lines.

    Over the UTF-8 bytes, where every blank is ASCII and no byte of a multi-byte character is:
    ``bytes.split()`` splits on ASCII blanks only (str's would split on Unicode spaces too), and
    splitting each line and joining its words is one C loop per line, where chained
    ``replace`` calls took several passes over an indented text (10 kB of documentation: 249
    -> 133 µs; a regex would cost ten times more).
    """
    raw = text.encode("utf-8", "surrogatepass")
    if b"\r" in raw:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    raw = b"\n".join([b" ".join(line.split()) for line in raw.split(b"\n")])
    while b"\n\n\n" in raw:
        raw = raw.replace(b"\n\n\n", b"\n\n")
    return raw.decode("utf-8", "surrogatepass").strip()


# -- Unicode -------------------------------------------------------------------------------------


def _unicode(text: str, signals: dict[str, int], payloads: list[str]) -> tuple[str, bool]:
    """The Unicode steps, and whether the text has letters of a script from Greek up
    (punctuation and symbols aside): rules for those scripts are skipped for Latin text."""
    codes = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    top = int(codes.max())
    kinds = _KINDS[np.minimum(codes, 0xFFFF)] if top > 0xFFFF else _KINDS[codes]
    present = int(np.bitwise_or.reduce(kinds))
    other_scripts = bool(present & _OTHER_BIT) or top > 0xFFFF
    if top >= 0xE0000:
        text = _astral_carriers(text, signals, payloads)
    if present & _SELECTOR_BIT:
        text = _selectors(text, signals, payloads)
    if present & _BITS_BIT:
        bits = _BITS.findall(text)
        if bits:
            _keep(payloads, signals, "bits_payload", " ".join(map(_bits_text, bits)))
    if present & _INVISIBLE_BIT:
        # Counted only where they touch Latin letters or digits ("ig\u200bnore"): Khmer, Thai and
        # Burmese part their words with zero-width spaces, Indic scripts and Persian spell with
        # ZWJ and ZWNJ. (A soft hyphen inside a Latin word counts: it hides a word as well.)
        hiding = sum(map(len, _INVISIBLE_IN_LATIN.findall(text)))
        text = _INVISIBLE.sub("", text)
        if hiding:
            signals["invisible"] = signals.get("invisible", 0) + hiding
    if present & _COMBINING_BIT:
        # Decompose first so marks composed onto letters ("ȧ") come off too.
        text = unicodedata.normalize("NFKD", text)
        stacked = sum(len(run) for run in _COMBINING.findall(text) if len(run) >= 3)
        if stacked:
            signals["combining"] = stacked
        text = _COMBINING.sub("", text)
    text = unicodedata.normalize("NFKC", text)
    if present & _BRAILLE_BIT:
        for run in _BRAILLE.findall(text)[:MAX_CANDIDATES]:
            _keep(payloads, signals, "braille", run.translate(_BRAILLE_LETTERS))
    if present & _CONFUSABLE_BIT:
        confusable = int(np.count_nonzero(kinds & _CONFUSABLE_BIT))
        native = int(np.count_nonzero(kinds & _NATIVE_BIT))
        if "\u0131" in text and (present & _LATIN_BIT or "i" in text):
            # Beside other accented letters or a dotted i, a dotless i is a Turkic language's
            # own letter ("kullan\u0131c\u0131 bilgilerini"), not a look-alike: folded, not counted
            confusable -= text.count("\u0131")
        text = _fold_homoglyphs(text, signals, confusable, native)
    return text, other_scripts


def _astral_carriers(text: str, signals: dict[str, int], payloads: list[str]) -> str:
    """Tag characters carry ASCII (U+E0000 + code); supplementary selectors carry bytes."""
    text = _FLAG_TAGS.sub("\U0001f3f4", text)  # a subdivision flag's tags are only a flag
    tagged = _TAGS.findall(text)
    if tagged:
        signals["tag_chars"] = sum(map(len, tagged))
        decoded = "".join(chr(ord(c) - 0xE0000) for c in "".join(tagged))
        _keep(payloads, signals, "tag_payload", decoded)
        text = _TAGS.sub(" ", text)
    return _selectors(text, signals, payloads)


def _selectors(text: str, signals: dict[str, int], payloads: list[str]) -> str:
    runs = [run for run in _VARIATION.findall(text) if run not in ("\ufe0e", "\ufe0f")]
    if runs:
        signals["variation_selectors"] = sum(map(len, runs))
        _keep(payloads, signals, "selector_payload", "".join(map(_selector_bytes, runs)))
    return _VARIATION.sub("", text)


def _selector_bytes(run: str) -> str:
    """Variation selectors as bytes. Encoders disagree on where VS17 starts (byte 16 or 0):
    decode both ways and keep the reading with more letters and spaces."""
    readings = []
    for base in (16, 0):
        raw = bytes(
            (ord(c) - 0xFE00 if ord(c) < 0xFE10 else (ord(c) - 0xE0100 + base) % 256) for c in run
        )
        readings.append(raw.decode("utf-8", "replace"))
    return max(readings, key=lambda r: sum(c.isalpha() or c == " " for c in r))


def _bits_text(run: str) -> str:
    """Invisible times (0) and invisible plus (1), 7 bits a character, words split by ZWSP."""
    words = []
    for word in run.split("\u200b"):
        bits = word.replace("\u2062", "0").replace("\u2064", "1")
        chars = (int(bits[i : i + 7], 2) for i in range(0, len(bits) - 6, 7))
        words.append("".join(chr(c) for c in chars if 32 <= c < 127))
    return " ".join(words)


def _fold_homoglyphs(text: str, signals: dict[str, int], confusable: int, native: int) -> str:
    """Fold look-alikes posing as Latin letters; leave real Cyrillic and Greek alone.

    Text whose Greek/Cyrillic letters are nearly all look-alikes is Latin in disguise: fold it
    all. Otherwise it is real Greek or Cyrillic, and only words mixing in Latin letters fold.
    """
    if (native - confusable) * 4 <= confusable:
        if confusable:
            signals["homoglyphs"] = confusable
        return text.translate(_FOLD)
    if not _MIXED_WORD.search(text):
        return text
    folded = 0

    def fold(match: re.Match[str]) -> str:
        nonlocal folded
        word = match.group()
        if word.isascii() or not any("a" <= c <= "z" for c in word.lower()):
            return word
        out = word.translate(_FOLD)
        folded += sum(a != b for a, b in zip(word, out, strict=True))
        return out

    text = _WORD.sub(fold, text)
    if folded:
        signals["homoglyphs"] = folded
    return text


# -- markup --------------------------------------------------------------------------------------


def _markup(text: str, shape: str, signals: dict[str, int]) -> str:
    count = 0
    if "<" in text:
        text, count = _INLINE_TAGS.subn("", text)
    for mark in _EMPHASIS_MARKS:
        if mark in text:
            text = text.replace(mark, "")
    padded = f" {shape} "
    if " a a a a " in padded or " a.a.a.a" in padded or " a-a-a-a" in padded:
        text, spaced = _SPACED_LETTERS.subn(_join_letters, text)
        count += spaced
    if count:
        signals["markup"] = count
    return text


def _join_letters(match: re.Match[str]) -> str:
    return _SPACED_SEPARATORS.sub(lambda gap: " " if len(gap.group()) > 1 else "", match.group())


# -- payloads ------------------------------------------------------------------------------------


def _decode_payloads(
    text: str, lowered: str, shape: str, signals: dict[str, int], payloads: list[str]
) -> None:
    for piece in _long_words(text)[:MAX_CANDIDATES]:
        # base64, base32 or hex in one piece: only words of 16 characters or more are read
        for candidate in _BASE64.findall(piece)[:2]:
            _keep(payloads, signals, "base64", _base64(candidate))
        for candidate in _HEX.findall(piece)[:2]:
            _keep(payloads, signals, "hex", _hex(candidate))
    if shape.count("0") >= 16 and _spaced_bytes(text):  # spaced bytes are mostly digits
        for candidate in _HEX.findall(text)[:MAX_CANDIDATES]:
            _keep(payloads, signals, "hex", _hex(candidate))
        for candidate in _BINARY.findall(text)[:2]:
            bits = re.sub("[^01]", "", candidate)
            _keep(payloads, signals, "binary", _readable(int(bits, 2).to_bytes(len(bits) // 8)))
    if text.count("%") >= 3:
        for candidate in _PERCENT.findall(text)[:MAX_CANDIDATES]:
            # an address escapes punctuation ("is%3Aopen", "%22Help+Wanted%22"); escaping a
            # letter or digit ("%69%67%6E") is only ever done to hide it
            kind = "percent" if _ESCAPED_ALNUM.search(candidate) else "url_escapes"
            _keep(payloads, signals, kind, unquote(candidate[:MAX_PAYLOAD_CHARS]))
    if text.count("_") >= 2:
        names = _constant_names(text)
        if names:
            _keep(payloads, signals, "constant_names", " ".join(n.replace("_", " ") for n in names))
    if text.count("\\x") + text.count("\\u") >= 3:
        _keep(payloads, signals, "escapes", _unescape(text[: MAX_PAYLOAD_CHARS * 6]))
    if text.count(".-") + text.count("-.") >= 4:
        for candidate in _MORSE.findall(text)[:2]:
            _keep(payloads, signals, "morse", _morse(candidate))
    _ciphers(text, lowered, signals, payloads)
    if shape.count(".a.a") >= 6:  # "(t)errible": a cheap test before the regex
        _marked_letters(text, signals, payloads)
    if shape.count("a0a") >= 3:  # digits between letters, as in "b1g l3tt3rs"
        head = text[: MAX_PAYLOAD_CHARS * 2]
        leet = [w for w in _LEET_WORD.findall(head) if _leet_word(w)]
        if len(leet) >= 3 and len(leet) * 4 >= head.count(" ") + 1:
            _keep(payloads, signals, "leet", head.translate(_LEET))


def _constant_names(text: str) -> list[str]:
    """The names of three or more capitalised parts ("REVEAL_YOUR_SYSTEM_PROMPT"), found from
    the underscores (a regex over the whole text cost ~400 µs per 8 kB of code)."""
    names: list[str] = []
    at, seen = text.find("_"), 0
    while at > 0 and seen < 256 and len(names) < 16:
        seen += 1
        if text[at - 1].isupper() and text[at + 1 : at + 2].isupper():
            start = at - 1
            while start > 0 and (text[start - 1].isupper() or text[start - 1] in _NAME_CHARS):
                start -= 1
            found = _CONSTANT_NAME.match(text, start)
            if found:
                names.append(found.group())
                at = found.end()
        at = text.find("_", at + 1)
    return names


def _unescape(text: str) -> str | None:
    """The text with its ``\\xHH`` and ``\\uHHHH`` escapes read as the characters they stand
    for, when at least three of them are printable (a string literal hiding its words)."""
    decoded = 0

    def read(escape: re.Match[str]) -> str:
        nonlocal decoded
        char = chr(int(escape.group(1) or escape.group(2), 16))
        if not char.isprintable():
            return escape.group()
        decoded += 1
        return char

    text = _ESCAPES.sub(read, text)
    return text if decoded >= 3 else None


def _marked_letters(text: str, signals: dict[str, int], payloads: list[str]) -> None:
    """The letters marked in parentheses, in order, when enough of them open a word: function
    calls ("f(x)") put a letter before the mark, not after it. A blank mark ("( )") stands for
    a space."""
    head = text[: MAX_PAYLOAD_CHARS * 8]
    letters: list[str] = []
    opening = 0
    for mark in _PARENTHESISED.finditer(head):
        letter, start, end = mark.group(1), mark.start(), mark.end()
        if letter == " ":
            letters.append(letter)
        elif _is_ascii_letter(head[end : end + 1]):  # "(t)errible"
            letters.append(letter)
            opening += 1
        elif _is_ascii_letter(head[start - 1 : start]):  # "gr(e)at" ("" at the start)
            letters.append(letter)
    if opening >= 6:
        _keep(payloads, signals, "marked_letters", "".join(letters))


def _is_ascii_letter(char: str) -> bool:
    return char.isascii() and char.isalpha()


def _long_words(text: str) -> list[str]:
    """The distinct runs of 16 or more non-blank characters, in order.

    Short texts are split (a few µs); long ones are read in numpy over their bytes (one
    comparison, one ``flatnonzero``) rather than split into some 1,500 words, none of them long.
    """
    if len(text) < 4096:
        return list(dict.fromkeys(word for word in text.split() if len(word) >= 16))
    raw = np.frombuffer(_ascii(text).encode("ascii"), dtype=np.uint8)
    blank = np.empty(len(raw) + 2, dtype=bool)
    blank[0] = blank[-1] = True
    np.less_equal(raw, 32, out=blank[1:-1])
    edges = np.flatnonzero(blank[1:] != blank[:-1])  # starts and ends of runs alternate
    starts, ends = edges[0::2], edges[1::2]
    long = np.flatnonzero(ends - starts >= 16)
    return list(dict.fromkeys(text[starts[i] : ends[i]] for i in long.tolist()))


def _spaced_bytes(text: str) -> bool:
    """Bytes written as spaced pairs ("69 67 6e") or binary octets, not just short words."""
    shape = f" {_ascii(text).translate(_HEX_SHAPE)} "
    return any(run in shape for run in _HEX_RUNS)


def _leet_word(word: str) -> bool:
    """A word with a digit or two standing for letters, not a number, hash or identifier."""
    letters = sum(c.isalpha() for c in word)
    return letters >= 2 and len(word) <= 12 and not _HEXISH.fullmatch(word)


def _ciphers(text: str, lowered: str, signals: dict[str, int], payloads: list[str]) -> None:
    lowered = f" {lowered} "
    plain = -1
    for name, (table, markers) in _CIPHERS.items():
        named = name in lowered
        if not named and markers[0] not in lowered and markers[1] not in lowered:
            continue  # neither "the" nor "and" enciphered: not this cipher, or not English
        hits = sum(lowered.count(w) for w in markers)
        if plain < 0:
            plain = sum(lowered.count(w) for w in _COMMON)
        if named or (hits >= 2 and hits > plain):
            _keep(payloads, signals, name, text[: MAX_PAYLOAD_CHARS * 2].translate(table))
    if _REVERSED[0] in lowered or _REVERSED[1] in lowered:
        found = [lowered.count(w) for w in _REVERSED]
        if plain < 0:
            plain = sum(lowered.count(w) for w in _COMMON)
        if sum(found) > plain and sum(map(bool, found)) >= 2:
            _keep(payloads, signals, "reversed", text[: MAX_PAYLOAD_CHARS * 2][::-1])
    if "caesar" in lowered or "decipher" in lowered:
        _keep(payloads, signals, "caesar", _caesar(text[:MAX_PAYLOAD_CHARS]))


def _caesar(text: str) -> str | None:
    """The shift of the alphabet under which the most common English words appear, if any."""
    best, best_hits = None, 1  # two common words at least
    for table in _SHIFTS[1:]:
        decoded = text.translate(table)
        hits = sum(f" {decoded.lower()} ".count(w) for w in _COMMON)
        if hits > best_hits:
            best, best_hits = decoded, hits
    return best


def _base64(candidate: str) -> str | None:
    if len(candidate) > MAX_PAYLOAD_CHARS or candidate.isdigit():
        return None
    try:
        if _BASE32.fullmatch(candidate):
            return _readable(base64.b32decode(candidate + "=" * (-len(candidate) % 8)))
        padded = candidate + "=" * (-len(candidate) % 4)
        if "-" in candidate or "_" in candidate:
            return _readable(base64.urlsafe_b64decode(padded))
        return _readable(base64.b64decode(padded, validate=True))
    except (binascii.Error, ValueError):
        return None


def _hex(candidate: str) -> str | None:
    digits = re.sub(r"0x|\\x|[ :,]", "", candidate[:MAX_PAYLOAD_CHARS])
    try:
        return _readable(bytes.fromhex(digits[: len(digits) // 2 * 2]))
    except ValueError:
        return None


def _morse(candidate: str) -> str:
    words = candidate.split("/")
    return " ".join("".join(_MORSE_CODE.get(c, "") for c in word.split()) for word in words)


def _readable(raw: bytes) -> str | None:
    """The bytes as text when they read as text: valid UTF-8, printable, with a space in it."""
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(c.isprintable() or c in "\n\t" for c in decoded)
    if printable < len(decoded) * 0.95 or " " not in decoded.strip():
        return None
    return decoded


def _keep(payloads: list[str], signals: dict[str, int], kind: str, decoded: str | None) -> None:
    """Keep a decoded payload if it holds a few letters; a payload may hide a payload (once)."""
    if decoded is None or len(payloads) >= MAX_PAYLOADS:
        return
    decoded = decoded.strip()
    if sum(c.isalpha() for c in decoded[:64]) < 4 or decoded in payloads:
        return
    payloads.append(decoded)
    signals[kind] = signals.get(kind, 0) + 1
    for candidate in _BASE64.findall(decoded)[:2]:
        value = _base64(candidate)
        if value is not None and len(payloads) < MAX_PAYLOADS:
            payloads.append(value.strip())
