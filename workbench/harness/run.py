"""The entry points: :func:`run` (sync, Jupyter-safe), :func:`arun` (async), :func:`start` (in the background).

``arun`` is the pipeline in order: plan -> open the run store (resume: skip finished cells) -> budget gate on
the uncached part -> execute -> status and totals into the store -> :class:`~workbench.results.Results`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .._sync import run_sync
from ..errors import BudgetExceeded, ConfigError, DataError, WorkbenchError
from ..experiment import Experiment
from ..providers import Provider
from ..records import CellResult, utcnow
from ..results import Results
from ..store import ResponseCache, RunStore
from .execute import Executor, RunProgress
from .plan import estimate_planned, plan

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
        from ..costs import Budget

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
    ex = Executor(exp, pending, store, response_cache, scorers, pr, budget, on_result, cancel, bar)
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
    """
    return run_sync(arun(experiment, out=out, cache=cache, providers=providers, progress=progress,
                         budget_usd=budget_usd, on_result=on_result, cancel=cancel),
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
    ):
        self.cancel_event = threading.Event()
        self.state = RunProgress()
        self.results: Results | None = None
        self.error: BaseException | None = None
        coro_kwargs = dict(out=out, cache=cache, providers=providers, progress=progress, budget_usd=budget_usd,
                           on_result=on_result, cancel=self.cancel_event, state=self.state)
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
) -> RunHandle:
    """Start a run in the background and return a :class:`RunHandle` (``.cancel()``, ``.wait()``, ``.state``).

    The keywords are :func:`run`'s; there is no progress bar (a widget shows ``handle.state`` instead).
    """
    return RunHandle(experiment, out=out, cache=cache, providers=providers, budget_usd=budget_usd,
                     on_result=on_result)
