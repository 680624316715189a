"""The notebook side of a run: what ``notebooks/03_evaluate.ipynb`` calls, so its cells stay short and testable.

:func:`resolve_experiment` applies a run's parameters to a spec (through ``Experiment.replace``, the one
validated way), :func:`estimate` prices it, :func:`run_experiment` runs it into the run folder and records
what the manifest needs (``experiment.json``).
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DataError, SpecError
from ..secrets import redact, redact_obj

if TYPE_CHECKING:  # pragma: no cover
    from ..experiment import Experiment
    from ..providers import Provider
    from ..results import Results


from .layout import EXPERIMENT_FILE, atomic_write, new_run_id, reports_root


def resolve_experiment(spec: str | Path | Experiment | None = None, *, targets: str | Sequence[str] | None = None,
                       sample_size: int | None = None, repeats: int | None = None, seed: int | None = None,
                       budget_usd: float | None = None, temperature: float | None = None) -> Experiment:
    """The experiment a run executes: ``spec`` (a YAML path, a shipped example's name, an Experiment, or None
    for the demo) with the run's overrides applied. None leaves a field as the spec has it."""
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
                   progress: bool = True, cache: Any = True, mode: str = "online",
                   poll_interval_s: float | None = None) -> Results:
    """Run ``exp`` into ``run_dir`` (default: a new folder under reports/) and record what a manifest needs
    (``experiment.json``: the spec, its base folder, the dataset hash and the providers' identities).

    ``mode="batch"`` submits through the provider's Batch API and polls every ``poll_interval_s`` seconds
    (default 60) until the batches are merged; an interrupted kernel is collected later with
    ``workbench batch resume RUN_DIR``."""
    from ..harness import resolve_providers, run

    if mode not in ("online", "batch"):
        raise DataError(f"mode = {mode!r} (notebook parameter): use 'online' or 'batch'.")
    if poll_interval_s is not None and (not isinstance(poll_interval_s, (int, float)) or poll_interval_s < 0):
        raise DataError(f"poll_interval_s = {poll_interval_s!r} (notebook parameter): seconds between batch status "
                        f"checks, 0 or more.")
    batch = None
    if mode == "batch":
        from ..batch import DEFAULT_POLL_S, BatchSettings

        batch = BatchSettings(poll_interval_s=DEFAULT_POLL_S if poll_interval_s is None else float(poll_interval_s))

    provs = resolve_providers(exp, load_providers(providers))
    run_dir = Path(run_dir) if run_dir else reports_root() / exp.name / new_run_id()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_experiment_info(exp, run_dir, provs)
    return run(exp, out=run_dir, providers=provs, progress=progress, budget_usd=budget_usd, cache=cache,
               mode=mode, batch=batch)


def write_experiment_info(exp: Experiment, run_dir: str | Path, providers: Mapping[str, Provider]) -> Path:
    ds = exp.load_cases()
    identities: dict[str, Any] = {}
    for name, provider in providers.items():
        try:
            identities[name] = {"backend": provider.profile.backend, **provider.identity}
        except Exception as e:  # identity is provenance: never let it stop a run
            identities[name] = {"backend": getattr(provider.profile, "backend", None), "error": redact(e)}
    info = {
        "schema_version": 1,
        "experiment": exp.name,
        "spec": exp.to_dict(),
        "base_dir": str(exp.base_dir),
        "fingerprint": exp.fingerprint(),
        "dataset": {"name": ds.name, "source": ds.source, "sha256": ds.sha256, "n_cases": len(ds)},
        "identities": identities,
    }
    path = Path(run_dir) / EXPERIMENT_FILE
    atomic_write(path, json.dumps(redact_obj(info), indent=2, default=str))
    return path
