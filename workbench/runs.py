"""Reproducible runs: execute a notebook through papermill into a run folder, with a manifest and a report.

One function per stage, in the manner of papermill's ``execute``::

    execute_run(RunSpec)  =  resolve (parameters, experiment, run id, folder)
                          -> execute (papermill; a kernel of this environment, ipc sockets in a private dir)
                          -> finalize_run (results export -> manifest.json -> report.html -> reports/index.html)

A run writes ``reports/<experiment>/<run-id>/``: ``notebook.ipynb`` (executed, secrets redacted, kept when a
cell fails), ``report.html``, ``results.parquet`` + ``results.jsonl``, ``manifest.json`` and the runner's own
``results.sqlite``. :func:`run_sweep` runs a parameter grid in parallel worker processes; :func:`rerun`
executes a run again from its manifest and checks that it reproduced the same results table.

The notebook side (``notebooks/03_evaluate.ipynb``) uses :func:`resolve_experiment`, :func:`estimate` and
:func:`run_experiment`, so the notebook stays short and every step is importable and testable.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Sequence

from .errors import DataError, WorkbenchError
from .manifest import (
    MANIFEST_FILE, DatasetInfo, Failure, Manifest, NotebookInfo, Reproduction, Totals, environment_lock, file_sha256,
    git_info, load_manifest, metrics_of, package_versions, prices_as_of, register_env_secrets, spec_sha256, targets_of,
    totals_of,
)
from .results import utcnow
from .secrets import redact, redact_obj

if TYPE_CHECKING:  # pragma: no cover
    from .experiment import Experiment
    from .providers import Provider
    from .results import Results

log = logging.getLogger("workbench.runs")

NOTEBOOK_FILE = "notebook.ipynb"
REPORT_FILE = "report.html"
RESULTS_PARQUET = "results.parquet"
RESULTS_JSONL = "results.jsonl"
EXPERIMENT_FILE = "experiment.json"  # written by the notebook: the spec, its base folder, provider identities
INDEX_FILE = "index.html"
RUN_STORE_FILE = "results.sqlite"
KERNEL_NAME = "python3"

# The columns a re-run must reproduce exactly (times, latencies, request ids and cache flags may differ).
STABLE_COLUMNS = ("case_id", "variant", "target", "repeat", "outcome", "output", "parsed", "prompt_tokens",
                  "completion_tokens", "finish_reason")
STABLE_PREFIXES = ("score.", "passed.", "answer.")


class RunError(WorkbenchError):
    """Base class of the errors of ``workbench run`` / ``rerun`` / ``report``."""


class NotebookFailed(RunError):
    """A cell of the notebook raised; the partial notebook, manifest and report are in ``run_dir``."""

    def __init__(self, message: str, failure: Failure, run_dir: Path):
        super().__init__(message)
        self.failure = failure
        self.run_dir = run_dir

    @property
    def cell_index(self) -> int | None:
        return self.failure.cell_index


# =========================================================================================== where runs live


def reports_root(start: str | Path | None = None) -> Path:
    """The ``reports/`` folder: ``$WORKBENCH_REPORTS``, else ``reports/`` in the project (the nearest folder
    above ``start`` holding ``reports/README.md`` or a ``pyproject.toml``), else ``./reports``."""
    if os.environ.get("WORKBENCH_REPORTS"):
        return Path(os.environ["WORKBENCH_REPORTS"]).expanduser().resolve()
    here = Path(start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / "reports" / "README.md").is_file() or (d / "pyproject.toml").is_file():
            return d / "reports"
    return here / "reports"


def new_run_id() -> str:
    from .runner import new_run_id as _new

    return _new()


# =========================================================================================== notebook side


def resolve_experiment(spec: "str | Path | Experiment | None" = None, *, targets: str | Sequence[str] | None = None,
                       sample_size: int | None = None, repeats: int | None = None, seed: int | None = None,
                       budget_usd: float | None = None, temperature: float | None = None) -> "Experiment":
    """The experiment a run executes: ``spec`` (a YAML path, a shipped example's name, an Experiment, or None
    for the demo) with the run's overrides applied. None leaves a field as the spec has it."""
    from .datasets import Dataset
    from .examples import EXAMPLES, example_path, load_example
    from .experiment import Experiment, experiment_from_dict, load_experiment

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
    data = exp.to_dict()
    if targets is not None:
        data["targets"] = [targets] if isinstance(targets, str) else list(targets)
    for key, value in (("sample", sample_size), ("repeats", repeats), ("seed", seed), ("budget_usd", budget_usd)):
        if value is not None:
            data[key] = value
    if temperature is not None:
        for v in data["variants"]:
            v["params"] = {**(v.get("params") or {}), "temperature": temperature}
    if isinstance(exp.dataset, Dataset):  # built from a DataFrame or list in a notebook: keep the object
        data["dataset"] = exp.dataset
    return experiment_from_dict(data, where=f"experiment {exp.name!r}", base_dir=exp.base_dir)


def load_providers(providers: "str | Mapping[str, Provider] | None") -> "dict[str, Provider] | None":
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


def estimate(exp: "Experiment", providers: "str | Mapping[str, Provider] | None" = None):
    """The priced plan of the run (a :class:`workbench.costs.MatrixEstimate`): upper bound and expected cost,
    with the date of the prices. Fails before anything is sent if a template variable is missing."""
    from .runner import estimate as estimate_experiment, resolve_providers

    return estimate_experiment(exp, resolve_providers(exp, load_providers(providers)))


def run_experiment(exp: "Experiment", run_dir: str | Path | None = None, *,
                   providers: "str | Mapping[str, Provider] | None" = None, budget_usd: float | None = None,
                   progress: bool = True, cache: Any = True) -> "Results":
    """Run ``exp`` into ``run_dir`` (default: a new folder under reports/) and record what a manifest needs
    (``experiment.json``: the spec, its base folder, the dataset hash and the providers' identities)."""
    from .runner import resolve_providers, run

    provs = resolve_providers(exp, load_providers(providers))
    run_dir = Path(run_dir) if run_dir else reports_root() / exp.name / new_run_id()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_experiment_info(exp, run_dir, provs)
    return run(exp, out=run_dir, providers=provs, progress=progress, budget_usd=budget_usd, cache=cache)


def write_experiment_info(exp: "Experiment", run_dir: str | Path, providers: "Mapping[str, Provider]") -> Path:
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
    _atomic_write(path, json.dumps(redact_obj(info), indent=2, default=str))
    return path


# =========================================================================================== kernels


@functools.lru_cache(maxsize=None)
def _kernel_classes():
    """A kernel manager safe for parallel runs, and a spec manager that pins ``python3`` to this interpreter.

    - ``transport="ipc"`` with a socket directory of its own per kernel: TCP ports picked by several kernels
      at once race (``ZMQError: Address already in use``); a shared ipc directory is worse still.
    - ``python3`` resolves to ``sys.executable`` (the venv's python, where the workbench is installed), not to
      whatever ``python3`` kernelspec a user directory happens to hold.
    """
    from jupyter_client import AsyncKernelManager
    from jupyter_client.kernelspec import KernelSpec, KernelSpecManager

    class EnvKernelSpecManager(KernelSpecManager):
        def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
            if kernel_name in (KERNEL_NAME, "python"):
                from ipykernel.kernelspec import RESOURCES

                return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                  display_name="Python 3 (workbench)", language="python", resource_dir=RESOURCES,
                                  metadata={"debugger": True})
            return super().get_kernel_spec(kernel_name)

    class IsolatedKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any):
            sock_dir = tempfile.mkdtemp(prefix="wbk-")  # short: unix socket paths max out near 100 bytes
            kwargs.setdefault("transport", "ipc")
            kwargs.setdefault("ip", os.path.join(sock_dir, "k"))
            kwargs.setdefault("connection_file", os.path.join(sock_dir, "kernel.json"))
            kwargs.setdefault("kernel_spec_manager", EnvKernelSpecManager())
            super().__init__(**kwargs)
            self._wb_sock_dir = sock_dir

        async def _async_cleanup_resources(self, restart: bool = False) -> None:
            try:
                await super()._async_cleanup_resources(restart=restart)
            finally:
                if not restart:
                    shutil.rmtree(self._wb_sock_dir, ignore_errors=True)

    return EnvKernelSpecManager, IsolatedKernelManager


def isolated_kernel_manager_class():
    return _kernel_classes()[1]


# =========================================================================================== parameters


def parse_value(text: str) -> Any:
    """A ``-p`` value: JSON (numbers, true/false/null, lists, objects), Python's True/False/None, else text."""
    s = text.strip()
    if s in ("None", "none", "null"):
        return None
    if s in ("True", "False"):
        return s == "True"
    try:
        return json.loads(s)
    except ValueError:
        return text


def parse_sweep(items: Iterable[str]) -> dict[str, list[Any]]:
    """``["temperature=0,0.7", "seed=1,2"]`` -> ``{"temperature": [0, 0.7], "seed": [1, 2]}``."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        name, sep, values = item.partition("=")
        if not sep or not name.strip() or not values.strip():
            raise RunError(f"--sweep {item!r}: write NAME=V1,V2 (e.g. --sweep temperature=0,0.7).")
        if values.strip().startswith("["):
            parsed = parse_value(values)
            vals = parsed if isinstance(parsed, list) else [parsed]
        else:
            vals = [parse_value(v) for v in values.split(",")]
        grid[name.strip()] = vals
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """The notebook's parameters (cell tagged ``parameters``) with their default values."""
    import papermill

    out: dict[str, Any] = {}
    for name, p in papermill.inspect_notebook(str(notebook)).items():
        try:
            out[name] = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError, TypeError):
            out[name] = p["default"]
    return out


_PATH_SUFFIXES = {".yaml", ".yml", ".json", ".csv", ".jsonl", ".parquet", ".ipynb", ".toml", ".txt"}


def _absolute_paths(params: Mapping[str, Any], cwd: Path) -> dict[str, Any]:
    # the kernel runs in the notebook's folder: a file named relative to where the command was typed is
    # passed on as an absolute path
    out = {}
    for k, v in params.items():
        if isinstance(v, str) and (os.sep in v or Path(v).suffix.lower() in _PATH_SUFFIXES):
            p = (cwd / v).expanduser()
            if p.exists():
                v = str(p.resolve())
        out[k] = v
    return out


def experiment_name(notebook: Path, params: Mapping[str, Any], declared: Mapping[str, Any]) -> str:
    """The folder a run goes under: the experiment's name when the notebook takes a ``spec``, else the
    notebook's name."""
    if "spec" in declared:
        return resolve_experiment(params.get("spec", declared.get("spec"))).name
    return notebook.stem


# =========================================================================================== redaction


_BINARY_MIME = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf")


def _redact_strings(obj: Any) -> Any:
    if isinstance(obj, str):
        return redact(obj)
    if isinstance(obj, list):
        return [_redact_strings(v) for v in obj]
    if isinstance(obj, dict):
        return {k: (v if k in _BINARY_MIME else _redact_strings(v)) for k, v in obj.items()}
    return obj


def redact_notebook(nb: dict[str, Any]) -> dict[str, Any]:
    """Every text in a notebook (sources, outputs, tracebacks, widget state) with secrets masked; images kept."""
    return _redact_strings(nb)


class RedactingIOHandler:
    """papermill I/O for ``wb-redacted://<path>``: every save of the executing notebook is redacted first, so
    not even the partial notebook of a killed run holds a secret."""

    PREFIX = "wb-redacted://"

    def _path(self, path: str) -> Path:
        return Path(path[len(self.PREFIX):])

    def read(self, path: str) -> str:
        return self._path(path).read_text("utf-8")

    def listdir(self, path: str) -> list[str]:
        return [self.PREFIX + str(p) for p in self._path(path).iterdir()]

    def write(self, buf: str, path: str) -> None:
        real = self._path(path)
        nb = json.loads(buf)
        pm_meta = nb.get("metadata", {}).get("papermill")
        if isinstance(pm_meta, dict) and str(pm_meta.get("output_path", "")).startswith(self.PREFIX):
            pm_meta["output_path"] = str(real)
        _atomic_write(real, json.dumps(redact_notebook(nb), indent=1, ensure_ascii=False) + "\n")

    def pretty_path(self, path: str) -> str:
        return str(self._path(path))


def _register_io() -> None:
    from papermill.iorw import papermill_io

    if not any(scheme == RedactingIOHandler.PREFIX for scheme, _ in papermill_io._handlers):
        papermill_io.register(RedactingIOHandler.PREFIX, RedactingIOHandler())


# =========================================================================================== executing


@dataclass
class RunSpec:
    """What to execute: a notebook, its parameters, and where the run folder goes."""

    notebook: Path
    parameters: dict[str, Any] = field(default_factory=dict)
    reports_dir: Path | None = None
    run_id: str | None = None
    experiment: str | None = None  # folder name under reports/ (default: from the spec, else the notebook)
    kernel_name: str | None = None  # default: the notebook's (python3 = this environment)
    cell_timeout: float | None = None
    progress: bool = True
    sweep: dict[str, Any] | None = None
    rerun_of: Path | None = None  # the run folder this one re-executes
    cwd: Path | None = None  # where relative parameter paths resolve from


@dataclass
class RunOutcome:
    run_id: str
    experiment: str
    run_dir: Path
    report: Path
    manifest: Path
    status: str
    ok: bool
    failure: str | None = None
    reproduced: bool | None = None


def prepare_run(spec: RunSpec) -> tuple[RunSpec, dict[str, Any], dict[str, Any], Path]:
    """Resolve the notebook, its parameters, the experiment name and the run folder (created)."""
    notebook = Path(spec.notebook).expanduser().resolve()
    if not notebook.is_file() or notebook.suffix != ".ipynb":
        raise RunError(f"{spec.notebook}: no such notebook (give a .ipynb file, e.g. notebooks/03_evaluate.ipynb).")
    declared = check_parameters(notebook, spec.parameters)
    params = _absolute_paths(spec.parameters, Path(spec.cwd or Path.cwd()))
    reports_dir = Path(spec.reports_dir).resolve() if spec.reports_dir else reports_root()
    experiment = spec.experiment or experiment_name(notebook, params, declared)
    run_id = spec.run_id or new_run_id()
    run_dir = reports_dir / experiment / run_id
    run_dir.mkdir(parents=True, exist_ok=False)
    injected = dict(params)
    if "run_dir" in declared:
        injected["run_dir"] = str(run_dir)
    if "reports_dir" in declared and params.get("reports_dir") is None:
        injected["reports_dir"] = str(reports_dir)
    spec = RunSpec(**{**spec.__dict__, "notebook": notebook, "parameters": params, "reports_dir": reports_dir,
                      "run_id": run_id, "experiment": experiment})
    return spec, declared, injected, run_dir


# Chosen by `workbench run` for each run: never part of what a re-run repeats.
RUN_LOCAL_PARAMETERS = ("run_dir", "reports_dir")


def effective_parameters(declared: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value in this run: the notebook's defaults with the given ones on top."""
    return {k: v for k, v in {**declared, **given}.items() if k not in RUN_LOCAL_PARAMETERS}


def execute_notebook(notebook: Path, output: Path, parameters: Mapping[str, Any], *, kernel_name: str | None = None,
                     cell_timeout: float | None = None, progress: bool = False,
                     cwd: Path | None = None) -> Failure | None:
    """Execute ``notebook`` into ``output`` (redacted on every save). Returns the failure, if a cell raised."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _register_io()
    try:
        papermill.execute_notebook(
            str(notebook), RedactingIOHandler.PREFIX + str(output), parameters=dict(parameters),
            kernel_name=kernel_name, progress_bar=progress, cwd=str(cwd or notebook.parent), start_timeout=120,
            execution_timeout=cell_timeout, kernel_manager_class=isolated_kernel_manager_class(),
        )
    except PapermillExecutionError as e:
        return Failure(cell_index=e.cell_index, source_cell_index=_source_index(output, e.cell_index),
                       execution_count=e.exec_count, ename=e.ename, evalue=redact(e.evalue)[:4000],
                       source=redact(e.source)[:4000])
    except KeyboardInterrupt:  # Ctrl-C: keep what ran, and say so in the manifest and the report
        return Failure(ename="KeyboardInterrupt", evalue="interrupted (Ctrl-C) while the notebook was running")
    except Exception as e:  # the kernel died, timed out or never started: no cell to blame
        return Failure(ename=type(e).__name__, evalue=redact(str(e))[:4000])
    return None


def _source_index(executed: Path, cell_index: int | None) -> int | None:
    """The failing cell's index in the source notebook (papermill counts its injected parameters cell)."""
    if cell_index is None:
        return None
    try:
        cells = json.loads(executed.read_text("utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return cell_index
    real = [c for c in cells if "papermill-error-cell-tag" not in c.get("metadata", {}).get("tags", [])]
    injected = sum(1 for c in real[:cell_index] if "injected-parameters" in c.get("metadata", {}).get("tags", []))
    return cell_index - injected


def execute_run(spec: RunSpec) -> RunOutcome:
    """Execute one run end to end (see the module docstring). Never raises for a failing cell: the outcome
    says what failed, and the folder keeps the partial notebook, the manifest and a report."""
    register_env_secrets()
    spec, declared, injected, run_dir = prepare_run(spec)
    started, t0 = utcnow(), time.monotonic()
    failure = execute_notebook(spec.notebook, run_dir / NOTEBOOK_FILE, injected, kernel_name=spec.kernel_name,
                               cell_timeout=spec.cell_timeout, progress=spec.progress)
    nb_info = NotebookInfo(path=str(spec.notebook), name=spec.notebook.name, sha256=file_sha256(spec.notebook),
                           kernel=spec.kernel_name or KERNEL_NAME)
    return finalize_run(run_dir, run_id=spec.run_id or run_dir.name, experiment=spec.experiment or run_dir.parent.name,
                        notebook=nb_info, parameters=spec.parameters,
                        effective=effective_parameters(declared, spec.parameters), started_at=started,
                        finished_at=utcnow(),
                        duration_s=round(time.monotonic() - t0, 3), failure=failure,
                        sweep={**spec.sweep, "worker_pid": os.getpid()} if spec.sweep else None,
                        rerun_of=spec.rerun_of, reports_dir=spec.reports_dir)


# =========================================================================================== finishing


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(path)


def read_experiment_info(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / EXPERIMENT_FILE
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def load_results(run_dir: str | Path, info: Mapping[str, Any] | None = None) -> "Results | None":
    """The results stored in a run folder, with their Experiment attached when its spec still loads."""
    from .results import Results

    run_dir = Path(run_dir)
    if (run_dir / RUN_STORE_FILE).is_file():
        results = Results.load(run_dir)
    elif (run_dir / RESULTS_JSONL).is_file():
        results = Results.from_jsonl(run_dir / RESULTS_JSONL, run_dir=run_dir)
    else:
        return None
    info = read_experiment_info(run_dir) if info is None else info
    if info.get("spec"):
        from .experiment import experiment_from_dict

        try:
            base = Path(info["base_dir"]) if info.get("base_dir") else None
            results.experiment = experiment_from_dict(info["spec"], where=str(run_dir / EXPERIMENT_FILE), base_dir=base)
        except WorkbenchError as e:
            log.warning("%s: the experiment spec no longer loads (%s); reporting from the records alone", run_dir, e)
    return results


def export_results(results: "Results", run_dir: Path) -> dict[str, str]:
    """``results.jsonl`` (typed records, reloadable with ``Results.from_jsonl``) and ``results.parquet``."""
    files: dict[str, str] = {}
    lines = [redact(r.model_dump_json()) for r in results.records]
    _atomic_write(run_dir / RESULTS_JSONL, "".join(line + "\n" for line in lines))
    files["results_jsonl"] = RESULTS_JSONL
    try:
        from .results import Results

        clean = Results.from_jsonl(run_dir / RESULTS_JSONL)
        tmp = run_dir / f".{RESULTS_PARQUET}.tmp"
        clean.to_parquet(tmp)
        tmp.replace(run_dir / RESULTS_PARQUET)
        files["results"] = RESULTS_PARQUET
    except Exception as e:  # pyarrow missing or a column it cannot store: the JSONL still has everything
        log.warning("results.parquet not written: %s", e)
    return files


def build_manifest(run_dir: Path, *, run_id: str, experiment: str, notebook: NotebookInfo,
                   parameters: Mapping[str, Any], effective: Mapping[str, Any] | None,
                   results: "Results | None", info: Mapping[str, Any],
                   started_at: str | None, finished_at: str | None, duration_s: float | None,
                   failure: Failure | None, sweep: Mapping[str, Any] | None = None) -> Manifest:
    """The manifest of a finished (or failed) run. Pure apart from reading package versions and git."""
    if failure is not None:
        status = "failed"
    elif results is None:
        status = "complete" if not info else "no results"  # a notebook without an experiment has none
    else:
        status = results.status
    spec = info.get("spec")
    ds = info.get("dataset") or {}
    return Manifest(
        run_id=run_id, experiment=experiment, status=status, notebook=notebook,
        parameters={k: v for k, v in parameters.items() if k not in RUN_LOCAL_PARAMETERS},
        effective_parameters=dict(effective) if effective is not None else None,
        started_at=started_at, finished_at=finished_at, duration_s=duration_s,
        spec=spec, spec_sha256=spec_sha256(spec), fingerprint=info.get("fingerprint"), base_dir=info.get("base_dir"),
        dataset=DatasetInfo(**ds) if ds else None,
        targets=targets_of(results, info.get("identities")) if results is not None else [],
        totals=totals_of(results, prices_as_of()) if results is not None else Totals(prices_as_of=prices_as_of()),
        metrics=metrics_of(results) if results is not None else [],
        results_status=results.status if results is not None else None,
        failure=failure, git=git_info(Path(notebook.path).parent if notebook.path else run_dir),
        packages=package_versions(), environment_lock=environment_lock(), sweep=dict(sweep) if sweep else None,
    )


def finalize_run(run_dir: str | Path, *, run_id: str, experiment: str, notebook: NotebookInfo,
                 parameters: Mapping[str, Any], effective: Mapping[str, Any] | None = None,
                 started_at: str | None = None, finished_at: str | None = None,
                 duration_s: float | None = None, failure: Failure | None = None,
                 sweep: Mapping[str, Any] | None = None, rerun_of: Path | None = None,
                 reports_dir: Path | None = None) -> RunOutcome:
    """Export the results, write the manifest and the report, update the index."""
    run_dir = Path(run_dir)
    register_env_secrets()
    info = read_experiment_info(run_dir)
    results = load_results(run_dir, info)
    files = {"notebook": NOTEBOOK_FILE} if (run_dir / NOTEBOOK_FILE).is_file() else {}
    if results is not None:
        files.update(export_results(results, run_dir))
        files["store"] = RUN_STORE_FILE
    manifest = build_manifest(run_dir, run_id=run_id, experiment=experiment, notebook=notebook, parameters=parameters,
                              effective=effective, results=results, info=info, started_at=started_at,
                              finished_at=finished_at,
                              duration_s=duration_s, failure=failure, sweep=sweep)
    if rerun_of is not None:
        manifest.rerun = check_reproduction(Path(rerun_of), run_dir)
    files.update({"manifest": MANIFEST_FILE, "report": REPORT_FILE})
    manifest.files = files
    manifest = Manifest.model_validate(redact_obj(manifest.model_dump(mode="json")))  # the report shows it too
    manifest.write(run_dir)
    write_report(run_dir, manifest, results)
    update_index(reports_dir or run_dir.parent.parent)
    message = None
    if failure is not None:
        message = (f"Run {run_id} failed in {failure.describe()}. The partial notebook is "
                   f"{run_dir / NOTEBOOK_FILE}; the report {run_dir / REPORT_FILE} says the same.")
    return RunOutcome(run_id=run_id, experiment=experiment, run_dir=run_dir, report=run_dir / REPORT_FILE,
                      manifest=run_dir / MANIFEST_FILE, status=manifest.status, ok=manifest.ok, failure=message,
                      reproduced=manifest.rerun.identical if manifest.rerun else None)


def write_report(run_dir: Path, manifest: Manifest, results: "Results | None" = None) -> Path:
    from .report import build_report

    nb = None
    if (run_dir / NOTEBOOK_FILE).is_file():
        try:
            nb = json.loads((run_dir / NOTEBOOK_FILE).read_text("utf-8"))
        except ValueError:
            nb = None
    try:
        html = build_report(results, manifest, nb)
    except Exception as e:  # a report bug must not lose the run: say so in the page, rebuild it later
        log.exception("report for %s could not be built", run_dir)
        html = _fallback_report(manifest, e)
    path = run_dir / REPORT_FILE
    _atomic_write(path, html)
    return path


def _fallback_report(m: Manifest, error: BaseException) -> str:
    from html import escape

    from .report import CSP

    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
            f'content="{CSP}"><title>{escape(m.experiment)} {escape(m.run_id)}</title></head><body>'
            f"<h1>{escape(m.experiment)} · {escape(m.run_id)}</h1><p>Status: {escape(m.status)}</p>"
            f"<p>The report could not be built: {escape(redact(f'{type(error).__name__}: {error}'))}. The results, "
            f"the executed notebook and manifest.json are in this folder; rebuild the report with "
            f"<code>workbench report {escape(m.run_id)}</code>'s folder once fixed.</p></body></html>")


def rebuild_report(run_dir: str | Path) -> RunOutcome:
    """``workbench report RUN_DIR``: the manifest (kept if present) and report.html again from the folder."""
    run_dir = Path(run_dir).resolve()
    if not run_dir.is_dir():
        raise RunError(f"{run_dir} is not a run folder.")
    register_env_secrets()
    if (run_dir / MANIFEST_FILE).is_file():
        old = load_manifest(run_dir)
        return finalize_run(run_dir, run_id=old.run_id, experiment=old.experiment, notebook=old.notebook,
                            parameters=old.parameters, effective=old.effective_parameters,
                            started_at=old.started_at, finished_at=old.finished_at,
                            duration_s=old.duration_s, failure=old.failure, sweep=old.sweep,
                            rerun_of=Path(old.rerun.of_dir) if old.rerun and old.rerun.of_dir else None)
    if not (run_dir / RUN_STORE_FILE).is_file() and not (run_dir / RESULTS_JSONL).is_file():
        raise RunError(f"{run_dir} holds no results (results.sqlite) and no manifest.json: nothing to report.")
    from .store import RunStore

    store = RunStore(run_dir)
    try:
        started, finished = store.get_meta("started_at"), store.get_meta("finished_at")
    finally:
        store.close()
    return finalize_run(run_dir, run_id=run_dir.name, experiment=run_dir.parent.name,
                        notebook=NotebookInfo(path="", name="(run from Python, no notebook)"), parameters={},
                        started_at=started, finished_at=finished)


# =========================================================================================== sweeps and reruns


def run_sweep(notebook: str | Path, parameters: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], *,
              jobs: int = 1, reports_dir: str | Path | None = None, kernel_name: str | None = None,
              cell_timeout: float | None = None, on_done=None) -> list[RunOutcome]:
    """Run every point of ``grid`` (on top of ``parameters``), ``jobs`` at a time, each in its own worker
    process with its own kernel. Returns the outcomes in grid order."""
    points = grid_points(grid)
    if not points:
        raise RunError("the sweep grid is empty.")
    notebook = Path(notebook).expanduser().resolve()
    if not notebook.is_file():
        raise RunError(f"{notebook}: no such notebook.")
    check_parameters(notebook, {**parameters, **points[0]})
    sweep_id = new_run_id()
    specs = [RunSpec(notebook, {**parameters, **pt}, Path(reports_dir).resolve() if reports_dir else None,
                     kernel_name=kernel_name, cell_timeout=cell_timeout, progress=False, cwd=Path.cwd(),
                     sweep={"id": sweep_id, "index": i, "size": len(points), "point": pt, "grid": dict(grid)})
             for i, pt in enumerate(points)]
    outcomes: list[RunOutcome | None] = [None] * len(specs)

    def done(i: int, get) -> None:
        try:
            outcomes[i] = get()
        except WorkbenchError as e:  # this point could not start (e.g. a bad value): the others go on
            outcomes[i] = RunOutcome(run_id="-", experiment="-", run_dir=Path(), report=Path(), manifest=Path(),
                                     status="not started", ok=False,
                                     failure=f"sweep point {specs[i].sweep['point']}: {redact(e)}")
        if on_done:
            on_done(outcomes[i])

    if jobs <= 1:
        for i, s in enumerate(specs):
            done(i, lambda s=s: execute_run(s))
    else:
        # spawn, not fork: a forked copy of a process holding threads and zmq sockets is not safe
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(execute_run, s): i for i, s in enumerate(specs)}
            for fut in as_completed(futures):
                done(futures[fut], fut.result)
    update_index(Path(reports_dir) if reports_dir else reports_root())
    return [o for o in outcomes if o is not None]


def check_parameters(notebook: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's declared parameters; fails, before anything runs, on a name it does not declare."""
    declared = notebook_parameters(notebook)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise RunError(f"{notebook.name} has no parameter {', '.join(map(repr, unknown))}; its parameters are: "
                       f"{', '.join(declared) or '(none: tag a cell `parameters`)'}.")
    if "run_dir" in parameters:
        raise RunError("run_dir is chosen by `workbench run` (reports/<experiment>/<run-id>/); do not pass it.")
    return declared


def rerun(manifest_path: str | Path, *, reports_dir: str | Path | None = None, progress: bool = True,
          kernel_name: str | None = None) -> RunOutcome:
    """Execute a run again from its manifest (same notebook, parameters and spec) into a new run folder, and
    check that the results table is the same (``manifest.rerun``)."""
    m = load_manifest(manifest_path)
    path = Path(manifest_path)
    original = (path if path.is_dir() else path.parent).resolve()
    notebook = Path(m.notebook.path)
    if not m.notebook.path or not notebook.is_file():
        raise RunError(f"{original}: the run's notebook {m.notebook.path or '(none)'} is gone; it cannot be re-run.")
    if m.notebook.sha256 and file_sha256(notebook) != m.notebook.sha256:
        log.warning("%s changed since run %s; re-running the current version", notebook, m.run_id)
    declared = notebook_parameters(notebook)
    # the values this run used, defaults included: a changed default in the notebook does not change the re-run
    params = {k: v for k, v in {**(m.effective_parameters or {}), **m.parameters}.items()
              if k in declared and k not in RUN_LOCAL_PARAMETERS}
    spec = params.get("spec")
    if spec and not Path(str(spec)).is_file() and m.spec:
        params["spec"] = str(_spec_from_manifest(m))
    return execute_run(RunSpec(notebook, params, Path(reports_dir) if reports_dir else original.parent.parent,
                               experiment=m.experiment, kernel_name=kernel_name or m.notebook.kernel,
                               progress=progress, rerun_of=original))


def _spec_from_manifest(m: Manifest) -> Path:
    """The manifest's spec as a YAML file (dataset path made absolute), when the original file is gone."""
    import yaml

    spec = json.loads(json.dumps(m.spec))
    ds = spec.get("dataset") or {}
    if ds.get("path") and m.base_dir and not Path(ds["path"]).is_absolute():
        ds["path"] = str(Path(m.base_dir) / ds["path"])
    out = Path(tempfile.mkdtemp(prefix="wb-rerun-")) / f"{m.experiment}.yaml"
    out.write_text(yaml.safe_dump(spec, sort_keys=False), "utf-8")
    return out


def stable_table(run_dir: str | Path):
    """The part of a run's results table that a re-run must reproduce, in a canonical order."""
    import pandas as pd

    from .results import Results

    run_dir = Path(run_dir)
    if (run_dir / RESULTS_JSONL).is_file():
        df = Results.from_jsonl(run_dir / RESULTS_JSONL).df
    else:
        res = load_results(run_dir, {})
        df = res.df if res is not None else pd.DataFrame()
    if df.empty:
        return df
    cols = [c for c in STABLE_COLUMNS if c in df.columns]
    cols += sorted(c for c in df.columns if c.startswith(STABLE_PREFIXES))
    keys = ["case_id", "variant", "target", "repeat"]
    return df[cols].sort_values(keys, kind="stable").reset_index(drop=True)


def compare_tables(a, b, limit: int = 10) -> list[str]:
    """Differences between two stable tables, in words (empty: identical)."""
    import pandas as pd

    diffs: list[str] = []
    if list(a.columns) != list(b.columns):
        diffs.append(f"columns differ: {sorted(set(a.columns) ^ set(b.columns))}")
        return diffs
    keys = ["case_id", "variant", "target", "repeat"]
    ka = set(map(tuple, a[keys].astype(str).values)) if len(a) else set()
    kb = set(map(tuple, b[keys].astype(str).values)) if len(b) else set()
    if ka != kb:
        diffs.append(f"{len(ka - kb)} cells only in the original, {len(kb - ka)} only in the re-run")
        return diffs
    for col in a.columns:
        va, vb = a[col], b[col]
        same = (va == vb) | (va.isna() & vb.isna()) if len(a) else pd.Series(dtype=bool)
        for i in list((~same).to_numpy().nonzero()[0])[:limit]:
            row = a.iloc[i]
            diffs.append(f"{row['case_id']}/{row['variant']}/{row['target']}/{row['repeat']}: {col} "
                         f"{_short(va.iloc[i])} -> {_short(vb.iloc[i])}")
    return diffs


def _short(v: Any, n: int = 60) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def check_reproduction(original: Path, rerun_dir: Path) -> Reproduction:
    try:
        m = load_manifest(original)
        of = m.run_id
    except WorkbenchError:
        of = original.name
    a, b = stable_table(original), stable_table(rerun_dir)
    if a.empty and b.empty:
        return Reproduction(of_run=of, of_dir=str(original), identical=None, differences=["no results to compare"])
    diffs = compare_tables(a, b)
    return Reproduction(of_run=of, of_dir=str(original), identical=not diffs, differences=diffs)


# =========================================================================================== the index


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            import fcntl

            fcntl.flock(fh, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX: last writer wins
            pass
        yield


def list_runs(reports_dir: str | Path | None = None) -> list[tuple[Path, Manifest]]:
    """Every run under ``reports_dir`` with its manifest, newest first."""
    root = Path(reports_dir) if reports_dir else reports_root()
    runs = []
    for path in root.glob(f"*/*/{MANIFEST_FILE}"):
        try:
            runs.append((path.parent, load_manifest(path)))
        except (WorkbenchError, ValueError) as e:
            log.warning("skipping %s: %s", path, e)
    runs.sort(key=lambda r: (r[1].started_at or "", r[1].run_id), reverse=True)
    return runs


def update_index(reports_dir: str | Path) -> Path:
    """Rewrite ``reports/index.html`` from every run's manifest (safe when parallel runs finish at once)."""
    from .report import build_index

    root = Path(reports_dir)
    with _locked(root / ".index.lock"):
        runs = [(run_dir.relative_to(root).as_posix(), m) for run_dir, m in list_runs(root)]
        path = root / INDEX_FILE
        _atomic_write(path, build_index(runs))
    return path


# =========================================================================================== comparing runs


@dataclass
class RunComparison:
    """Two or more runs side by side: scores, paired differences, and what changed in their manifests."""

    runs: list[tuple[Path, Manifest]]
    scores: Any  # DataFrame: run, variant, target, scorer, n, mean, ci_low, ci_high
    changes: list[dict[str, Any]]
    paired: Any  # DataFrame: variant, target, run a, run b, n_pairs, diff, ci, p, summary

    def scores_wide(self):
        """One row per variant and target, one column per run: ``mean [low, high]``."""
        if self.scores.empty:
            return self.scores
        df = self.scores.assign(cell=lambda d: d.apply(
            lambda r: f"{r['mean']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}] n={int(r['n'])}", axis=1))
        return df.pivot_table(index=["scorer", "variant", "target"], columns="run", values="cell", aggfunc="first",
                              sort=False)

    def changes_frame(self):
        import pandas as pd

        return pd.DataFrame(self.changes) if self.changes else pd.DataFrame(columns=["field"])


def latest_runs(reports_dir: str | Path | None = None, n: int = 2, experiment: str | None = None) -> list[Path]:
    """The ``n`` newest successful runs of one experiment (the newest run's, unless ``experiment`` is given)."""
    runs = [(d, m) for d, m in list_runs(reports_dir) if m.ok and m.metrics]
    if experiment is None and runs:
        experiment = runs[0][1].experiment
    same = [d for d, m in runs if m.experiment == experiment]
    return list(reversed(same[:n]))


def compare_runs(run_dirs: Sequence[str | Path], scorer: str | None = None) -> RunComparison:
    """Compare runs: scores per variant with intervals, paired per-case differences between the first run and
    each other one (same cases), and the manifest fields that differ (spec, fingerprints, models...)."""
    import pandas as pd

    from . import stats
    from .manifest import diff_manifests

    if len(run_dirs) < 2:
        raise RunError(f"compare_runs needs two or more run folders, got {len(run_dirs)}.")
    loaded = []
    for d in run_dirs:
        d = Path(d)
        d = d.parent if d.name == MANIFEST_FILE else d
        loaded.append((d, load_manifest(d), load_results(d)))
    rows, frames = [], []
    for d, m, res in loaded:
        if res is None or not res.scorers:
            continue
        names = [scorer] if scorer else res.scorers
        for name in names:
            s = res.summary(name)
            for r in s.to_dict("records"):
                rows.append({"run": m.run_id, "scorer": name, "variant": r["variant"], "target": r["target"],
                             "n": r["n"], "mean": r["mean"], "ci_low": r["ci_low"], "ci_high": r["ci_high"]})
        frames.append(res.df.assign(run=m.run_id))
    scores = pd.DataFrame(rows, columns=["run", "scorer", "variant", "target", "n", "mean", "ci_low", "ci_high"])
    paired_rows = []
    if len(frames) >= 2:
        both = pd.concat(frames, ignore_index=True)
        first = loaded[0][1].run_id
        for sc in ([scorer] if scorer else list(dict.fromkeys(scores["scorer"]))):
            col = f"score.{sc}"
            if col not in both.columns:
                continue
            for (variant, target), part in both.groupby(["variant", "target"], sort=False):
                for other in [m.run_id for _, m, _ in loaded[1:]]:
                    if {first, other} - set(part["run"]):
                        continue
                    c = stats.paired_comparison(part, first, other, value=col, variant="run", within=[])
                    paired_rows.append({"scorer": sc, "variant": variant, "target": target, "a": first, "b": other,
                                        "n_pairs": c.n_pairs, "mean_a": c.mean_a, "mean_b": c.mean_b, "diff": c.diff,
                                        "ci_low": c.ci_low, "ci_high": c.ci_high, "p_value": c.p_value,
                                        "summary": c.summary})
    changes = diff_manifests([m for _, m, _ in loaded])
    return RunComparison([(d, m) for d, m, _ in loaded], scores, changes, pd.DataFrame(paired_rows))


def ensure_runs(reports_dir: str | Path | None = None, *, n: int = 2, sample_size: int | None = 8,
                notebook: str | Path | None = None) -> list[Path]:
    """The ``n`` latest runs to compare; on a fresh clone (fewer than ``n``), make them by running
    ``03_evaluate`` on the demo: as shipped (greedy), then at temperature 0.8."""
    found = latest_runs(reports_dir, n)
    if len(found) >= n:
        return found
    nb = Path(notebook) if notebook else Path(__file__).resolve().parents[1] / "notebooks" / "03_evaluate.ipynb"
    variations = [{}, {"temperature": 0.8, "seed": 1}]
    made = []
    for extra in variations[: n]:
        params = {"sample_size": sample_size, **extra} if sample_size else dict(extra)
        out = execute_run(RunSpec(nb, params, Path(reports_dir) if reports_dir else None, progress=False))
        if not out.ok:
            raise RunError(out.failure or f"run {out.run_id} did not complete: {out.status}")
        made.append(out.run_dir)
    return made


__all__ = [
    "RunSpec", "RunOutcome", "RunError", "NotebookFailed", "RunComparison", "reports_root", "resolve_experiment",
    "load_providers", "estimate", "run_experiment", "execute_run", "execute_notebook", "finalize_run", "rerun",
    "run_sweep", "rebuild_report", "update_index", "list_runs", "latest_runs", "compare_runs", "ensure_runs",
    "stable_table", "compare_tables", "parse_value", "parse_sweep", "grid_points", "notebook_parameters",
    "redact_notebook", "isolated_kernel_manager_class", "load_results",
]
