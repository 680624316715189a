"""The notebook side of a run: what ``notebooks/03_evaluate.ipynb`` calls, so its cells stay short and testable.

:func:`resolve_experiment` applies a run's parameters to a spec (through ``Experiment.replace``, the one
validated way), :func:`estimate` prices it, :func:`run_experiment` runs it into the run folder and records
what the manifest needs (``experiment.json``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError, SpecError

if TYPE_CHECKING:  # pragma: no cover
    from ..experiment import Experiment
    from ..providers import Provider
    from ..results import Results


from .layout import write_experiment_info  # noqa: F401 - where notebooks and tests have always found it


def resolve_experiment(spec: str | Path | Experiment | None = None, *, targets: str | Sequence[str] | None = None,
                       sample_size: int | None = None, repeats: int | None = None, seed: int | None = None,
                       budget_usd: float | None = None, temperature: float | None = None,
                       sample_seed: int | None = None) -> Experiment:
    """The experiment a run executes: ``spec`` (a YAML path, a shipped example's name, an Experiment, or None
    for the demo) with the run's overrides applied. None leaves a field as the spec has it.

    ``seed`` is the request seed; ``sample_seed`` picks the cases of ``sample_size`` - two runs that differ only
    in ``seed`` or ``temperature`` run on the same cases."""
    from ..examples import EXAMPLES, example_path, load_example
    from ..experiment import Experiment, apply_overrides, flag_error, load_experiment

    if spec is None:
        exp = load_example()
    elif isinstance(spec, Experiment):
        exp = spec
    else:
        path = Path(spec).expanduser()
        if path.is_file():
            exp = load_experiment(path)
        elif str(spec) in EXAMPLES and example_path(str(spec)).is_file():
            exp = load_example(str(spec))
        else:
            raise DataError(f"spec = {spec!r}: no such experiment file (relative paths resolve from "
                            f"{Path.cwd()}). Give a YAML file or a shipped example "
                            f"({', '.join(n for n in EXAMPLES if example_path(n).is_file())}).")
    variants = None
    if temperature is not None:  # a notebook parameter for every variant at once
        try:
            variants = [v.replace(params={**v.params, "temperature": temperature}) for v in exp.variants]
        except SpecError as e:
            raise flag_error([(f"temperature {temperature!r}", e.problems[0][1])], kind="notebook parameter") from None
    return apply_overrides(exp, {
        "targets": ("targets", [targets] if isinstance(targets, str) else targets),
        "sample_size": ("sample", sample_size),
        "sample_seed": ("sample_seed", sample_seed),
        "repeats": ("repeats", repeats),
        "seed": ("seed", seed),
        "budget_usd": ("budget_usd", budget_usd),
        "temperature": ("variants", variants),
    }, kind="notebook parameter")


def load_providers(providers: str | Mapping[str, Provider] | None) -> dict[str, Provider] | None:
    """Providers for a run: a mapping, or ``"module:function"`` naming a function that returns one (how a
    papermill run plugs in a fake backend or a custom transport; the module must be importable)."""
    if providers is None or isinstance(providers, Mapping):
        return dict(providers) if providers else None
    module, _, attr = str(providers).partition(":")
    if not module or not attr:
        raise DataError(f"providers = {providers!r}: expected 'module:function' returning {{profile: Provider}}.")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise DataError(f"providers = {providers!r}: cannot import it ({e}). Is the module on PYTHONPATH?") from None
    value = fn() if callable(fn) else fn
    if not isinstance(value, Mapping):
        raise DataError(f"providers = {providers!r} returned {type(value).__name__}, "
                        "not a mapping of profile -> Provider.")
    return dict(value)


def estimate(exp: Experiment, providers: str | Mapping[str, Provider] | None = None):
    """The priced plan of the run (a :class:`workbench.costs.MatrixEstimate`): upper bound and expected cost,
    with the date of the prices. Fails before anything is sent if a template variable is missing."""
    from ..harness import estimate as estimate_experiment
    from ..harness import resolve_providers

    return estimate_experiment(exp, resolve_providers(exp, load_providers(providers)))


def run_experiment(exp: Experiment, run_dir: str | Path | None = None, *,
                   providers: str | Mapping[str, Provider] | None = None, budget_usd: float | None = None,
                   progress: bool = True, cache: Any = True, source: str | None = None, resume: bool = False,
                   record: bool | None = None, report: bool = False, resend_changed: bool = False,
                   mode: str = "online", poll_interval_s: float | None = None, batch: Any = None,
                   wait: bool = True) -> Results:
    """Run ``exp`` into ``run_dir`` and keep it in the run history (:mod:`workbench.history`).

    ``mode="batch"`` submits through the provider's Batch API and polls every ``poll_interval_s`` seconds
    (default 60; or give ``batch``, a :class:`~workbench.batch.BatchSettings`) until the batches are merged
    (``wait``); an interrupted kernel is collected later with ``workbench batch resume RUN_DIR``.

    - ``run_dir`` None: a new folder ``<history root>/<experiment>/<run-id>/`` - or, with ``resume``, the
      newest unfinished or finished run of the same experiment version (what ``workbench eval`` does).
    - ``experiment.json`` records what a manifest needs before the first call (spec, base folder, dataset
      hash, provider identities, how many calls).
    - ``record`` (default: when no ``run_dir`` was given, i.e. the notebook runs interactively): write the
      manifest when the run ends and update the history's index - ``workbench run`` records the runs it
      executes itself, so a papermill run (which passes ``run_dir``) does not. ``report`` writes report.html too.
    - ``source``: what started the run, for the history (default: ``notebook``).
    - ``resend_changed``: send again the finished cells whose request changed (see :func:`workbench.harness.run`).
    """
    from ..harness import resolve_providers, run
    from ..history import default_run_dir, new_run_dir

    if mode not in ("online", "batch"):
        raise DataError(f"mode = {mode!r} (notebook parameter): use 'online' or 'batch'.")
    if poll_interval_s is not None and (not isinstance(poll_interval_s, (int, float)) or poll_interval_s < 0):
        raise DataError(f"poll_interval_s = {poll_interval_s!r} (notebook parameter): seconds between batch status "
                        f"checks, 0 or more.")
    if mode == "batch" and batch is None:
        from ..batch import DEFAULT_POLL_S, BatchSettings

        batch = BatchSettings(poll_interval_s=DEFAULT_POLL_S if poll_interval_s is None else float(poll_interval_s))

    provs = resolve_providers(exp, load_providers(providers))
    record = run_dir is None if record is None else record
    source = source or "notebook"
    if run_dir is None:
        run_dir = default_run_dir(exp.name, exp.fingerprint()) if resume else new_run_dir(exp.name)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_experiment_info(exp, run_dir, provs, source=source)
    if record:
        from .finalize import begin_run

        begin_run(run_dir, experiment=exp.name, source=source, fingerprint=exp.fingerprint(),
                  notebook=_notebook_info(source))
    try:
        results = run(exp, out=run_dir, providers=provs, progress=progress, budget_usd=budget_usd, cache=cache,
                      resend_changed=resend_changed, mode=mode, batch=batch,
                      wait=wait)
    except BaseException as e:
        if record:  # refused by the budget, a target that cannot be reached, Ctrl-C: the history says so
            from .finalize import record_failure

            record_failure(run_dir, e, source=source, notebook=_notebook_info(source))
        raise
    if record:
        from .finalize import record_run

        record_run(results, source=source, notebook=_notebook_info(source), report=report)
    return results


def _notebook_info(source: str):
    """The notebook a kernel runs (Jupyter tells its kernels through ``JPY_SESSION_NAME``), for the manifest."""
    import os

    from .manifest import NotebookInfo, file_sha256

    path = os.environ.get("JPY_SESSION_NAME") if source == "notebook" else None
    if path and Path(path).suffix == ".ipynb":
        return NotebookInfo(path=path, name=Path(path).name, sha256=file_sha256(path))
    return None


def readable(table: Any, *, rate: bool | None = None):
    """A results table as people read it in a notebook: no index column, counts as integers, dollars with
    significant digits, a mean with its interval in one column (a percentage for pass rates), the columns a
    reader does not need (``method``, internal flags) left out. Returns a pandas ``Styler``."""
    import pandas as pd

    from .. import formatting as fmt

    df = pd.DataFrame(table).copy()
    if {"mean", "ci_low", "ci_high"} <= set(df.columns):
        rates = df["method"].map(fmt.is_rate) if "method" in df.columns else pd.Series(False, index=df.index)
        if rate is not None:
            rates = pd.Series(rate, index=df.index)
        df.insert(list(df.columns).index("mean"), "score [95% CI]",
                  [fmt.interval(m, lo, hi, rate=bool(r)) for m, lo, hi, r in
                   zip(df["mean"], df["ci_low"], df["ci_high"], rates)])
        df = df.drop(columns=["mean", "ci_low", "ci_high"])
    df = df.drop(columns=[c for c in df.columns if c in ("method", "_significant") or str(c).startswith("_")])
    formats: dict[str, Any] = {}
    for col in df.columns:
        name = str(col)
        if "usd" in name or name == "cost":
            formats[col] = fmt.usd
        elif name.endswith("tokens") or name.startswith("n_") or name in ("n", "calls", "pairs", "cases"):
            formats[col] = fmt.count
        elif pd.api.types.is_float_dtype(df[col]):
            formats[col] = lambda v: fmt.number(v, 3)
    return df.style.hide(axis="index").format(formats, na_rep=fmt.MISSING)
