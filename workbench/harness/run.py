"""The entry points: :func:`run` (sync, Jupyter-safe), :func:`arun` (async), :func:`start` (in the background).

``arun`` is the pipeline in order: plan (every request rendered and checked) -> the run ledger brought up to
the plan (new cells added, failed cells back to planned, a changed request refused) -> budget gate on the
uncached part -> preflight of every target with work left -> execute (cells claimed from the ledger) ->
status and totals from the ledger -> :class:`~workbench.results.Results`, read from the ledger page by page.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .._sync import run_sync
from ..errors import BudgetExceeded, ConfigError, DataError, PreflightFailed, WorkbenchError
from ..experiment import Experiment
from ..ledger import DEFAULT_LEASE_S, RunLedger
from ..providers import Provider
from ..records import CellResult, utcnow
from ..results import Results
from ..store import ResponseCache
from .execute import RATE_LIMIT_PATIENCE_S, Executor, RunProgress
from .plan import PlannedCell, Planner, estimate_planned

if TYPE_CHECKING:  # pragma: no cover
    from ..batch.engine import BatchSettings

log = logging.getLogger("workbench.harness")


def default_run_dir(exp: Experiment) -> Path:
    """Where results go when no ``out`` is given: a folder in the run history, the newest resumable run of the
    same experiment version if there is one, so re-running the same experiment resumes it
    (:func:`workbench.history.default_run_dir`)."""
    from ..history import default_run_dir as history_run_dir

    return history_run_dir(exp.name, exp.fingerprint())


def _make_bar(total: int, initial: int, name: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="call", dynamic_ncols=True, smoothing=0.1,
                mininterval=0.2)


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
    resend_changed: bool = False,
    preflight: bool = True,
    mode: Literal["online", "batch"] = "online",
    batch: BatchSettings | None = None,
    wait: bool = True,
    on_stream: Callable[[PlannedCell, str], None] | None = None,
) -> Results:
    """Run ``experiment`` and return its :class:`Results` (see :func:`run`)."""
    exp = experiment
    if mode not in ("online", "batch"):
        raise DataError(f"mode = {mode!r}: use 'online' (send each call now) or 'batch' (the provider's Batch API).")
    if mode == "batch" and batch is None:
        from ..batch.engine import BatchSettings as _Settings

        batch = _Settings()
    planner = Planner(exp, providers)
    run_dir = Path(out) if out is not None else default_run_dir(exp)
    ledger = RunLedger(run_dir)
    try:
        return await _run_in(exp, planner, ledger, run_dir, cache=cache, progress=progress, budget_usd=budget_usd,
                             on_result=on_result, cancel=cancel, state=state, resend_changed=resend_changed,
                             preflight=preflight, batch=batch if mode == "batch" else None,
                             wait=wait, on_stream=on_stream)
    finally:
        ledger.close()


async def _run_in(exp: Experiment, planner: Planner, ledger: RunLedger, run_dir: Path, *, cache, progress: bool,
                  budget_usd: float | None, on_result, cancel, state: RunProgress | None, resend_changed: bool,
                  preflight: bool, batch: BatchSettings | None = None, wait: bool = True,
                  on_stream=None) -> Results:
    fingerprint = exp.fingerprint()
    previous = ledger.get_meta("fingerprint")
    if previous and previous != fingerprint:
        raise DataError(f"{run_dir} holds results of a different version of experiment {exp.name!r} "
                        f"(fingerprint {previous}, now {fingerprint}). Use another output folder or delete it.")
    # renders every request: a bad template or model fails here, before anything is sent or stored
    sync = ledger.sync_plan((p.ledger_row() for p in planner), resend_changed=resend_changed)
    if sync.resent:
        log.warning("%s: re-sending %d cells whose request changed (%s)", run_dir, sync.resent,
                    "; ".join(sync.changes[:3]))
    ledger.set_meta("fingerprint", fingerprint)
    ledger.set_meta("experiment", exp.to_dict())
    response_cache = _open_cache(cache)
    try:
        # a batch is priced at batch rates, on what it submits (the batch engine's own gate)
        budget = None if batch is not None else _budget_gate(exp, planner, ledger, response_cache, budget_usd)
        if preflight:
            try:
                await _preflight(planner, ledger, response_cache)
            except PreflightFailed as e:
                if not ledger.live_owners():
                    ledger.set_meta("status", f"refused: preflight: profile {e.profile} cannot be used")
                raise
        if batch is not None:
            from ..batch.engine import run_batch_in

            return await run_batch_in(exp, planner, ledger, run_dir, response_cache, batch, budget_usd=budget_usd,
                                      progress=progress, wait=wait)
        return await _execute(exp, planner, ledger, run_dir, response_cache, budget, progress=progress,
                              on_result=on_result, cancel=cancel, state=state, on_stream=on_stream)
    finally:
        if response_cache is not None and not isinstance(cache, ResponseCache):
            response_cache.close()


def _pending(planner: Planner, ledger: RunLedger):
    """The planned cells nobody has finished (in plan order), rendered."""
    return (planner.cell(seq) for seq in ledger.pending_seqs())


def _budget_gate(exp: Experiment, planner: Planner, ledger: RunLedger, cache: ResponseCache | None,
                 budget_usd: float | None):
    limit = budget_usd if budget_usd is not None else exp.budget_usd
    if limit is None:
        return None
    from ..costs import Budget

    budget = Budget(limit)
    uncached = [p for p in _pending(planner, ledger) if cache is None or not cache.has(p.cache_key)]
    try:
        # a model without a price cannot be held to a budget: that is an error too, not a silent pass
        budget.check_estimate(estimate_planned(uncached))
    except WorkbenchError as e:
        ledger.set_meta("status", "refused: over budget" if isinstance(e, BudgetExceeded) else "refused")
        raise type(e)(f"Experiment {exp.name!r}, {len(uncached)} uncached calls: {e}") from None
    return budget


async def _preflight(planner: Planner, ledger: RunLedger, cache: ResponseCache | None) -> None:
    """Check each target that has cells left - credentials, then one cheap call - before the first request.
    A target that fails is fine only if the cache answers every cell it has left (an offline re-run)."""
    from ..providers.preflight import apreflight

    targets = planner.targets()
    todo = [t for t in ledger.pending_targets() if t in targets]
    by_provider: dict[int, tuple[Provider, list[str]]] = {}
    for label in todo:
        prov = targets[label]
        by_provider.setdefault(id(prov), (prov, []))[1].append(label)
    if not by_provider:
        return
    checks = await asyncio.gather(*(apreflight(prov) for prov, _ in by_provider.values()))
    for (prov, labels), check in zip(by_provider.values(), checks):
        if check.ok:
            continue
        if cache is not None and all(cache.has(p.cache_key) for p in _pending(planner, ledger)
                                     if p.target.label in labels):
            log.warning("%s; every cell left for it is in the response cache, so the run goes on", check.error())
            continue
        raise PreflightFailed(check.error(labels[0]) + " Nothing was sent; finished cells are kept.",
                              prov.profile.name)


async def _execute(exp: Experiment, planner: Planner, ledger: RunLedger, run_dir: Path,
                   response_cache: ResponseCache | None, budget, *, progress: bool, on_result, cancel,
                   state: RunProgress | None, on_stream=None) -> Results:
    scorers = _build_scorers(exp.scorers)
    totals = ledger.totals()
    pr = state or RunProgress()
    pr.total = len(planner)
    pr.done = pr.skipped = totals["stored"] - totals["errors"]
    pr.spent_usd = totals["spent_usd"]
    owner = ledger.register_owner(DEFAULT_LEASE_S)
    ledger.set_meta("status", "running")
    ledger.set_meta("started_at", ledger.get_meta("started_at") or utcnow())
    bar = _make_bar(pr.total, pr.done, exp.name, progress)
    ex = Executor(exp, planner, ledger, owner, response_cache, scorers, pr, budget, on_result, cancel, bar,
                  lease_s=DEFAULT_LEASE_S, rate_limit_patience_s=exp.rate_limit_patience_s or RATE_LIMIT_PATIENCE_S,
                  on_stream=on_stream)
    status = "complete"
    try:
        await ex.run()
        if ex.stop_reason:
            status = f"stopped: {ex.stop_reason}"
    except (asyncio.CancelledError, KeyboardInterrupt):
        status = "interrupted"
        raise
    except BaseException as e:
        status = f"failed: {type(e).__name__}: {e}"
        raise
    finally:
        ex.flush()  # whatever finished in the last turn of the loop
        if bar is not None:
            bar.close()
        for provider in {id(p): p for p in planner.providers.values()}.values():
            try:
                await provider.aclose()  # before this loop ends, or its connections are closed too late
            except Exception:  # pragma: no cover - closing must not hide the run's own outcome
                log.debug("closing %r failed", provider, exc_info=True)
        totals = ledger.totals()
        if status == "complete" and totals["errors"]:
            status = "complete with errors"
        ledger.finish_owner(owner, status)
        if not [o for o in ledger.live_owners() if o != owner]:  # the last one out says how the run ended
            ledger.set_meta("status", status)
            ledger.set_meta("finished_at", utcnow())
        ledger.set_meta("progress", {"total": pr.total, "done": totals["stored"], "errors": totals["errors"],
                                     "cache_hits": totals["cache_hits"], "rate_limited": totals["rate_limited"],
                                     "retries": totals["retries"], "spent_usd": totals["spent_usd"],
                                     "resumed": pr.skipped})
    info = {"spent_usd": totals["spent_usd"], "cache_hits": totals["cache_hits"],
            "rate_limited": totals["rate_limited"], "retries": totals["retries"], "resumed": pr.skipped,
            "cells": pr.total, "this_process": {"sent": pr.sent, "rate_limited": pr.rate_limited,
                                                "retries": pr.retries}}
    results = Results.load(run_dir, experiment=exp, status=status, info=info)
    if ex.fatal is not None:
        raise ConfigError(
            f"Run stopped early: {ex.stop_reason}. Check the profile's endpoint, deployment name and credentials "
            f"(workbench doctor). {len(results)} finished cells are saved in {run_dir}.") from ex.fatal
    return results


def _build_scorers(specs: list[Any]) -> list[Any]:
    if not specs:
        return []
    from ..scorers import build_scorer

    return [build_scorer(s) for s in specs]


def _open_cache(cache: bool | str | Path | ResponseCache) -> ResponseCache | None:
    if cache is False or cache is None:
        return None
    if isinstance(cache, ResponseCache):
        return cache
    return ResponseCache(None if cache is True else cache)


def run(
    experiment: Experiment,
    *,
    out: str | Path | None = None,
    cache: bool | str | Path | ResponseCache = True,
    providers: Mapping[str, Provider] | None = None,
    progress: bool = True,
    budget_usd: float | None = None,
    on_result: Callable[[CellResult], None] | None = None,
    cancel: threading.Event | None = None,
    resend_changed: bool = False,
    mode: Literal["online", "batch"] = "online",
    batch: BatchSettings | None = None,
    wait: bool = True,
    on_stream: Callable[[PlannedCell, str], None] | None = None,
) -> Results:
    """Run an experiment to the end and return its :class:`Results`.

    Works from scripts and from notebooks (where an event loop is already running, the run gets its own loop
    in a helper thread). Ctrl-C / interrupting the kernel keeps every finished cell; run again to resume.

    Args:
        out: the run folder. Default: in the run history (``reports/<experiment>/<run-id>/``), resuming the
            newest run of the same experiment version if there is one.
        cache: the response cache: True (the shared default), False (none), a path, or a ResponseCache.
        providers: profile name -> Provider, e.g. a fake backend's (``FakeBackend().provider()``).
        progress: show a progress bar (tqdm; a widget in notebooks).
        budget_usd: refuse to start above, and stop when spend crosses, this many dollars (default: the
            experiment's ``budget_usd``).
        on_result: called with each finished :class:`CellResult` (from the run's thread).
        cancel: a ``threading.Event``; setting it stops the run after the calls in flight.
        resend_changed: when ``out`` holds finished cells whose request has changed since (another endpoint,
            api-version, deployment or body), send those cells again into this folder. Without it such a re-run
            is refused (:class:`~workbench.errors.RequestChanged` says what changed), so one folder never mixes
            answers to two different requests.
        mode: ``"online"`` (default) sends each call now; ``"batch"`` submits the calls to the provider's Batch
            API (half price, its own quota, done within 24 h): one file per target and deployment, tracked in the
            run folder, merged by cell key. Cells done or in the response cache are not submitted. Targets must
            be marked batch-capable (``batch = true`` or ``batch_deployments`` in the profile). See
            :mod:`workbench.batch` (``resume``, ``cancel``, ``batch_status``).
        batch: how a batch run polls and splits files (:class:`~workbench.batch.BatchSettings`: poll interval,
            default 60 s; lines and bytes per file, default the provider's limits).
        wait: with ``mode="batch"``, poll until every batch has ended and is merged (default); False returns
            after submitting (``workbench.batch.resume(out)`` collects later).
        on_stream: stream every call and report its text as it arrives: ``on_stream(planned_cell, text_so_far)``
            (from the run's thread). Off by default: a batch run does not pay for streaming.

    Any number of processes may run the same experiment into the same ``out`` at once: they share the cells
    (each claimed in the run ledger before it is sent), and each returns the whole run.
    """
    return run_sync(arun(experiment, out=out, cache=cache, providers=providers, progress=progress,
                         budget_usd=budget_usd, on_result=on_result, cancel=cancel, resend_changed=resend_changed,
                         mode=mode, batch=batch, wait=wait, on_stream=on_stream),
                    thread_name=f"workbench-run-{experiment.name}")


class RunHandle:
    """A run going on in a background thread (the widgets use this so the notebook stays responsive).

    ``state`` holds live counters (:class:`RunProgress`); ``cancel()`` stops it after the calls in flight;
    ``wait()`` joins it and returns its Results (or raises its error).
    """

    def __init__(
        self,
        experiment: Experiment,
        *,
        out: str | Path | None = None,
        cache: bool | str | Path | ResponseCache = True,
        providers: Mapping[str, Provider] | None = None,
        progress: bool = False,
        budget_usd: float | None = None,
        on_result: Callable[[CellResult], None] | None = None,
        on_stream: Callable[[PlannedCell, str], None] | None = None,
    ):
        self.cancel_event = threading.Event()
        self.state = RunProgress()
        self.results: Results | None = None
        self.error: BaseException | None = None
        coro_kwargs = dict(out=out, cache=cache, providers=providers, progress=progress, budget_usd=budget_usd,
                           on_result=on_result, cancel=self.cancel_event, state=self.state, on_stream=on_stream)
        self._thread = threading.Thread(target=self._target, args=(experiment, coro_kwargs), daemon=True,
                                        name=f"workbench-run-{experiment.name}")
        self._thread.start()

    def _target(self, experiment: Experiment, coro_kwargs: dict[str, Any]) -> None:
        try:
            self.results = asyncio.run(arun(experiment, **coro_kwargs))
        except BaseException as e:  # re-raised by wait()
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


def start(
    experiment: Experiment,
    *,
    out: str | Path | None = None,
    cache: bool | str | Path | ResponseCache = True,
    providers: Mapping[str, Provider] | None = None,
    budget_usd: float | None = None,
    on_result: Callable[[CellResult], None] | None = None,
    on_stream: Callable[[PlannedCell, str], None] | None = None,
) -> RunHandle:
    """Start a run in the background and return a :class:`RunHandle` (``.cancel()``, ``.wait()``, ``.state``).

    The keywords are :func:`run`'s; there is no progress bar (a widget shows ``handle.state`` instead).
    """
    return RunHandle(experiment, out=out, cache=cache, providers=providers, budget_usd=budget_usd,
                     on_result=on_result, on_stream=on_stream)
