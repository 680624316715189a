"""Per-target pacing: concurrency, requests and tokens per minute, and a shared back-off on 429.

Three mechanisms, one object per target (:class:`TargetLimiter`):

1. **Concurrency**: at most ``limit`` requests in flight. The limit adapts (AIMD): a 429 lowers it by a
   quarter, a run of successes raises it by one, up to ``max_concurrency``.
2. **Known quota** (``rpm`` / ``tpm`` from the profile): token buckets refilled continuously, so requests
   leave at the quota's pace instead of in bursts. Tokens are estimated the way Azure does at arrival:
   prompt tokens + ``max_tokens``.
3. **Shared pause on 429**: the service's ``retry-after-ms`` / ``retry-after`` closes the gate for *every*
   worker on that target until then, and workers re-enter with a little jitter. The openai SDK's own retry
   sleeps exactly ``retry-after`` in each worker, so all workers retry in lockstep and most fail again; a
   shared gate plus jitter avoids that.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class _Bucket:
    rate: float  # units per second
    capacity: float
    level: float = field(init=False)
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.level = self.capacity

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, amount: float, now: float) -> float:
        self._refill(now)
        amount = min(amount, self.capacity)  # a single request larger than the bucket still goes, alone
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= min(amount, self.capacity)


class TargetLimiter:
    """Paces the requests of one target (a profile + deployment). Use ``async with limiter.slot(tokens):``."""

    def __init__(self, name: str, max_concurrency: int, rpm: int | None = None, tpm: int | None = None,
                 *, seed: int | None = None):
        self.name = name
        self.max_concurrency = max(1, max_concurrency)
        self.limit = float(self.max_concurrency)
        self.in_flight = 0
        self.pause_until = 0.0
        self.rate_limited = 0  # 429s seen
        self._successes_since_change = 0
        self._ok_since_429: int | None = None  # None: no 429 yet
        self._cond: asyncio.Condition | None = None
        self._rng = random.Random(seed)
        # burst capacity of one second's worth: a window-based quota is never hit by a startup burst
        self._rpm = _Bucket(rpm / 60.0, max(1.0, rpm / 60.0)) if rpm else None
        self._tpm = _Bucket(tpm / 60.0, max(1.0, tpm / 60.0)) if tpm else None

    @property
    def needs_tokens(self) -> bool:
        return self._tpm is not None

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:  # created lazily inside the running loop
            self._cond = asyncio.Condition()
        return self._cond

    async def acquire(self, tokens: int = 0) -> None:
        cond = self._condition()
        while True:
            now = time.monotonic()
            if now < self.pause_until:
                # jitter spreads the re-entry of the waiting workers over ~10% of the pause
                delay = self.pause_until - now
                await asyncio.sleep(delay + self._rng.uniform(0, min(1.0, 0.1 * delay + 0.01)))
                continue
            async with cond:
                if self.in_flight >= int(self.limit):
                    await cond.wait()
                    continue
                wait = max(self._rpm.wait_time(1, now) if self._rpm else 0.0,
                           self._tpm.wait_time(tokens, now) if self._tpm else 0.0)
                if wait <= 0:
                    if self._rpm:
                        self._rpm.take(1, now)
                    if self._tpm:
                        self._tpm.take(tokens, now)
                    self.in_flight += 1
                    return
            await asyncio.sleep(wait)

    async def release(self) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            cond.notify(1)

    def on_success(self, headers: Mapping[str, str] | None = None) -> None:
        self._successes_since_change += 1
        if self._ok_since_429 is not None:
            self._ok_since_429 += 1
        if self.limit < self.max_concurrency and self._successes_since_change >= max(1, int(self.limit)):
            self.limit = min(self.max_concurrency, self.limit + 1)
            self._successes_since_change = 0

    def on_rate_limited(self, retry_after: float | None, headers: Mapping[str, str] | None = None) -> float:
        """Record a 429; returns how long the caller should wait before retrying."""
        self.rate_limited += 1
        now = time.monotonic()
        wait = retry_after if retry_after and retry_after > 0 else 1.0
        if now + wait > self.pause_until:
            self.pause_until = now + wait
        if self._ok_since_429 is None or self._ok_since_429 > 0:
            # decrease once per episode (429s with no success between them), not once per in-flight 429
            self.limit = max(1.0, self.limit * 0.75)
            self._successes_since_change = 0
        self._ok_since_429 = 0
        return max(0.0, self.pause_until - now)

    def slot(self, tokens: int = 0) -> _Slot:
        return _Slot(self, tokens)


class _Slot:
    def __init__(self, limiter: TargetLimiter, tokens: int):
        self.limiter, self.tokens = limiter, tokens

    async def __aenter__(self) -> TargetLimiter:
        await self.limiter.acquire(self.tokens)
        return self.limiter

    async def __aexit__(self, *exc) -> None:
        await self.limiter.release()


def retry_after_seconds(headers) -> float | None:
    """``retry-after-ms`` (precise) else ``retry-after`` (seconds) from response headers."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return float(value) * scale
            except ValueError:
                continue
    return None


def backoff(attempt: int, base: float = 0.5, cap: float = 20.0, rng: random.Random | None = None) -> float:
    """Exponential back-off with full jitter (AWS architecture blog): uniform(0, min(cap, base * 2**attempt))."""
    return (rng or random).uniform(0, min(cap, base * (2 ** attempt)))
