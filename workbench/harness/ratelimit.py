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
4. **Learned quota**: with no quota in the profile, the first request goes alone (slow start) and every answer's
   ``x-ratelimit-limit-*``, ``-remaining-*`` and ``-reset-*`` headers (requests and tokens; OpenAI sends them on
   every answer, 200s included) set up a token bucket at the service's own rate: ``limit / 60 s`` per second,
   holding ``remaining + reset x rate`` (a 1 s burst server says so through its reset). Each answer then corrects
   the bucket's level to what the service reported, less the requests sent since that one. An unknown quota is
   found without a storm of 429s, and other clients on a shared quota show up in ``remaining``. A 200 that
   reports 0 remaining is a success: the next request waits for the refill.
   Without such headers (or with only ``remaining``, as Azure sends), the limiter falls back to AIMD and the
   shared 429 pause.
"""

from __future__ import annotations

import asyncio
import random
import re
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


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|us|µs|s|m|h)?")
_UNIT_S = {"ms": 0.001, "us": 1e-6, "µs": 1e-6, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(text: str | None) -> float | None:
    """Seconds in a rate-limit reset: ``120ms``, ``1.5s``, ``1m2s``, ``6m0s``, ``2h``, or plain seconds (``1``)."""
    if not text:
        return None
    text = text.strip().lower()
    parts = _DURATION.findall(text)
    if not parts or "".join(n + (u or "") for n, u in parts) != text:
        return None
    return sum(float(n) * _UNIT_S[u or None] for n, u in parts)


@dataclass(frozen=True)
class RateInfo:
    """What one answer's ``x-ratelimit-*`` headers say about one kind (requests or tokens) of quota."""

    limit: float | None  # per minute
    remaining: float | None
    reset_s: float | None  # until the quota is full again


def parse_rate_limit(headers: Mapping[str, str] | None) -> dict[str, RateInfo]:
    """``{"requests": RateInfo, "tokens": RateInfo}`` for the kinds the headers mention."""
    out: dict[str, RateInfo] = {}
    if not headers:
        return out
    for kind in ("requests", "tokens"):
        remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
        limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
        if remaining is None and limit is None:
            continue
        out[kind] = RateInfo(limit, remaining, parse_duration(headers.get(f"x-ratelimit-reset-{kind}")))
    return out


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None and text != "" else None
    except ValueError:
        return None


@dataclass
class Ticket:
    """One admitted request: when it left, and how many requests and tokens had left before it."""

    seq: int
    tokens: int
    sent_at: float
    tokens_before: float


class TargetLimiter:
    """Paces the requests of one target (a profile + deployment). Use ``async with limiter.slot(tokens) as t:``
    and report each answer's headers with :meth:`on_success` / :meth:`on_rate_limited`."""

    def __init__(self, name: str, max_concurrency: int, rpm: int | None = None, tpm: int | None = None,
                 *, seed: int | None = None, learn: bool = True):
        self.name = name
        self.max_concurrency = max(1, max_concurrency)
        self.limit = float(self.max_concurrency)
        self.in_flight = 0
        self.pause_until = 0.0
        self.rate_limited = 0  # 429s seen
        self.sent = 0  # requests admitted
        self.tokens_sent = 0.0
        self._successes_since_change = 0
        self._ok_since_429: int | None = None  # None: no 429 yet
        self._cond: asyncio.Condition | None = None
        self._rng = random.Random(seed)
        # burst capacity of one second's worth: a window-based quota is never hit by a startup burst
        self._rpm = _Bucket(rpm / 60.0, max(1.0, rpm / 60.0)) if rpm else None
        self._tpm = _Bucket(tpm / 60.0, max(1.0, tpm / 60.0)) if tpm else None
        # learned from x-ratelimit-* headers when the profile states no quota of that kind
        self._learn = {"requests": learn and not rpm, "tokens": learn and not tpm}
        self.learned: dict[str, _Bucket] = {}
        self._probing = learn and not (rpm or tpm)  # slow start: one request until the first answer

    @property
    def needs_tokens(self) -> bool:
        return self._tpm is not None or "tokens" in self.learned

    def _condition(self) -> asyncio.Condition:
        if self._cond is None:  # created lazily inside the running loop
            self._cond = asyncio.Condition()
        return self._cond

    def _buckets(self, tokens: int) -> list[tuple[_Bucket, float]]:
        out = []
        req, tok = self._rpm or self.learned.get("requests"), self._tpm or self.learned.get("tokens")
        if req is not None:
            out.append((req, 1))
        if tok is not None:
            out.append((tok, tokens))
        return out

    async def acquire(self, tokens: int = 0) -> Ticket:
        cond = self._condition()
        while True:
            now = time.monotonic()
            if now < self.pause_until:
                # jitter spreads the re-entry of the waiting workers over ~10% of the pause
                delay = self.pause_until - now
                await asyncio.sleep(delay + self._rng.uniform(0, min(1.0, 0.1 * delay + 0.01)))
                continue
            async with cond:
                cap = 1 if self._probing else int(self.limit)
                if self.in_flight >= cap:
                    await cond.wait()
                    continue
                buckets = self._buckets(tokens)
                wait = max((b.wait_time(n, now) for b, n in buckets), default=0.0)
                if wait <= 0:
                    for b, n in buckets:
                        b.take(n, now)
                    self.in_flight += 1
                    ticket = Ticket(self.sent, tokens, now, self.tokens_sent)
                    self.sent += 1
                    self.tokens_sent += tokens
                    return ticket
            await asyncio.sleep(wait)

    async def release(self) -> None:
        cond = self._condition()
        async with cond:
            self.in_flight -= 1
            if self._probing:  # the first answer is in: open up to the learned pace (or full concurrency)
                self._probing = False
                cond.notify_all()
            else:
                cond.notify(1)

    def end_probe(self) -> None:
        """The first request is being answered (a stream's first piece): let the others go now, not when its
        whole answer is in - a streamed run shows every cell streaming at once. Call inside the running loop."""
        if self._probing:
            self._probing = False
            self._waking = asyncio.get_running_loop().create_task(self._wake_all())  # held: tasks are weak refs

    async def _wake_all(self) -> None:
        cond = self._condition()
        async with cond:
            cond.notify_all()

    def observe(self, headers: Mapping[str, str] | None, ticket: Ticket | None = None,
                now: float | None = None) -> None:
        """Learn the quota from an answer's ``x-ratelimit-*`` headers (see the module docstring, point 4)."""
        info = parse_rate_limit(headers)
        if not info:
            return
        now = time.monotonic() if now is None else now
        for kind, rate_info in info.items():
            if not self._learn.get(kind):
                continue
            if rate_info.limit:
                self._learn_bucket(kind, rate_info, ticket, now)
            elif rate_info.remaining is not None and rate_info.remaining <= 0:
                # a service that says only "0 left" (Azure): wait for the refill it names, else a second
                self.pause_until = max(self.pause_until, now + min(rate_info.reset_s or 1.0, 1.0))

    def _learn_bucket(self, kind: str, info: RateInfo, ticket: Ticket | None, now: float) -> None:
        rate = info.limit / 60.0
        capacity = info.limit
        if info.remaining is not None and info.reset_s is not None:
            capacity = min(info.limit, max(1.0, info.remaining + info.reset_s * rate))
        bucket = self.learned.get(kind)
        if bucket is None:
            bucket = self.learned[kind] = _Bucket(rate, capacity, stamp=now)
            bucket.level = capacity
        else:
            bucket._refill(now)
            # R + reset x rate never exceeds the true capacity (R is rounded down): keep the largest seen
            bucket.rate, bucket.capacity = rate, max(bucket.capacity, capacity)
        if info.remaining is None or ticket is None:
            return
        # the service's count when it answered, less what we sent after this request. The refill since is left
        # out on purpose: when the service counted is unknown (any time between sending and now), and counting
        # it twice would overshoot - left out, the level only runs a constant ~latency x rate below the truth
        after = (self.sent - ticket.seq - 1) if kind == "requests" else (self.tokens_sent - ticket.tokens_before
                                                                           - ticket.tokens)
        bucket._refill(now)
        bucket.level = min(bucket.capacity, info.remaining - after)

    def on_success(self, headers: Mapping[str, str] | None = None, ticket: Ticket | None = None) -> None:
        self.observe(headers, ticket)
        self._successes_since_change += 1
        if self._ok_since_429 is not None:
            self._ok_since_429 += 1
        if self.limit < self.max_concurrency and self._successes_since_change >= max(1, int(self.limit)):
            self.limit = min(self.max_concurrency, self.limit + 1)
            self._successes_since_change = 0

    def on_rate_limited(self, retry_after: float | None, headers: Mapping[str, str] | None = None,
                        ticket: Ticket | None = None) -> float:
        """Record a 429; returns how long the caller should wait before retrying."""
        self.observe(headers, ticket)
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

    async def __aenter__(self) -> Ticket:
        return await self.limiter.acquire(self.tokens)

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
