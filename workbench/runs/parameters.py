"""Notebook parameters: the ``-p``/``--sweep`` values, the notebook's declared parameters, and the checks between them.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import RunError

if TYPE_CHECKING:  # pragma: no cover
    pass


from .layout import RUN_LOCAL_PARAMETERS  # chosen by `workbench run` for each run: never re-run
from .notebook import resolve_experiment


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


def effective_parameters(declared: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value in this run: the notebook's defaults with the given ones on top."""
    return {k: v for k, v in {**declared, **given}.items() if k not in RUN_LOCAL_PARAMETERS}
