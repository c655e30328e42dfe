"""``llm-sidecar redact FILE.jsonl``: one result line per input line, errors per line."""

from __future__ import annotations

import io
from pathlib import Path

import orjson

from sidecar.security.redact_cli import redact_file
from sidecar.security.secrets import marker
from tests.security.secret_examples import GITHUB


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_each_line_gets_its_redacted_text_and_spans_in_original_offsets(tmp_path: Path) -> None:
    texts = {
        "a": f"token {GITHUB} and mail ana@example.org",
        7: "nothing to see here",
    }
    source = write_lines(
        tmp_path / "in.jsonl", [orjson.dumps({"id": k, "text": t}) for k, t in texts.items()]
    )
    out, err = io.StringIO(), io.StringIO()
    assert redact_file(source, out, err=err) == 0
    results = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [r["id"] for r in results] == ["a", 7]
    first = results[0]
    assert first["text"] == f"token {marker('GITHUB_TOKEN')} and mail {marker('EMAIL')}"
    original = texts["a"]
    assert [(original[s["start"] : s["end"]], s["type"]) for s in first["spans"]] == [
        (GITHUB, "GITHUB_TOKEN"),
        ("ana@example.org", "EMAIL"),
    ]
    assert results[1] == {"id": 7, "text": "nothing to see here", "spans": []}
    assert err.getvalue() == ""


def test_bad_lines_are_reported_with_their_number_and_skipped(tmp_path: Path) -> None:
    """Each bad line is named on stderr with what is wrong; the good ones still come out and
    the exit status says something was skipped."""
    source = write_lines(
        tmp_path / "in.jsonl",
        [
            b'{"id": 1, "text": "ok ana@example.org"}',
            b"{not json",
            b"",
            b'["a", "list"]',
            b'{"text": "no id"}',
            b'{"id": 5, "text": 42}',
            b'{"id": 6, "text": "\xff\xfe"}',
            b'{"id": 7, "text": "fine"}',
        ],
    )
    out, err = io.StringIO(), io.StringIO()
    assert redact_file(source, out, err=err) == 1
    assert [orjson.loads(line)["id"] for line in out.getvalue().splitlines()] == [1, 7]
    problems = err.getvalue().splitlines()
    assert [p.split(": ", 1)[0] for p in problems] == [f"{source}:{n}" for n in (2, 4, 5, 6, 7)]
    assert "not valid JSON" in problems[0]
    assert "expected a JSON object" in problems[1]
    assert 'missing "id"' in problems[2]
    assert '"text" must be a string' in problems[3]


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert redact_file(tmp_path / "absent.jsonl", out, err=err) == 2
    assert "absent.jsonl: cannot read" in err.getvalue()
    assert out.getvalue() == ""


def test_actions_can_be_chosen(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "in.jsonl", [b'{"id": 1, "text": "mail ana@example.org"}'])
    out = io.StringIO()
    assert redact_file(source, out, err=io.StringIO(), actions={"EMAIL": "flag"}) == 0
    result = orjson.loads(out.getvalue())
    assert result["text"] == "mail ana@example.org"
    assert result["spans"] == [{"start": 5, "end": 20, "type": "EMAIL"}]
