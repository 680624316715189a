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


# ------------------------------------------------------------------------------------ quota from headers


def test_durations_in_reset_headers():
    from workbench.harness.ratelimit import parse_duration

    assert parse_duration("120ms") == pytest.approx(0.12)
    assert parse_duration("1.5s") == 1.5 and parse_duration("1m2s") == 62 and parse_duration("6m0s") == 360
    assert parse_duration("2h") == 7200 and parse_duration("1") == 1 and parse_duration("0s") == 0
    assert parse_duration("soon") is None and parse_duration("") is None and parse_duration("1x") is None


def _headers(limit, remaining, reset, kind="requests"):
    return {f"x-ratelimit-limit-{kind}": str(limit), f"x-ratelimit-remaining-{kind}": str(remaining),
            f"x-ratelimit-reset-{kind}": reset}


def test_the_quota_is_learned_from_the_first_answer_and_paced_at_its_rate():
    from workbench.harness.ratelimit import Ticket

    lim = TargetLimiter("t", 32)
    assert not lim.learned
    # 1,200 RPM with a 1 s burst: after one request, 19 left and 50 ms until full -> capacity 20, 20 per second
    lim.sent = 1
    lim.observe(_headers(1200, 19, "50ms"), Ticket(0, 0, 100.0, 0.0), now=100.05)
    b = lim.learned["requests"]
    assert b.rate == pytest.approx(20.0) and b.capacity == pytest.approx(20.0)
    assert b.level == pytest.approx(19.0)  # what the service said (its refill since is not guessed)
    for _ in range(19):
        b.take(1, 100.05)
    assert b.wait_time(1, 100.05) == pytest.approx(0.05)  # then one request every 50 ms: the quota's pace


def test_requests_sent_after_an_answer_are_counted_against_its_remaining():
    from workbench.harness.ratelimit import Ticket

    lim = TargetLimiter("t", 32)
    lim.sent = 11  # ten more requests left after the one being answered
    lim.observe(_headers(600, 15, "5s"), Ticket(0, 0, 10.0, 0.0), now=10.0)
    assert lim.learned["requests"].level == pytest.approx(5.0)
    # another client on the same quota shows up in remaining: the level follows it down
    lim.observe(_headers(600, 2, "5s"), Ticket(10, 0, 10.0, 0.0), now=10.0)
    assert lim.learned["requests"].level == pytest.approx(2.0)


def test_a_200_with_nothing_remaining_waits_for_the_refill_instead_of_failing():
    from workbench.harness.ratelimit import Ticket

    lim = TargetLimiter("t", 8)
    lim.sent = 1
    lim.on_success(_headers(60, 0, "1s"), Ticket(0, 0, 0.0, 0.0))
    b = lim.learned["requests"]
    assert b.level == 0 and b.wait_time(1, b.stamp) == pytest.approx(1.0)
    assert lim.rate_limited == 0 and lim.limit == 8  # a success: no 429 episode, no shrinking
    # Azure says only what remains: 0 left pauses the target briefly instead of sending into a 429
    az = TargetLimiter("a", 8)
    az.on_success({"x-ratelimit-remaining-requests": "0"})
    assert az.pause_until > 0 and not az.learned


def test_tokens_are_learned_and_then_needed_per_request():
    from workbench.harness.ratelimit import Ticket

    lim = TargetLimiter("t", 8)
    assert not lim.needs_tokens
    lim.observe(_headers(60000, 900, "100ms", "tokens"), Ticket(0, 100, 1.0, 0.0), now=1.0)
    assert lim.needs_tokens and lim.learned["tokens"].rate == pytest.approx(1000.0)


def test_a_known_quota_is_not_overridden_and_the_first_request_goes_alone_only_when_unknown():
    known = TargetLimiter("k", 8, rpm=600)
    known.observe(_headers(60, 0, "1s"))
    assert not known.learned and not known._probing
    unknown = TargetLimiter("u", 8)
    assert unknown._probing

    async def main():
        first = await unknown.acquire()
        assert unknown.in_flight == 1
        second = asyncio.ensure_future(unknown.acquire())
        await asyncio.sleep(0.01)
        assert not second.done()  # waits for the first answer
        await unknown.release()
        await asyncio.wait_for(second, 1)
        return first

    asyncio.run(main())
    assert not unknown._probing
