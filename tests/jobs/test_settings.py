"""The ``jobs`` configuration: seed queues, overrides key by key, typos refused."""

from __future__ import annotations

import pytest

from sidecar.config import ConfigError, settings_from_dict


def test_the_seed_queues_match_the_issue() -> None:
    """high 3 attempts, normal 2, batch 1; exponential backoff from 2 s; workers in serve."""
    jobs = settings_from_dict({}).jobs
    assert {p: q.attempts for p, q in jobs.queues.items()} == {"high": 3, "normal": 2, "batch": 1}
    assert {q.backoff_ms for q in jobs.queues.values()} == {2000}
    assert (jobs.workers, jobs.prefix) == (True, "bull")


def test_a_queue_is_overridden_key_by_key() -> None:
    jobs = settings_from_dict({"jobs": {"queues": {"high": {"concurrency": 1}}}}).jobs
    assert (jobs.queues["high"].attempts, jobs.queues["high"].concurrency) == (3, 1)
    assert jobs.queues["normal"].attempts == 2


@pytest.mark.parametrize(
    ("raw", "path"),
    [
        ({"queues": {"urgent": {}}}, "jobs.queues.urgent"),
        ({"queues": {"high": {"attempts": 0}}}, "jobs.queues.high.attempts"),
        ({"queues": {"high": {"retries": 2}}}, "jobs.queues.high.retries"),
        ({"keep_completed_s": 0}, "jobs.keep_completed_s"),
        ({"prefix": ""}, "jobs.prefix"),
    ],
)
def test_a_bad_jobs_key_is_refused_with_its_path(raw: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError, match=path.replace(".", r"\.")):
        settings_from_dict({"jobs": raw})
