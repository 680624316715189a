"""The limiter's rules, checked on explicit clocks and counters (no sleeping, no wall-clock assertions)."""

import asyncio
import random

import pytest

from workbench.harness.ratelimit import TargetLimiter, _Bucket, backoff, retry_after_seconds


def test_bucket_paces_at_its_rate_after_the_burst():
    b = _Bucket(rate=10.0, capacity=10.0, stamp=100.0)  # 600 per minute
    for _ in range(10):
        assert b.wait_time(1, 100.0) == 0
        b.take(1, 100.0)
    assert b.wait_time(1, 100.0) == pytest.approx(0.1)  # the 11th call waits for one refill
    assert b.wait_time(1, 100.05) == pytest.approx(0.05)
    assert b.wait_time(1, 100.1) == pytest.approx(0.0)


def test_bucket_lets_an_oversized_request_through_alone():
    b = _Bucket(rate=100.0, capacity=100.0, stamp=0.0)  # TPM 6000; one request estimates 5000 tokens
    assert b.wait_time(5000, 0.0) == 0  # capped at the capacity: it goes when the bucket is full
    b.take(5000, 0.0)
    assert b.wait_time(10, 0.0) == pytest.approx(0.1)


def test_429_pauses_the_target_and_lowers_concurrency_once_per_episode():
    lim = TargetLimiter("t", 16)
    wait = lim.on_rate_limited(2.0)
    assert 1.9 < wait <= 2.0 and lim.limit == 12
    lim.on_rate_limited(2.0)  # the other in-flight 429s of the same burst do not shrink it again
    assert lim.limit == 12 and lim.rate_limited == 2
    for _ in range(12):  # a round of successes regrows it by one
        lim.on_success()
    assert lim.limit == 13
    lim.on_rate_limited(None)  # no retry-after: a default pause, and a new episode
    assert lim.limit == pytest.approx(13 * 0.75)


def test_concurrency_never_exceeds_the_limit():
    lim = TargetLimiter("t", 3)
    peak = 0

    async def one():
        nonlocal peak
        async with lim.slot():
            peak = max(peak, lim.in_flight)
            await asyncio.sleep(0)

    async def main():
        await asyncio.gather(*(one() for _ in range(20)))

    asyncio.run(main())
    assert peak == 3 and lim.in_flight == 0


def test_tpm_quota_counts_tokens_only_when_set():
    assert TargetLimiter("a", 4, tpm=1000).needs_tokens
    assert not TargetLimiter("b", 4, rpm=60).needs_tokens


def test_retry_after_prefers_milliseconds():
    assert retry_after_seconds({"retry-after-ms": "250", "retry-after": "1"}) == 0.25
    assert retry_after_seconds({"retry-after": "3"}) == 3.0
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds(None) is None


def test_backoff_is_jittered_and_capped():
    rng = random.Random(0)
    samples = [backoff(10, base=0.5, cap=20.0, rng=rng) for _ in range(200)]
    assert max(samples) <= 20.0 and min(samples) >= 0.0 and len(set(samples)) == 200
    assert all(backoff(0, base=0.5, rng=rng) <= 0.5 for _ in range(50))
