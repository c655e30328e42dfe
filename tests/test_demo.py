"""``llm-sidecar demo`` leaves nothing behind."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from sidecar.demo import run_demo


async def test_the_demo_removes_its_temporary_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo's usage database lives in a temporary directory that is gone afterwards."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert await run_demo(requests=12, concurrency=4) == 0
    assert os.listdir(tmp_path) == []
