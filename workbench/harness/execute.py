"""Execute a plan: asyncio workers, one limiter per target, retries, the response cache, scoring, group commit.

Every finished cell is committed to the run store within a turn of the event loop (group commit), answers
go to the response cache, and a cell that fails after its retries is recorded as an error cell - one cell
never stops the run. Errors that would fail every cell of a target (401/403/404, a target that never
connects) stop the run early instead of burning the matrix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from ..catalog import ModelInfo
from ..errors import BackendError, CellStopped, WorkbenchError
from ..experiment import Cell, Experiment
from ..records import CellResult, Completion, Score, utcnow
from ..secrets import redact
from ..store import ResponseCache, RunStore
from .plan import PlannedCell
from .ratelimit import TargetLimiter, backoff, retry_after_seconds

log = logging.getLogger("workbench.harness")

# Errors worth retrying: the service may answer next time.
TRANSIENT = (openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError, BackendError)
# Errors that will fail every cell of a target the same way: stop early instead of burning the matrix.
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)
RATE_LIMIT_PATIENCE_S = 600.0  # give up on a cell after this long spent waiting on 429s


@dataclass
class RunProgress:
    """Live counters of a run (the widgets and the progress bar read these)."""

    total: int = 0
    done: int = 0
    errors: int = 0
    cache_hits: int = 0
    filtered: int = 0
    rate_limited: int = 0
    retries: int = 0
    spent_usd: float = 0.0
    skipped: int = 0  # finished in an earlier run (resumed)
    started: float = field(default_factory=time.monotonic)

    def postfix(self) -> dict[str, str]:
        return {"spent": f"${self.spent_usd:.4f}", "errors": str(self.errors), "cached": str(self.cache_hits),
                "429s": str(self.rate_limited)}


def _cost_usd(completion: Completion, model: ModelInfo, prices: Any = None) -> float | None:
    try:
        from ..costs import actual_cost

        return float(actual_cost(completion.usage, model, prices=prices).usd)
    except Exception as e:  # an unknown price must not lose the result
        log.debug("no cost for %s: %s", model.name, e)
        return None


def _load_prices() -> Any:
    try:
        from ..costs import load_prices

        return load_prices()
    except WorkbenchError as e:  # a broken price override must not stop a run; costs become unknown
        log.warning("prices unavailable: %s", e)
        return None


def parse_json_output(text: str) -> tuple[Any, str | None]:
    """Parse a JSON answer, tolerating a ```json fence around it. Returns (value, error)."""
    s = text.strip()
    fence = re.match(r"^```(?:json)?\s*(.*?)\s*```$", s, re.S)
    if fence:
        s = fence.group(1)
    try:
        return json.loads(s), None
    except json.JSONDecodeError as e:
        return None, f"not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}"


class Executor:
    def __init__(self, exp: Experiment, planned: list[PlannedCell], store: RunStore, cache: ResponseCache | None,
                 scorers: list, progress: RunProgress, budget: Any,
                 on_result: Callable[[CellResult], None] | None, cancel: threading.Event | None, bar):
        self.exp, self.planned, self.store, self.cache = exp, planned, store, cache
        self.scorers, self.progress, self.budget = scorers, progress, budget  # a workbench.costs.Budget
        self.on_result, self.cancel, self.bar = on_result, cancel, bar
        self.limiters: dict[str, TargetLimiter] = {}
        self.stop_reason: str | None = None
        self.fatal: BaseException | None = None
        self.rng = random.Random(exp.seed or 0)
        self.prices = _load_prices()  # once per run: reading config and price files per cell is slow
        self._result_rows: list[CellResult] = []
        self._cache_rows: list[tuple[str, Completion, dict[str, Any]]] = []
        self._flush_scheduled = False
        self._reached: set[str] = set()  # targets that have answered at least once
        self._unreachable: dict[str, int] = {}

    def limiter(self, p: PlannedCell) -> TargetLimiter:
        key = f"{p.target.profile}/{p.request.deployment}"
        if key not in self.limiters:
            prof = p.provider.profile
            conc = min(self.exp.concurrency, prof.max_concurrency or self.exp.concurrency)
            self.limiters[key] = TargetLimiter(key, conc, rpm=prof.rpm, tpm=prof.tpm, seed=self.exp.seed)
        return self.limiters[key]

    async def run(self) -> None:
        queue: asyncio.Queue[PlannedCell] = asyncio.Queue()
        for p in self.planned:
            queue.put_nowait(p)
        n_workers = min(len(self.planned), sum(lim.max_concurrency for lim in self._all_limiters()) or 1)
        workers = [asyncio.create_task(self._worker(queue)) for _ in range(max(1, n_workers))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()

    def _all_limiters(self) -> list[TargetLimiter]:
        for p in self.planned:
            self.limiter(p)
        return list(self.limiters.values())

    def _should_stop(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.stop_reason = self.stop_reason or "cancelled"
        return self.stop_reason is not None

    async def _worker(self, queue: asyncio.Queue) -> None:
        while not queue.empty() and not self._should_stop():
            p = queue.get_nowait()
            record = await self._run_cell(p)
            if record is None:  # stopped before sending
                return
            self._commit(record)

    UNREACHABLE_AFTER = 3  # cells that failed to connect, after all retries, before a target counts as down

    def _note_unreachable(self, p: PlannedCell, e: BaseException) -> None:
        """Stop the run when a target has never answered and several cells could not connect to it: that is a
        wrong endpoint or a network problem, and retrying the rest of the matrix would only take time."""
        name = self.limiter(p).name
        if not isinstance(e, openai.APIConnectionError) or name in self._reached:
            return
        self._unreachable[name] = self._unreachable.get(name, 0) + 1
        if self._unreachable[name] >= self.UNREACHABLE_AFTER and self.fatal is None:
            self.fatal = e
            self.stop_reason = f"{p.target.label}: cannot connect: {_error_message(e)}"

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write what finished since the last flush: cache entries first, then results, one transaction each.

        Runs on the next turn of the event loop after a cell finishes (group commit: the cells that finish
        together share one commit), so a result is durable within a millisecond or so of its answer.
        """
        self._flush_scheduled = False
        if self._cache_rows and self.cache is not None:
            rows, self._cache_rows = self._cache_rows, []
            self.cache.put_many(rows)
        if self._result_rows:
            rows, self._result_rows = self._result_rows, []
            self.store.put_many(rows)

    def _commit(self, record: CellResult) -> None:
        self._result_rows.append(record)
        self._schedule_flush()
        pr = self.progress
        pr.done += 1
        pr.errors += record.outcome == "error"
        pr.cache_hits += record.cache_hit
        pr.filtered += record.outcome in ("completion_filtered", "prompt_filtered")
        if not record.cache_hit and record.cost_usd:
            self._spend(record.cost_usd)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(pr.postfix(), refresh=False)
        if self.on_result is not None:
            try:
                self.on_result(record)
            except Exception:  # a display callback must not stop the run
                log.exception("on_result callback failed")
        if self.budget is not None and self.budget.exceeded:
            self.stop_reason = (f"budget exceeded: spent ${self.budget.spent:.4f} of ${self.budget.limit_usd:.4f}; "
                                f"{pr.done} cells finished and saved")

    def _spend(self, usd: float) -> None:
        self.progress.spent_usd += usd
        if self.budget is not None:
            self.budget.add(usd)

    async def _run_cell(self, p: PlannedCell) -> CellResult | None:
        started = utcnow()
        completion: Completion | None = None
        cache_hit = False
        if self.cache is not None:
            completion = self.cache.get(p.cache_key)
            cache_hit = completion is not None
        error: BaseException | None = None
        if completion is None:
            try:
                completion = await self._call(p)
            except asyncio.CancelledError:
                raise
            except CellStopped:
                return None
            except BaseException as e:  # recorded per cell; the run goes on
                error = e
            if completion is not None and self.cache is not None:
                self._cache_rows.append((p.cache_key, completion, p.provider.identity))
        return await self._record(p, completion, error, cache_hit, started)

    async def _call(self, p: PlannedCell) -> Completion:
        limiter = self.limiter(p)
        attempt = 0
        waited_429 = 0.0
        while True:
            if self._should_stop():
                raise CellStopped()
            try:
                async with limiter.slot(p.est_tokens if limiter.needs_tokens else 0):
                    completion = await p.provider.asend(p.request, timeout=self.exp.timeout_s)
                limiter.on_success()
                self._reached.add(limiter.name)
                completion.retries = attempt
                return completion
            except openai.RateLimitError as e:
                self.progress.rate_limited += 1
                wait = limiter.on_rate_limited(retry_after_seconds(e.response.headers if e.response else None))
                waited_429 += wait
                if waited_429 > RATE_LIMIT_PATIENCE_S:
                    raise
                attempt += 1
                self.progress.retries += 1
                await asyncio.sleep(wait + self.rng.uniform(0, 0.05 + 0.1 * wait))
            except FATAL as e:
                self.fatal = self.fatal or e
                self.stop_reason = f"{p.target.label}: {type(e).__name__}: {redact(e)}"
                raise
            except TRANSIENT as e:
                if attempt >= self.exp.max_retries:
                    self._note_unreachable(p, e)
                    raise
                attempt += 1
                self.progress.retries += 1
                await asyncio.sleep(backoff(attempt - 1, rng=self.rng))

    async def _record(self, p: PlannedCell, c: Completion | None, error: BaseException | None, cache_hit: bool,
                      started: str) -> CellResult:
        cell, req = p.cell, p.request
        fields: dict[str, Any] = dict(
            cell_key=p.cell_key, experiment=self.exp.name, case_id=cell.case.id, variant=cell.variant.name,
            target=p.target.label, profile=p.target.profile, deployment=req.deployment, model=req.model.name,
            repeat=cell.repeat, messages=req.messages, params=req.params, cache_hit=cache_hit, started_at=started,
            warnings=list(req.warnings), scores=[], content_filter={}, filter_flags=[], finished_at=started,
        )
        if c is None:
            fields.update(outcome="error", error_type=type(error).__name__ if error else "Error",
                          error_message=_error_message(error))
        else:
            u, cf = c.usage, c.content_filter
            fields.update(
                output=c.text, outcome=c.outcome, finish_reason=c.finish_reason, latency_s=c.latency_s,
                request_id=c.request_id, system_fingerprint=c.system_fingerprint, retries=c.retries,
                prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, cached_tokens=u.cached_tokens,
                reasoning_tokens=u.reasoning_tokens, cost_usd=_cost_usd(c, req.model, self.prices),
                content_filter=cf.model_dump() if not cf.empty else {}, filter_flags=cf.flagged,
                tool_calls=list(c.tool_calls or []),
            )
            if c.outcome == "prompt_filtered":
                fields.update(error_type="content_filter", error_message=c.error_message)
            if cell.variant.wants_json and c.text:
                fields["parsed"], fields["parse_error"] = parse_json_output(c.text)
        # the values come from our own typed records: construct without re-validating (hot path)
        rec = CellResult.model_construct(**{**_CELL_DEFAULTS, **fields})
        if self.scorers:
            rec.scores = await self._score(rec, cell)
            for s in rec.scores:  # judge scorers spend tokens too
                extra = s.metadata.get("cost_usd")
                if extra and not cache_hit:
                    self._spend(float(extra))
        rec.finished_at = utcnow()
        return rec

    async def _score(self, rec: CellResult, cell: Cell) -> list[Score]:
        from ..scorers import ScoreInput

        inp = ScoreInput(output=rec.output, parsed=rec.parsed, expected=cell.case.expected, vars=cell.case.vars,
                         case_id=cell.case.id, variant=cell.variant.name, messages=rec.messages, outcome=rec.outcome)
        out: list[Score] = []
        for scorer in self.scorers:
            if rec.outcome == "error":  # nothing to score: the call failed (see error_type)
                out.append(Score(scorer=scorer.name, error="call failed; not scored"))
                continue
            try:
                s: Score = await scorer.ascore(inp)
            except Exception as e:  # scorers should not raise, but one that does must not stop the run
                s = Score(scorer=scorer.name, value=None, passed=None, error=f"{type(e).__name__}: {e}")
            out.append(s)
        return out


# CellResult.model_construct fills missing fields from these (plain values; factories are called per record)
_CELL_DEFAULTS: dict[str, Any] = {
    name: field.default for name, field in CellResult.model_fields.items()
    if field.default_factory is None and not field.is_required()
}


def _error_message(error: BaseException | None) -> str:
    if error is None:
        return "unknown error"
    if isinstance(error, openai.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        msg = body.get("message") or str(error)
        return redact(f"HTTP {error.status_code}: {msg}")
    if isinstance(error, openai.APIConnectionError):  # "Connection error." alone does not say where or why
        url = getattr(getattr(error, "request", None), "url", None)
        cause = error.__cause__ or error.__context__
        where = f" to {url.scheme}://{url.host}{f':{url.port}' if url.port else ''}" if url is not None else ""
        return redact(f"{error}{where}" + (f" ({cause})" if cause else ""))
    return redact(f"{error}") or type(error).__name__


