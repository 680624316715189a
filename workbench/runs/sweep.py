"""Many runs: a parameter grid in parallel worker processes (:func:`run_sweep`), and :func:`rerun` of a manifest.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError, WorkbenchError
from ..secrets import redact
from .manifest import (
    Manifest,
    file_sha256,
    load_manifest,
)

if TYPE_CHECKING:  # pragma: no cover
    pass


from .execute import RunOutcome, RunSpec, execute_run
from .index import update_index
from .layout import new_run_id, reports_root
from .parameters import (
    RUN_LOCAL_PARAMETERS,
    check_parameters,
    grid_points,
    notebook_parameters,
    resolved_experiment,
)

log = logging.getLogger("workbench.runs")


def run_sweep(notebook: str | Path, parameters: Mapping[str, Any], grid: Mapping[str, Sequence[Any]], *,
              jobs: int = 1, reports_dir: str | Path | None = None, kernel_name: str | None = None,
              cell_timeout: float | None = None, on_done=None, on_start=None) -> list[RunOutcome]:
    """Run every point of ``grid`` (on top of ``parameters``), ``jobs`` at a time, each in its own worker
    process with its own kernel. Returns the outcomes in grid order.

    Every point's parameters are checked first (names and values, the spec resolved and its dataset loaded): a
    bad point raises :class:`RunError` before any point runs. ``on_start(n)`` is called once they all passed."""
    points = grid_points(grid)
    if not points:
        raise RunError("the sweep grid is empty.")
    notebook = Path(notebook).expanduser().resolve()
    if not notebook.is_file():
        raise RunError(f"{notebook}: no such notebook.")
    for point in points:  # every point is checked before the first one starts: a bad value runs nothing
        _check_point(notebook, parameters, point)
    if on_start:
        on_start(len(points))
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


def _check_point(notebook: Path, parameters: Mapping[str, Any], point: Mapping[str, Any]) -> None:
    try:
        resolved_experiment({**parameters, **point}, check_parameters(notebook, {**parameters, **point}))
    except WorkbenchError as e:
        raise RunError(f"sweep point {', '.join(f'{k}={v!r}' for k, v in point.items())}: {e} (nothing was run)") \
            from None


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
