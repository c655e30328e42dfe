"""Finding secrets and personal data in model output, and what each action does with them."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from bench.redaction import CORPUS, CORPUS_FILE, evaluate, load
from sidecar.errors import ErrorCode
from sidecar.security import validators as v
from sidecar.security.secrets import (
    TYPES,
    Policy,
    Span,
    blocked_error,
    find,
    marker,
    redact,
    redact_answer,
)
from tests.security.secret_examples import (
    AMEX,
    AWS_SECRET,
    GITHUB,
    LOOKALIKES,
    OPENAI,
    POSITIVES,
    RSA_KEY,
    SESSION_JWT,
    VISA,
    b64url,
)


@pytest.mark.parametrize(("text", "value", "type_"), POSITIVES)
def test_each_type_is_found_with_its_exact_offsets(text: str, value: str, type_: str) -> None:
    """Every type, in several of the shapes models print it, is found exactly where it is."""
    start = text.index(value)
    assert Span(start, start + len(value), type_) in find(text)


def test_every_type_has_examples() -> None:
    """The examples cover every type the detectors know."""
    assert {t for _, _, t in POSITIVES} == set(TYPES)


@pytest.mark.parametrize("text", LOOKALIKES)
def test_look_alikes_are_left_alone(text: str) -> None:
    """Order numbers, UUIDs, hashes, invalid cards and IBANs, unissued SSNs, versions,
    placeholders and documentation keys are not findings."""
    assert find(text) == []


def test_findings_are_sorted_and_never_overlap() -> None:
    """Many findings in one text come back in text order without overlaps."""
    text = " ".join(t for t, _, _ in POSITIVES)
    spans = find(text)
    assert len(spans) >= len(POSITIVES) - 3
    assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_a_specific_type_wins_over_a_generic_one() -> None:
    """A provider key in key=value context is that provider's key, not a generic secret."""
    assert [s.type for s in find(f"OPENAI_API_KEY={OPENAI}")] == ["OPENAI_KEY"]
    assert [s.type for s in find(f"session_token: {SESSION_JWT}")] == ["JWT"]


# --- validators ---------------------------------------------------------------------------


def test_luhn_separates_valid_numbers_from_typos() -> None:
    assert v.luhn(VISA)
    assert not v.luhn(VISA[:-1] + str((int(VISA[-1]) + 1) % 10))


@pytest.mark.parametrize(
    ("pieces", "valid"),
    [
        ([VISA[:-1] + str((int(VISA[-1]) + 1) % 10)], False),  # the Luhn digit is wrong
        ([VISA[:4], " ", VISA[4:8], " ", VISA[8:12], " ", VISA[12:]], True),
        ([AMEX[:4], "-", AMEX[4:10], "-", AMEX[10:]], True),
        ([VISA[:4], " ", VISA[4:8], "-", VISA[8:12], " ", VISA[12:]], False),  # mixed
        ([VISA[:3], " ", VISA[3:]], False),  # not a card grouping
        (["9780306406157"], False),  # ISBN-13: no card network starts with 9
    ],
)
def test_cards_need_a_network_prefix_and_a_card_grouping(pieces: list[str], valid: bool) -> None:
    assert v.credit_card(pieces) is valid


def test_iban_checksum_and_length() -> None:
    assert v.iban_checksum("DE89370400440532013000")
    assert not v.iban_checksum("DE89370400440532013001")
    assert find("GB82WEST1234569876543") == []  # one character short for GB


@pytest.mark.parametrize(
    ("ssn", "valid"),
    [
        ("219-48-3321", True),
        ("000-48-3321", False),
        ("666-48-3321", False),
        ("901-48-3321", False),
        ("219-00-3321", False),
        ("219-48-0000", False),
    ],
)
def test_ssn_issuing_rules(ssn: str, valid: bool) -> None:
    area, group, serial = ssn.split("-")
    assert v.us_ssn(area, group, serial) is valid
    assert bool(find(f"SSN {ssn}.")) is valid


def test_jwt_header_must_name_an_algorithm() -> None:
    """Three base64url parts are not enough: the first must be JSON with "alg"."""
    no_alg = f"{b64url({'typ': 'JWT'})}.{b64url({'sub': '1'})}.c2lnbmF0dXJl"
    assert v.jwt(SESSION_JWT)
    assert not v.jwt(no_alg)
    assert find(f"token {no_alg} here") == []


@pytest.mark.parametrize(
    ("address", "valid"),
    [
        ("192.168.10.4", True),
        ("256.1.1.1", False),
        ("01.02.03.04", False),
        ("127.0.0.1", False),
        ("255.255.0.0", False),
        ("0.0.0.0", False),
    ],
)
def test_ipv4_rules(address: str, valid: bool) -> None:
    assert v.ipv4(address) is valid


def test_placeholders_and_entropy() -> None:
    assert v.placeholder("AKIAIOSFODNN7EXAMPLE")
    assert v.placeholder("sk-xxxxxxxxxxxxxxxxxxxx")
    assert not v.placeholder(AWS_SECRET)
    assert v.random_token("Zq8vN2mK4pL9xR7tW3yB")
    assert not v.random_token("correct_horse_battery")  # words joined by separators
    assert not v.random_token("3f2b8c1e-9d4a-4e7b-a1c2-5f6e7d8c9b0a")  # a UUID


def test_a_private_key_block_without_footer_ends_at_its_last_base64_line() -> None:
    """Output cut short (no END line) still has its key material found, and no more."""
    cut = RSA_KEY.rsplit("\n", 2)[0]
    text = f"{cut}\nThat is the key."
    assert find(text) == [Span(0, len(cut), "PRIVATE_KEY")]


def test_an_escaped_private_key_in_a_string_is_found_to_its_footer() -> None:
    escaped = RSA_KEY.replace("\n", "\\n")
    text = f'{{"key": "{escaped}\\n", "ok": true}}'
    start = text.index("-----BEGIN")
    assert find(text) == [Span(start, start + len(escaped), "PRIVATE_KEY")]


# --- actions ------------------------------------------------------------------------------


def test_redact_replaces_findings_and_reports_original_offsets() -> None:
    text = f"mail ana@example.org, key {OPENAI}."
    result = redact(text, "redact")
    assert result.text == f"mail {marker('EMAIL')}, key {marker('OPENAI_KEY')}."
    assert [text[s.start : s.end] for s in result.redacted] == ["ana@example.org", OPENAI]
    assert not result.block
    assert result.flagged == ()


def test_actions_per_type_with_a_default() -> None:
    """A map sets actions per type; "*" sets the rest; "off" types are not looked for."""
    text = f"mail ana@example.org, key {OPENAI}, ip 203.0.113.9"
    result = redact(text, {"EMAIL": "flag", "IP_ADDRESS": "off", "*": "block"})
    assert [s.type for s in result.flagged] == ["EMAIL"]
    assert [s.type for s in result.blocked] == ["OPENAI_KEY"]
    assert result.block
    assert "ana@example.org" in result.text  # flagged: left as is
    assert OPENAI not in result.text  # blocked: also replaced, in case the block is ignored
    assert "203.0.113.9" in result.text


def test_unnamed_types_default_to_redact_and_off_disables_everything() -> None:
    assert redact("ana@example.org", {"PHONE": "flag"}).text == marker("EMAIL")
    assert redact("ana@example.org", "off").text == "ana@example.org"


def test_bad_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown output action"):
        Policy.of({"EMAIL": "hide"})
    with pytest.raises(ValueError, match="unknown output check type"):
        Policy.of({"EMAILS": "redact"})


def test_the_block_error_is_invalid_input_and_never_holds_the_secret() -> None:
    err = blocked_error(["OPENAI_KEY", "EMAIL", "EMAIL"])
    assert err.code is ErrorCode.INVALID_INPUT
    assert err.reason == "sensitive_output"
    assert not err.retry
    assert "EMAIL, OPENAI_KEY" in err.message
    assert OPENAI not in err.body("r1").decode()


# --- the dev corpus -------------------------------------------------------------------------


@pytest.mark.skipif(not (CORPUS / CORPUS_FILE).exists(), reason="dev corpus not present")
def test_recall_and_precision_on_the_dev_corpus_are_at_least_99_percent() -> None:
    """Per type, on the synthetic corpus: recall and precision >= 99 %, and no look-alike of
    any kind is flagged."""
    quality = evaluate(load(Path(CORPUS)))
    assert quality.texts > 500
    for type_, score in quality.per_type.items():
        if score.tp + score.fn:
            assert (score.recall or 0.0) >= 0.99, (type_, quality.missed)
        if score.tp + score.fp:
            assert (score.precision or 0.0) >= 0.99, (type_, quality.wrong)
    assert sum(quality.lookalike_hits.values()) == 0, quality.wrong


def test_call_arguments_are_redacted_value_by_value_and_stay_json() -> None:
    """Each string inside a call's arguments is redacted on its own: a private key written with
    JSON escapes (``\\n``) is found whole, the arguments still parse, other values are kept; a
    Responses ``function_call`` item is read too, and arguments that are not JSON as text."""
    arguments = json.dumps({"key": RSA_KEY, "note": f"token {GITHUB}", "n": 2})
    answer: dict[str, Any] = {
        "output": [
            {"type": "function_call", "name": "store", "arguments": arguments},
            {"type": "function_call", "name": "raw", "arguments": f"not json {GITHUB}"},
        ]
    }
    result = redact_answer(answer, "redact")
    stored = json.loads(answer["output"][0]["arguments"])
    assert stored == {
        "key": "[REDACTED:PRIVATE_KEY]",
        "note": "token [REDACTED:GITHUB_TOKEN]",
        "n": 2,
    }
    assert answer["output"][1]["arguments"] == "not json [REDACTED:GITHUB_TOKEN]"
    assert {(f.type, f.where) for f in result.findings} == {
        ("PRIVATE_KEY", "output[0].arguments.key"),
        ("GITHUB_TOKEN", "output[0].arguments.note"),
        ("GITHUB_TOKEN", "output[1].arguments"),
    }
    assert result.changed


@pytest.mark.parametrize(
    ("text", "type_"),
    [
        ("card 4111.1111.1111.1111 on file", "CREDIT_CARD"),  # dotted groups
        ("card 4111\u00a01111\u00a01111\u00a01111 on file", "CREDIT_CARD"),  # no-break spaces
        ("card 4111\u202f1111\u202f1111\u202f1111 on file", "CREDIT_CARD"),  # narrow ones
        ("IBAN DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000 please", "IBAN"),
    ],
)
def test_numbers_grouped_with_dots_or_no_break_spaces_are_found(text: str, type_: str) -> None:
    """Word processors and some locales group a number with no-break spaces, some people with
    dots: the number is found all the same, at its offsets in the original text."""
    (span,) = find(text)
    assert span.type == type_
    assert text[span.start : span.end].replace("\u00a0", "").replace("\u202f", "").replace(
        ".", ""
    ) in {"4111111111111111", "DE89370400440532013000"}


def test_dotted_numbers_that_are_no_card_stay() -> None:
    """Versions, dates and an IP address written with dots are not cards."""
    text = "version 1.2.3.4, build 2024.1111.1111, release 4111.1111.1111.1112"
    assert [span.type for span in find(text)] == []


@pytest.mark.parametrize(
    ("text", "type_", "found"),
    [
        # one random number in ten passes Luhn: the label right before it says what it is
        ("Order #4532015112830366 shipped today.", "CREDIT_CARD", False),
        ("order number: 4532015112830366", "CREDIT_CARD", False),
        ("the 16-digit reference 4532015112830366 is an internal ledger id", "CREDIT_CARD", False),
        ("Tracking 4532015112830366", "CREDIT_CARD", False),
        ("Payment for order 5521 with 4532 0151 1283 0366", "CREDIT_CARD", True),
        ("Card #: 4532 0151 1283 0366", "CREDIT_CARD", True),
        ("My card is 4532015112830366, order ORD-1", "CREDIT_CARD", True),
        # a dotted quad that numbers a part of a document
        ("Chapter 3.2.1.4 covers it", "IP_ADDRESS", False),
        ("see section 10.1.2.3 below", "IP_ADDRESS", False),
        ("\u00a7 4.1.2.3 of the contract", "IP_ADDRESS", False),
        ("Fig. 1.2.3.4 shows the flow", "IP_ADDRESS", False),
        ("the server at 10.1.2.3 answered", "IP_ADDRESS", True),
        ("Step 1: connect to 192.168.1.20", "IP_ADDRESS", True),
    ],
)
def test_a_number_labelled_as_something_else_is_that(text: str, type_: str, found: bool) -> None:
    assert (type_ in {span.type for span in find(text)}) is found


@pytest.mark.parametrize(
    ("text", "phone"),
    [
        ("Call (020) 7946 0958 after nine", "(020) 7946 0958"),
        ("phone: 4155552671", "4155552671"),
        ("Tel. 02079460958", "02079460958"),
        ("Call ID: 4155552671", None),  # an id that follows "call", not a number to call
        ("Order 4155552671 shipped", None),  # ten digits with no label are an id
        ("phone: 1234567890", None),  # not a North American number
    ],
)
def test_phone_numbers_with_a_bracketed_trunk_code_or_run_together_after_a_label(
    text: str, phone: str | None
) -> None:
    found = [text[span.start : span.end] for span in find(text) if span.type == "PHONE"]
    assert found == ([phone] if phone else [])


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("Kontakt: jürgen@example.de", "jürgen@example.de"),
        ("email: o'brien@example.ie", "o'brien@example.ie"),
        ("info@münchen.de ist erreichbar", "info@münchen.de"),
        ("write to 'ana@example.com' now", "ana@example.com"),  # quotes around, not inside
        ("foo@bar-.io", None),
    ],
)
def test_addresses_with_letters_of_other_scripts_are_redacted_whole(
    text: str, address: str | None
) -> None:
    """A local part or domain with an accented letter, or an apostrophe inside a name, was cut
    there, leaving the start of the address in the answer."""
    found = [text[span.start : span.end] for span in find(text) if span.type == "EMAIL"]
    assert found == ([address] if address else [])


def test_an_azure_storage_connection_string_has_its_account_key_redacted() -> None:
    key = "Zq7Xw2Lk9Pm4Nv8Rt3Ys6Ub1Qa5Wc0EdFg7Hi8Jk9Lm0No1Pq2Rs3Tu4Vw5Xy6Za7Bc8De9=="
    text = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key};EndpointSuffix=x.net"
    start = text.index(key)
    assert find(text) == [Span(start, start + len(key), "GENERIC_SECRET")]
    assert find("AccountKey=<your-account-key>") == []
