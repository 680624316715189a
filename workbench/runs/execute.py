"""Execute one notebook run: resolve -> papermill (redacted on every save) -> finalize.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError
from ..records import utcnow
from ..secrets import redact
from .manifest import (
    Failure,
    NotebookInfo,
    file_sha256,
    register_env_secrets,
)

if TYPE_CHECKING:  # pragma: no cover
    pass


from .finalize import RunOutcome, begin_run, finalize_run
from .kernels import KERNEL_NAME, isolated_kernel_manager_class
from .layout import NOTEBOOK_FILE, atomic_write, new_run_id, reports_root
from .parameters import _absolute_paths, check_parameters, effective_parameters, experiment_name

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
        atomic_write(real, json.dumps(redact_notebook(nb), indent=1, ensure_ascii=False) + "\n")

    def pretty_path(self, path: str) -> str:
        return str(self._path(path))


def _register_io() -> None:
    from papermill.iorw import papermill_io

    if not any(scheme == RedactingIOHandler.PREFIX for scheme, _ in papermill_io._handlers):
        papermill_io.register(RedactingIOHandler.PREFIX, RedactingIOHandler())


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


def execute_notebook(notebook: Path, output: Path, parameters: Mapping[str, Any], *, kernel_name: str | None = None,
                     cell_timeout: float | None = None, progress: bool = False,
                     cwd: Path | None = None) -> Failure | None:
    """Execute ``notebook`` into ``output`` (redacted on every save). Returns the failure, if a cell raised.

    With ``progress``, two bars: the experiment's calls as they finish (read from the run folder the notebook
    writes, :class:`CallProgress`) above papermill's own bar of cells."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    _register_io()
    calls = CallProgress(output.parent) if progress else None
    try:
        papermill.execute_notebook(
            str(notebook), RedactingIOHandler.PREFIX + str(output), parameters=dict(parameters),
            kernel_name=kernel_name, cwd=str(cwd or notebook.parent), start_timeout=120,
            progress_bar={"desc": "cells", "position": 1, "leave": False, "dynamic_ncols": True} if progress else False,
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
    finally:
        if calls is not None:
            calls.stop()
    return None


class CallProgress:
    """A terminal progress bar of the experiment's calls while a notebook runs in its kernel.

    The kernel is another process, so its own progress bar is drawn in the notebook, not here; but the run
    folder tells: ``experiment.json`` gives the number of calls before the first is sent, and the ledger
    (``results.sqlite``) holds one row per finished call. A thread polls both and draws the bar.
    """

    POLL_S = 0.5

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._stop = threading.Event()
        self._bar: Any = None
        self._thread = threading.Thread(target=self._watch, daemon=True, name="workbench-call-progress")
        self._thread.start()

    def _watch(self) -> None:
        store = None
        try:
            while not self._stop.wait(self.POLL_S):
                store = store or self._open_store()
                if store is not None:
                    self._draw(store)
            if store is not None:
                self._draw(store)  # the last calls
        except Exception:  # progress is a courtesy: it must never break a run
            pass
        finally:
            if store is not None:
                store.close()

    def _open_store(self):
        from .layout import RUN_STORE_FILE, read_experiment_info

        info = read_experiment_info(self.run_dir)
        if not info.get("n_calls") or not (self.run_dir / RUN_STORE_FILE).is_file():
            return None
        from tqdm import tqdm

        from ..ledger import RunLedger

        self._bar = tqdm(total=int(info["n_calls"]), desc=f"{info.get('experiment', 'calls')} calls", unit="call",
                         position=0, dynamic_ncols=True, smoothing=0.1)
        return RunLedger(self.run_dir)

    def _draw(self, store) -> None:
        counts = store.counts()
        done = sum(counts.values())
        self._bar.n = min(done, self._bar.total)
        errors = counts.get("error", 0)
        if errors:
            self._bar.set_postfix_str(f"{errors} errors", refresh=False)
        self._bar.refresh()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        if self._bar is not None:
            self._bar.close()


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
    source = "sweep" if spec.sweep else ("rerun" if spec.rerun_of else "run")
    nb_info = NotebookInfo(path=str(spec.notebook), name=spec.notebook.name, sha256=file_sha256(spec.notebook),
                           kernel=spec.kernel_name or KERNEL_NAME)
    begin_run(run_dir, experiment=spec.experiment or run_dir.parent.name, source=source, notebook=nb_info,
              parameters=spec.parameters)
    started, t0 = utcnow(), time.monotonic()
    failure = execute_notebook(spec.notebook, run_dir / NOTEBOOK_FILE, injected, kernel_name=spec.kernel_name,
                               cell_timeout=spec.cell_timeout, progress=spec.progress)
    return finalize_run(run_dir, run_id=spec.run_id or run_dir.name, experiment=spec.experiment or run_dir.parent.name,
                        notebook=nb_info, parameters=spec.parameters,
                        effective=effective_parameters(declared, spec.parameters), started_at=started,
                        finished_at=utcnow(),
                        duration_s=round(time.monotonic() - t0, 3), failure=failure,
                        sweep={**spec.sweep, "worker_pid": os.getpid()} if spec.sweep else None,
                        rerun_of=spec.rerun_of, reports_dir=spec.reports_dir, source=source)
