"""Execute a plan: asyncio workers, cells claimed from the run ledger, one limiter per target, retries, the
response cache, scoring, group commit.

Workers take cells from a small queue refilled by claiming the next cells in the ledger (one short write
transaction per refill), so any number of processes on one run folder share the matrix and never send a cell
whose claim is live elsewhere; a heartbeat thread keeps this process's claims alive. When nothing is left to
claim but other live processes still hold cells, the run waits for them, so every process ends with - and
reports - the whole run.

Every finished cell is written to the ledger within a turn of the event loop (group commit), answers go to the
response cache, and a cell that fails after its retries is recorded as an error cell - one cell never stops
the run. Errors that would fail every cell of a target (401/403/404, missing credentials, a target that never
connects) stop the run early instead of burning the matrix.

Two budgets, kept apart: a 429 waits (``retry-after``, a pause shared by the target's workers) and counts only
against ``rate_limit_patience_s`` of waiting; ``max_retries`` counts 5xx, timeouts and connection errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from ..catalog import ModelInfo
from ..errors import BackendError, CellFailed, CellStopped, ConfigError, LocalModelError, WorkbenchError
from ..experiment import Cell, Experiment
from ..ledger import DEFAULT_LEASE_S, RunLedger
from ..providers import error_text
from ..records import CellResult, Completion, Score, Step, ToolResult, Usage, utcnow
from ..secrets import redact
from ..store import ResponseCache
from ..tools import TOOL_RESULTS, ToolRunner, call_name, resolve_function
from .plan import PlannedCell, Planner, request_params
from .ratelimit import TargetLimiter, backoff, retry_after_seconds

log = logging.getLogger("workbench.harness")

# Errors worth retrying: the service may answer next time.
TRANSIENT = (openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError, BackendError)
# Errors that will fail every cell of a target the same way: stop early instead of burning the matrix.
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError, ConfigError,
         LocalModelError)
RATE_LIMIT_PATIENCE_S = 600.0  # default: give up on a cell after this long spent waiting on 429s


@dataclass
class RunProgress:
    """Live counters of a run (the widgets and the progress bar read these).

    ``done``, ``errors`` and ``spent_usd`` cover the whole run folder (cells finished by earlier runs and by
    other processes included); ``sent`` is what this process sent.
    """

    total: int = 0
    done: int = 0
    errors: int = 0
    cache_hits: int = 0
    filtered: int = 0
    rate_limited: int = 0
    retries: int = 0
    spent_usd: float = 0.0
    skipped: int = 0  # finished before this process started (an earlier run, or another process)
    sent: int = 0  # requests this process sent (retries included)
    started: float = field(default_factory=time.monotonic)

    def postfix(self) -> dict[str, str]:
        from ..formatting import usd

        return {"spent": usd(self.spent_usd), "errors": str(self.errors), "cached": str(self.cache_hits),
                "429s": str(self.rate_limited)}


def _cost_usd(completion: Completion, model: ModelInfo, prices: Any = None, batch: bool = False) -> float | None:
    try:
        from ..costs import actual_cost

        return float(actual_cost(completion.usage, model, batch=batch, prices=prices).usd)
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


def target_address(p: PlannedCell) -> str:
    """Where a target's requests go, for messages: its endpoint or base URL (never a key)."""
    ident = p.provider.identity
    return str(ident.get("endpoint") or ident.get("base_url") or f"the {ident.get('backend', '?')} backend")


class Executor:
    """Runs the cells of ``planner`` that it claims from ``ledger`` as ``owner`` (see the module docstring)."""

    CLAIM_MAX = 64  # cells claimed per ledger transaction (more: fewer commits; fewer: finer sharing)
    POLL_S = 0.25  # how often a process with nothing left to claim looks at the cells others hold

    def __init__(self, exp: Experiment, planner: Planner, ledger: RunLedger, owner: str,
                 cache: ResponseCache | None, scorers: list, progress: RunProgress, budget: Any,
                 on_result: Callable[[CellResult], None] | None, cancel: threading.Event | None, bar,
                 lease_s: float = DEFAULT_LEASE_S, rate_limit_patience_s: float = RATE_LIMIT_PATIENCE_S, *,
                 on_stream: Callable[[PlannedCell, str], None] | None = None):
        self.exp, self.planner, self.ledger, self.owner, self.cache = exp, planner, ledger, owner, cache
        self.scorers, self.progress, self.budget = scorers, progress, budget  # a workbench.costs.Budget
        self.on_result, self.cancel, self.bar = on_result, cancel, bar
        self.lease_s, self.patience_s = lease_s, rate_limit_patience_s
        self.on_stream = on_stream  # opt-in: calls are streamed, and on_stream(cell, text so far) sees them
        self.limiters: dict[str, TargetLimiter] = {}
        self.stop_reason: str | None = None
        self.fatal: BaseException | None = None
        self.rng = random.Random(exp.seed or 0)
        self.prices = _load_prices()  # once per run: reading config and price files per cell is slow
        self._result_rows: list[tuple[CellResult, float]] = []
        self._cache_rows: list[tuple[str, Completion, dict[str, Any]]] = []
        self._flush_scheduled = False
        self._reached: set[str] = set()  # targets that have answered at least once
        self._unreachable: dict[str, int] = {}
        self._queue: deque[PlannedCell] = deque()
        self._refill_lock: asyncio.Lock | None = None
        self._drained = False
        self._beat_stop = threading.Event()
        self._postfix_at = 0.0
        self.batch_pricing = False  # answers priced at Batch API rates (the batch engine records with this)

    def limiter(self, p: PlannedCell) -> TargetLimiter:
        return self._limiter(p.target.profile, p.request.deployment, p.provider)

    def _limiter(self, profile: str, deployment: str, provider) -> TargetLimiter:
        key = f"{profile}/{deployment}"
        if key not in self.limiters:
            prof = provider.profile
            conc = min(self.exp.concurrency, prof.max_concurrency or self.exp.concurrency)
            self.limiters[key] = TargetLimiter(key, conc, rpm=prof.rpm, tpm=prof.tpm, seed=self.exp.seed)
        return self.limiters[key]

    def _worker_count(self) -> int:
        """Enough workers to fill every target's concurrency (one limiter per profile and deployment)."""
        per_target: dict[str, int] = {}
        for _variant, target, _repeat in self.planner.per_case:
            prof = self.planner.providers[target.profile].profile
            per_target[f"{target.profile}/{target.model}"] = min(
                self.exp.concurrency, prof.max_concurrency or self.exp.concurrency)
        return max(1, min(len(self.planner), sum(per_target.values()) or 1))

    async def run(self) -> None:
        self._refill_lock = asyncio.Lock()
        beat = threading.Thread(target=self._heartbeat, name="workbench-ledger-heartbeat", daemon=True)
        beat.start()
        n_workers = self._worker_count()
        self.claim_size = max(1, min(self.CLAIM_MAX, n_workers))
        workers = [asyncio.create_task(self._worker()) for _ in range(n_workers)]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
            self._beat_stop.set()

    def _heartbeat(self) -> None:
        """Keep this owner's claims alive (a thread: a busy event loop must not let them expire)."""
        while not self._beat_stop.wait(self.lease_s / 3):
            try:
                self.ledger.heartbeat(self.owner)
            except Exception:  # a missed beat is retried; the lease is three beats long
                log.warning("ledger heartbeat failed", exc_info=True)

    def _should_stop(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.stop_reason = self.stop_reason or "cancelled"
        return self.stop_reason is not None

    async def _worker(self) -> None:
        while not self._should_stop():
            p = await self._next()
            if p is None:
                return
            record = await self._run_cell(p)
            if record is None:  # stopped before sending; the claim is released when the run ends
                return
            self._commit(*record)

    async def _next(self) -> PlannedCell | None:
        """The next cell to run: from the queue, else claimed from the ledger; None when the run is over."""
        if self._queue:
            return self._queue.popleft()
        async with self._refill_lock:
            while not self._queue:
                if self._should_stop() or self._drained:
                    return None
                claimed = self.ledger.claim(self.owner, self.claim_size)
                if claimed:
                    self._queue.extend(self.planner.cell(seq) for _key, seq in claimed)
                    break
                if not self.ledger.busy_elsewhere(self.owner):
                    self._drained = True
                    return None
                await asyncio.sleep(self.POLL_S)  # other processes hold the last cells; their answers are coming
                self._sync_progress()
        return self._queue.popleft() if self._queue else None

    def _sync_progress(self) -> None:
        """Counters from the ledger: what other processes finished shows up here too."""
        totals = self.ledger.totals()
        pr = self.progress
        pr.done, pr.errors, pr.spent_usd = totals["stored"], totals["errors"], totals["spent_usd"]
        if self.bar is not None:
            self.bar.n = pr.done
            self.bar.set_postfix(pr.postfix(), refresh=True)

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
        """Write what finished since the last flush: cache entries first, then the cells, one transaction each.

        Runs on the next turn of the event loop after a cell finishes (group commit: the cells that finish
        together share one commit), so a result is durable within a millisecond or so of its answer.
        """
        self._flush_scheduled = False
        if self._cache_rows and self.cache is not None:
            rows, self._cache_rows = self._cache_rows, []
            self.cache.put_many(rows)
        if self._result_rows:
            rows, self._result_rows = self._result_rows, []
            self.ledger.finish_many(rows)

    def _commit(self, record: CellResult, spent: float) -> None:
        self._result_rows.append((record, spent))
        self._schedule_flush()
        pr = self.progress
        pr.done += 1
        pr.errors += record.outcome == "error"
        pr.cache_hits += record.cache_hit
        pr.filtered += record.outcome in ("completion_filtered", "prompt_filtered")
        if spent:
            self._spend(spent)
        if self.bar is not None:
            self.bar.update(1)
            now = time.monotonic()
            if now - self._postfix_at > 0.5:  # formatting the postfix per call costs more than the call's record
                self._postfix_at = now
                self.bar.set_postfix(pr.postfix(), refresh=False)
        if self.on_result is not None:
            try:
                self.on_result(record)
            except Exception:  # a display callback must not stop the run
                log.exception("on_result callback failed")
        if self.budget is not None and self.budget.exceeded:
            from ..formatting import usd

            self.stop_reason = (f"budget exceeded: spent {usd(self.budget.spent)} of "
                                f"{usd(self.budget.limit_usd)}; "
                                f"{pr.done} cells finished and saved")

    def _spend(self, usd: float) -> None:
        self.progress.spent_usd += usd
        if self.budget is not None:
            self.budget.add(usd)

    async def _run_cell(self, p: PlannedCell) -> tuple[CellResult, float] | None:
        started = utcnow()
        if p.cell.variant.answers_tools or (p.cell.variant.tools and p.cell.case.vars.get(TOOL_RESULTS)):
            return await self._run_loop(p, started)
        completion: Completion | None = None
        cache_hit = False
        if self.cache is not None:
            completion = self.cache.get(p.cache_key)
            cache_hit = completion is not None
        error: BaseException | None = None
        rate_limited = 0
        if completion is None:
            try:
                completion, rate_limited = await self._call(p)
            except asyncio.CancelledError:
                raise
            except CellStopped:
                return None
            except CellFailed as e:
                error, rate_limited = e, e.rate_limited
            except BaseException as e:  # recorded per cell; the run goes on
                error = e
            if completion is not None and self.cache is not None:
                self._cache_rows.append((p.cache_key, completion, p.provider.identity))
        return await self._record(p, completion, error, cache_hit, started, rate_limited)

    async def _run_loop(self, p: PlannedCell, started: str) -> tuple[CellResult, float] | None:
        """A cell that loops model -> tools -> model up to the variant's ``max_steps``.

        Each step's request is its own response-cache entry, written the moment it is answered (not at the next
        group commit): a cell killed between steps comes back with its finished steps from the cache, and only
        the step that was in flight is sent again."""
        variant = p.cell.variant
        runner = self._tool_runner(p)
        req, steps, done = p.request, [], []
        error: BaseException | None = None
        rate_limited, paid = 0, 0.0
        for n in range(1, variant.max_steps + 1):
            key = p.cache_key if n == 1 else ResponseCache.key(p.provider.identity, req.body(), p.cell.repeat)
            c = self.cache.get(key) if self.cache is not None else None
            hit = c is not None
            if c is None:
                try:
                    c, waited = await self._call(p, req)
                except asyncio.CancelledError:
                    raise
                except CellStopped:
                    return None
                except BaseException as e:  # recorded with the steps so far; those are cached for the rerun
                    error = e
                    rate_limited += getattr(e, "rate_limited", 0) or 0
                    break
                rate_limited += waited
                if self.cache is not None:
                    self.cache.put_many([(key, c, p.provider.identity)])
            cost = _cost_usd(c, req.model, self.prices)
            paid += 0.0 if hit else (cost or 0.0)
            u = c.usage
            step = Step(step=n, request_fingerprint=key, output=c.text, tool_calls=c.tool_calls,
                        finish_reason=c.finish_reason, outcome=c.outcome, prompt_tokens=u.prompt_tokens,
                        completion_tokens=u.completion_tokens, cached_tokens=u.cached_tokens, cost_usd=cost,
                        latency_s=c.latency_s, cache_hit=hit)
            steps.append(step)
            done.append(c)
            if not c.tool_calls or c.outcome != "ok" or n == variant.max_steps:
                break
            step.tool_results = [await self._answer(runner, call) for call in c.tool_calls]
            req = self._next_request(p, req, c, step.tool_results)
        record, _ = await self._record(p, _loop_completion(done), error,
                                       bool(steps) and all(s.cache_hit for s in steps), started, rate_limited,
                                       steps=steps)
        if error is None and done and done[-1].tool_calls and len(steps) == variant.max_steps:
            record.warnings = [*record.warnings, f"stopped at max_steps = {variant.max_steps}: the last answer "
                               f"calls {', '.join(call_name(c) for c in done[-1].tool_calls)}, which were not run"]
        return record, paid + sum(float(s.metadata.get("cost_usd") or 0) for s in record.scores
                                  if not record.cache_hit)

    def _tool_runner(self, p: PlannedCell) -> ToolRunner:
        v = p.cell.variant
        functions = {name: resolve_function(ref, f"Variant {v.name!r}, tool_functions.{name}")
                     for name, ref in v.tool_functions.items()}
        return ToolRunner(functions, v.static_tool_results(p.cell.case, self.planner.source))

    @staticmethod
    async def _answer(runner: ToolRunner, call: dict[str, Any]) -> ToolResult:
        content, problem = await asyncio.to_thread(runner.answer, call)  # a slow tool must not stall the loop
        return ToolResult(tool_call_id=str(call.get("id") or ""), name=call_name(call), content=content,
                          error=problem)

    def _next_request(self, p: PlannedCell, req: Any, c: Completion, results: list[ToolResult]) -> Any:
        """The conversation so far, the model's calls and their results: the next step's request."""
        messages = [*req.messages, {"role": "assistant", "content": c.text or None, "tool_calls": c.tool_calls}]
        messages += [{"role": "tool", "tool_call_id": r.tool_call_id, "content": r.content} for r in results]
        params = request_params(p.cell.variant, self.exp.seed, p.cell.case, self.planner.source)
        return p.provider.prepare(messages, p.target.model, warn=False, **params)

    async def _call(self, p: PlannedCell, req: Any = None) -> tuple[Completion, int]:
        """Send one cell's request (``req``: a later step's) until it is answered; returns (completion, 429s
        waited on)."""
        req = req or p.request
        limiter = self.limiter(p)
        failures = 0  # 5xx, timeouts, connection errors: what max_retries counts
        n429 = 0
        waited_429 = 0.0
        while True:
            if self._should_stop():
                raise CellStopped()
            ticket = None
            try:
                async with limiter.slot(p.est_tokens if limiter.needs_tokens else 0) as ticket:
                    self.progress.sent += 1
                    completion = await p.provider.asend(req, timeout=self.exp.timeout_s,
                                                        on_delta=self._stream_to(p, limiter))
                    # inside the slot: the pace is learned before the next waiting worker goes
                    limiter.on_success(completion.rate_limit, ticket)
                self._reached.add(limiter.name)
                completion.retries = failures + n429
                return completion, n429
            except openai.RateLimitError as e:
                n429 += 1
                self.progress.rate_limited += 1
                headers = e.response.headers if e.response is not None else None
                wait = limiter.on_rate_limited(retry_after_seconds(headers), headers, ticket)
                if waited_429 + wait > self.patience_s:
                    raise self._gave_up(p, e, failures + n429, n429, waited_429) from e
                waited_429 += wait
                self.progress.retries += 1
                await asyncio.sleep(wait + self.rng.uniform(0, 0.05 + 0.1 * wait))
            except FATAL as e:
                self.fatal = self.fatal or e
                self.stop_reason = f"{p.target.label}: {type(e).__name__}: {redact(e)}"
                raise
            except TRANSIENT as e:
                failures += 1
                if failures > self.exp.max_retries:
                    self._note_unreachable(p, e)
                    raise self._gave_up(p, e, failures + n429, n429, waited_429) from e
                self.progress.retries += 1
                await asyncio.sleep(backoff(failures - 1, rng=self.rng))

    def _gave_up(self, p: PlannedCell, e: BaseException, attempts: int, n429: int, waited_429: float) -> CellFailed:
        """The error a cell ends with: what happened, the limit that was reached, the attempts and the target."""
        exp = self.exp
        what = _error_message(e)
        if isinstance(e, openai.RateLimitError):
            limit = (f"still rate limited after waiting {waited_429:.0f} s on {n429} answers of 429 "
                     f"(rate_limit_patience_s = {self.patience_s:g})")
        else:
            if isinstance(e, openai.APITimeoutError):
                what = f"no answer within timeout_s = {exp.timeout_s:g} s"
            limit = f"gave up after {attempts} attempt{'s' if attempts != 1 else ''} (max_retries = {exp.max_retries}"
            limit += f"; {n429} more waited on 429s)" if n429 else ")"
        return CellFailed(f"{what} - {limit}; target {p.target.label!r} ({p.request.deployment}) at "
                          f"{target_address(p)}", rate_limited=n429)

    def _stream_to(self, p: PlannedCell, limiter: TargetLimiter) -> Callable[[str], None] | None:
        """For a streamed run: a fresh accumulator per attempt, handing the text so far to ``on_stream``. The
        first piece of text ends the limiter's slow start (the answer is coming; the others need not wait for
        its end)."""
        if self.on_stream is None:
            return None
        parts: list[str] = []

        def on_delta(delta: str) -> None:
            if not parts:
                limiter.end_probe()
            parts.append(delta)
            try:
                self.on_stream(p, "".join(parts))
            except Exception:  # a display callback must not stop the call
                log.exception("on_stream callback failed")

        return on_delta

    async def _record(self, p: PlannedCell, c: Completion | None, error: BaseException | None, cache_hit: bool,
                      started: str, rate_limited: int = 0, *, steps: list[Step] | None = None
                      ) -> tuple[CellResult, float]:
        """The cell's record, and what was paid for it here (0 when the cache answered)."""
        cell, req = p.cell, p.request
        fields: dict[str, Any] = dict(
            cell_key=p.cell_key, experiment=self.exp.name, case_id=cell.case.id, variant=cell.variant.name,
            target=p.target.label, profile=p.target.profile, deployment=req.deployment, model=req.model.name,
            repeat=cell.repeat, messages=req.messages, params=req.params, cache_hit=cache_hit, started_at=started,
            warnings=list(req.warnings), scores=[], content_filter={}, filter_flags=[], finished_at=started,
            rate_limited=rate_limited, request_fingerprint=p.cache_key, steps=steps or [],
        )
        if c is None:
            cause = error.__cause__ if isinstance(error, CellFailed) and error.__cause__ is not None else error
            fields.update(outcome="error", error_type=type(cause).__name__ if cause else "Error",
                          error_message=_error_message(error))
        else:
            u, cf = c.usage, c.content_filter
            fields.update(
                output=c.text, outcome=c.outcome, finish_reason=c.finish_reason, latency_s=c.latency_s,
                first_token_s=c.first_token_s, tokens_per_s=c.tokens_per_s, streamed=c.streamed,
                request_id=c.request_id, system_fingerprint=c.system_fingerprint, retries=c.retries,
                prompt_tokens=u.prompt_tokens, completion_tokens=u.completion_tokens, cached_tokens=u.cached_tokens,
                reasoning_tokens=u.reasoning_tokens, cost_usd=_cost_usd(c, req.model, self.prices, self.batch_pricing),
                content_filter=cf.model_dump() if not cf.empty else {}, filter_flags=cf.flagged,
                tool_calls=list(c.tool_calls or []),
            )
            if error is not None:  # a loop that failed after some steps: the steps stay, the cell is an error
                cause = error.__cause__ if isinstance(error, CellFailed) and error.__cause__ is not None else error
                fields.update(outcome="error", error_type=type(cause).__name__, error_message=_error_message(error))
            if c.outcome == "prompt_filtered":
                fields.update(error_type="content_filter", error_message=c.error_message)
            if cell.variant.wants_json and c.text:
                fields["parsed"], fields["parse_error"] = parse_json_output(c.text)
        # the values come from our own typed records: construct without re-validating (hot path)
        rec = CellResult.model_construct(**{**_CELL_DEFAULTS, **fields})
        spent = 0.0 if cache_hit else (rec.cost_usd or 0.0)
        if self.scorers:
            rec.scores = await self._score(rec, cell)
            for s in rec.scores:  # judge scorers spend tokens too
                extra = s.metadata.get("cost_usd")
                if extra and not cache_hit:
                    spent += float(extra)
        rec.finished_at = utcnow()
        return rec, spent

    async def record(self, p: PlannedCell, completion: Completion | None, error: BaseException | None = None, *,
                     cache_hit: bool = False, started: str | None = None) -> tuple[CellResult, float]:
        """A cell's record (scored) and what was paid for it, for an answer that did not come through this
        executor's workers: a merged Batch API line, or a cache hit found before a batch is submitted."""
        return await self._record(p, completion, error, cache_hit, started or utcnow())

    async def _score(self, rec: CellResult, cell: Cell) -> list[Score]:
        from ..scorers import ScoreInput

        inp = ScoreInput(output=rec.output, parsed=rec.parsed, expected=cell.case.expected, vars=cell.case.vars,
                         case_id=cell.case.id, variant=cell.variant.name, messages=rec.messages, outcome=rec.outcome,
                         tool_calls=rec.tool_calls, steps=rec.steps)
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


def _loop_completion(done: list[Completion]) -> Completion | None:
    """One completion standing for a loop's steps: the last answer, the first answer's calls, tokens and
    latency summed (so the cell's cost is the sum of its steps')."""
    if not done:
        return None
    last = done[-1]
    usage = Usage(prompt_tokens=sum(c.usage.prompt_tokens for c in done),
                  completion_tokens=sum(c.usage.completion_tokens for c in done),
                  cached_tokens=sum(c.usage.cached_tokens for c in done),
                  reasoning_tokens=sum(c.usage.reasoning_tokens for c in done))
    return last.replace(usage=usage, latency_s=sum(c.latency_s for c in done), tool_calls=done[0].tool_calls,
                        retries=sum(c.retries for c in done))


def _error_message(error: BaseException | None) -> str:
    return error_text(error)


