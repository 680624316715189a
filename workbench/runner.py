"""Run an experiment: every cell of the matrix, concurrently, paced per target, stored as it finishes.

Pipeline (one function per stage, in the manner of papermill's ``execute``):
``plan`` (render every request, check variables, resolve targets) -> ``budget check`` -> ``open the run store``
(skip finished cells) -> ``execute`` (asyncio workers; cache, limiter, retries, scoring, store) -> ``Results``.

Nothing finished is lost: each cell is committed to the run store when it completes, and the response cache
means a re-run never pays for a finished call twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import openai

from .catalog import ModelInfo
from .errors import BackendError, BudgetExceeded, ConfigError, DataError, WorkbenchError
from .experiment import Cell, Experiment
from .providers import PreparedRequest, Provider
from .ratelimit import TargetLimiter, backoff, retry_after_seconds
from .records import Completion
from .results import CellResult, Results, ScoreRecord, utcnow
from .secrets import redact
from .store import ResponseCache, RunStore, content_hash, workbench_home
from .variants import Target, check_variables

log = logging.getLogger("workbench.runner")

# Errors worth retrying: the service may answer next time.
TRANSIENT = (openai.APITimeoutError, openai.APIConnectionError, openai.InternalServerError, BackendError)
# Errors that will fail every cell of a target the same way: stop early instead of burning the matrix.
FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError)
RATE_LIMIT_PATIENCE_S = 600.0  # give up on a cell after this long spent waiting on 429s


@dataclass
class PlannedCell:
    cell: Cell
    request: PreparedRequest
    target: Target
    provider: Provider
    cell_key: str
    cache_key: str

    @property
    def est_tokens(self) -> int:
        """Azure's arrival-time estimate (prompt + max output tokens); only needed under a TPM quota."""
        return _estimate_prompt_tokens(self.request) + int(self.request.max_output_tokens or 0)


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


class RunCancelled(WorkbenchError):
    pass


# ----------------------------------------------------------------------------------------------- planning


def resolve_providers(exp: Experiment, providers: Mapping[str, Provider] | None = None) -> dict[str, Provider]:
    """The given providers plus one per profile the experiment's targets name (SDK retries off: the runner
    retries itself)."""
    out: dict[str, Provider] = dict(providers or {})
    for v in exp.variants:
        for t in exp.targets_for(v):
            if t.profile not in out:
                out[t.profile] = Provider(t.profile, max_retries=0)  # the runner retries itself
    return out


def request_params(variant, seed: int | None = None) -> dict[str, Any]:
    """The parameters sent for ``variant``: its own, the experiment's seed, and its response format."""
    params = dict(variant.params)
    if seed is not None:
        params.setdefault("seed", seed)
    if variant.response_format:
        params["response_format"] = variant.response_format
    return params


def plan(exp: Experiment, providers: Mapping[str, Provider] | None = None) -> list[PlannedCell]:
    """Render every request of the matrix and resolve its target, or fail before anything is sent."""
    ds = exp.load_cases()
    problems = check_variables(exp.variants, ds.cases, ds.source)
    if problems:
        more = " (and possibly more)" if len(problems) >= 10 else ""
        raise DataError("Template variables are missing from the dataset" + more + ":\n  - " + "\n  - ".join(problems))
    provs = resolve_providers(exp, providers)
    planned: list[PlannedCell] = []
    seen_warnings: set[str] = set()
    base_dir = exp.base_dir
    for cell in exp.cells():
        provider = provs[cell.target.profile]
        try:
            info: ModelInfo = provider.model_info(cell.target.model)
        except WorkbenchError as e:
            raise ConfigError(f"Target {cell.target.label!r} (variant {cell.variant.name!r}): {e}") from None
        messages = cell.variant.render(cell.case, base_dir=base_dir)
        req = provider.prepare(messages, cell.target.model, warn=False, **request_params(cell.variant, exp.seed))
        for w in req.warnings:  # say each adaptation once per run, not once per cell
            if w not in seen_warnings:
                seen_warnings.add(w)
                log.warning("%s: %s", cell.variant.name, w)
        body = req.body()
        cache_key = ResponseCache.key(provider.identity, body, cell.repeat)
        cell_key = content_hash(exp.name, cell.key, cache_key)[:32]
        planned.append(PlannedCell(cell, req, cell.target, provider, cell_key, cache_key))
    return planned


def _estimate_prompt_tokens(req: PreparedRequest) -> int:
    try:
        from .tokens import count_messages

        return int(count_messages(req.messages, req.model.name).total)
    except Exception:  # an estimate is only for pacing: fall back to ~4 characters a token
        return sum(len(json.dumps(m.get("content", ""))) for m in req.messages) // 4 + 3 * len(req.messages) + 3


# ----------------------------------------------------------------------------------------------- costs


def _cost_usd(completion: Completion, model: ModelInfo, prices: Any = None) -> float | None:
    try:
        from .costs import actual_cost

        return float(actual_cost(completion.usage, model, prices=prices).usd)
    except Exception as e:  # an unknown price must not lose the result
        log.debug("no cost for %s: %s", model.name, e)
        return None


def _load_prices() -> Any:
    try:
        from .costs import load_prices

        return load_prices()
    except WorkbenchError as e:  # a broken price override must not stop a run; costs become unknown
        log.warning("prices unavailable: %s", e)
        return None


def estimate_cost(planned: list[PlannedCell]) -> float | None:
    """Upper-bound dollars for the planned cells (prompts exact, outputs at max tokens); None if a price is
    unknown."""
    try:
        return estimate_planned(planned).usd
    except WorkbenchError as e:
        log.warning("cannot estimate the cost: %s", e)
        return None


def estimate_planned(planned: list[PlannedCell], repeats: int = 1):
    """A :class:`workbench.costs.MatrixEstimate` with one row per planned call (labelled case/variant/target),
    each made ``repeats`` times."""
    from .costs import PlannedRequest, estimate_matrix_cost

    return estimate_matrix_cost(
        (PlannedRequest(p.request.messages, p.request.model.name, p.request.max_output_tokens,
                        labels={"case": p.cell.case.id, "variant": p.cell.variant.name, "target": p.target.label,
                                "model": p.request.model.name})
         for p in planned),
        repeats=repeats,
    )


def estimate(experiment: Experiment, providers: Mapping[str, Provider] | None = None):
    """Price a whole experiment before it runs (cases x variants x targets x repeats, images included).

    Returns a :class:`workbench.costs.MatrixEstimate`: ``.usd`` (worst case, outputs at max tokens),
    ``.summary(by=("variant", "model"))``, ``.to_frame()``.
    """
    # repeats send the same request: price the first and multiply
    first = [p for p in plan(experiment, providers) if p.cell.repeat == 0]
    return estimate_planned(first, repeats=experiment.repeats)


# ----------------------------------------------------------------------------------------------- executing


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


class _Executor:
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
        n_workers = min(len(self.planned), sum(l.max_concurrency for l in self._all_limiters()) or 1)
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
            except _Stopped:
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
                raise _Stopped()
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

    async def _score(self, rec: CellResult, cell: Cell) -> list[ScoreRecord]:
        from .scorers import Score, ScoreInput

        inp = ScoreInput(output=rec.output, parsed=rec.parsed, expected=cell.case.expected, vars=cell.case.vars,
                         case_id=cell.case.id, variant=cell.variant.name, messages=rec.messages, outcome=rec.outcome)
        out: list[ScoreRecord] = []
        for scorer in self.scorers:
            if rec.outcome == "error":  # nothing to score: the call failed (see error_type)
                out.append(ScoreRecord(scorer=scorer.name, error="call failed; not scored"))
                continue
            try:
                s: Score = await scorer.ascore(inp)
            except Exception as e:  # scorers should not raise, but one that does must not stop the run
                s = Score(scorer=scorer.name, value=None, passed=None, error=f"{type(e).__name__}: {e}")
            out.append(ScoreRecord(**s.model_dump()))
        return out


# CellResult.model_construct fills missing fields from these (plain values; factories are called per record)
_CELL_DEFAULTS: dict[str, Any] = {
    name: field.default for name, field in CellResult.model_fields.items()
    if field.default_factory is None and not field.is_required()
}


class _Stopped(Exception):
    pass


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


# ----------------------------------------------------------------------------------------------- entry points


def default_run_dir(exp: Experiment) -> Path:
    """Where results go when no ``out`` is given: one folder per experiment fingerprint, so re-running the
    same experiment resumes it."""
    return workbench_home() / "runs" / exp.name / exp.fingerprint()


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]


def _make_bar(total: int, initial: int, name: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="call", dynamic_ncols=True, smoothing=0.1)


async def arun(
    experiment: Experiment,
    *,
    out: str | Path | None = None,
    cache: bool | str | Path | ResponseCache = True,
    providers: Mapping[str, Provider] | None = None,
    progress: bool = True,
    budget_usd: float | None = None,
    on_result: Callable[[CellResult], None] | None = None,
    cancel: threading.Event | None = None,
    state: RunProgress | None = None,
) -> Results:
    """Run ``experiment`` and return its :class:`Results` (see :func:`run`)."""
    exp = experiment
    planned = plan(exp, providers)
    run_dir = Path(out) if out is not None else default_run_dir(exp)
    store = RunStore(run_dir)
    fingerprint = exp.fingerprint()
    previous = store.get_meta("fingerprint")
    if previous and previous != fingerprint:
        store.close()
        raise DataError(f"{run_dir} holds results of a different version of experiment {exp.name!r} "
                        f"(fingerprint {previous}, now {fingerprint}). Use another output folder or delete it.")
    store.set_meta("fingerprint", fingerprint)
    store.set_meta("experiment", exp.to_dict())
    store.set_meta("status", "running")
    store.set_meta("started_at", store.get_meta("started_at") or utcnow())
    done = store.done_keys()
    pending = [p for p in planned if p.cell_key not in done]
    response_cache = _open_cache(cache)
    limit = budget_usd if budget_usd is not None else exp.budget_usd
    budget = None
    if limit is not None:
        from .costs import Budget

        budget = Budget(limit)
        uncached = [p for p in pending if response_cache is None or response_cache.get(p.cache_key) is None]
        if response_cache is not None:
            response_cache.hits = response_cache.misses = 0
        try:
            # a model without a price cannot be held to a budget: that is an error too, not a silent pass
            budget.check_estimate(estimate_planned(uncached))
        except WorkbenchError as e:
            store.set_meta("status", "refused: over budget" if isinstance(e, BudgetExceeded) else "refused")
            store.close()
            raise type(e)(f"Experiment {exp.name!r}, {len(uncached)} uncached calls: {e}") from None
    scorers = _build_scorers(exp.scorers)
    pr = state or RunProgress()
    pr.total, pr.skipped, pr.done = len(planned), len(planned) - len(pending), len(planned) - len(pending)
    bar = _make_bar(len(planned), pr.done, exp.name, progress)
    ex = _Executor(exp, pending, store, response_cache, scorers, pr, budget, on_result, cancel, bar)
    status = "complete"
    try:
        await ex.run()
        if ex.stop_reason:
            status = f"stopped: {ex.stop_reason}"
    except (asyncio.CancelledError, KeyboardInterrupt):
        status = "interrupted"
        raise
    finally:
        ex.flush()  # whatever finished in the last turn of the loop
        if bar is not None:
            bar.close()
        for provider in {id(p.provider): p.provider for p in planned}.values():
            try:
                await provider.aclose()  # before this loop ends, or its connections are closed too late
            except Exception:  # pragma: no cover - closing must not hide the run's own outcome
                log.debug("closing %r failed", provider, exc_info=True)
        counts = store.counts()
        if status == "complete" and counts.get("error"):
            status = "complete with errors"
        store.set_meta("status", status)
        store.set_meta("finished_at", utcnow())
        store.set_meta("progress", {"total": pr.total, "done": pr.done, "errors": pr.errors,
                                    "cache_hits": pr.cache_hits, "rate_limited": pr.rate_limited,
                                    "retries": pr.retries, "spent_usd": pr.spent_usd, "resumed": pr.skipped})
        records = store.records()
        store.close()
        if response_cache is not None and not isinstance(cache, ResponseCache):
            response_cache.close()
    results = Results(records, exp, run_dir, status, info={"spent_usd": pr.spent_usd, "cache_hits": pr.cache_hits,
                                                           "rate_limited": pr.rate_limited, "retries": pr.retries,
                                                           "resumed": pr.skipped})
    if ex.fatal is not None:
        raise ConfigError(
            f"Run stopped early: {ex.stop_reason}. Check the profile's endpoint, deployment name and credentials "
            f"(workbench doctor). {len(records)} finished cells are saved in {run_dir}.") from ex.fatal
    return results


def _build_scorers(specs: list[Any]) -> list[Any]:
    if not specs:
        return []
    from .scorers import build_scorer

    return [build_scorer(s) for s in specs]


def _open_cache(cache: bool | str | Path | ResponseCache) -> ResponseCache | None:
    if cache is False or cache is None:
        return None
    if isinstance(cache, ResponseCache):
        return cache
    return ResponseCache(None if cache is True else cache)


def run(experiment: Experiment, **kwargs: Any) -> Results:
    """Run an experiment to the end and return its :class:`Results`.

    Works from scripts and from notebooks (where an event loop is already running, the run gets its own loop
    in a helper thread). Ctrl-C / interrupting the kernel keeps every finished cell; run again to resume.

    Keyword arguments: ``out`` (run folder; default: one per experiment version under the workbench home, so a
    re-run resumes), ``cache`` (True, False, a path or a ResponseCache), ``providers`` (profile name ->
    Provider, e.g. a fake backend's), ``progress`` (tqdm bar), ``budget_usd``, ``on_result`` (callback per
    finished cell), ``cancel`` (a threading.Event that stops the run).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(experiment, **kwargs))
    # inside Jupyter: a loop is running in this thread, so run ours in another
    box: dict[str, Any] = {}

    def target():
        try:
            box["result"] = asyncio.run(arun(experiment, **kwargs))
        except BaseException as e:  # re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=target, name=f"workbench-run-{experiment.name}", daemon=True)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


class RunHandle:
    """A run going on in a background thread (the widgets use this so the notebook stays responsive)."""

    def __init__(self, experiment: Experiment, **kwargs: Any):
        self.cancel_event = threading.Event()
        self.state = RunProgress()
        self.results: Results | None = None
        self.error: BaseException | None = None
        kwargs.setdefault("progress", False)
        self._thread = threading.Thread(target=self._target, args=(experiment, kwargs), daemon=True,
                                        name=f"workbench-run-{experiment.name}")
        self._thread.start()

    def _target(self, experiment: Experiment, kwargs: dict[str, Any]) -> None:
        try:
            self.results = asyncio.run(arun(experiment, cancel=self.cancel_event, state=self.state, **kwargs))
        except BaseException as e:
            self.error = e

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def cancel(self) -> None:
        self.cancel_event.set()

    def wait(self, timeout: float | None = None) -> Results | None:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.results


def start(experiment: Experiment, **kwargs: Any) -> RunHandle:
    """Start a run in the background and return a :class:`RunHandle` (``.cancel()``, ``.wait()``, ``.state``)."""
    return RunHandle(experiment, **kwargs)
