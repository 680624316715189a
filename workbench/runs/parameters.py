"""Notebook parameters: the ``-p``/``--sweep`` values, the notebook's declared parameters, and the checks between them.
"""

from __future__ import annotations

import ast
import difflib
import inspect
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
            items = values.split(",")
            empty = [i for i, v in enumerate(items, 1) if not v.strip()]
            if empty:
                raise RunError(f"--sweep {item!r}: value {empty[0]} of {len(items)} is empty (two commas, or a comma "
                               "at the end). Write NAME=V1,V2, or [\"\", \"x\"] for an empty text value.")
            vals = [parse_value(v) for v in items]
        if name.strip() in grid:
            raise RunError(f"--sweep {name.strip()} is given twice; give all its values in one --sweep.")
        grid[name.strip()] = vals
    return grid


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    names = list(grid)
    return [dict(zip(names, combo)) for combo in itertools.product(*(grid[n] for n in names))]


def notebook_parameters(notebook: str | Path) -> dict[str, Any]:
    """The notebook's parameters (cell tagged ``parameters``) with their default values."""
    import papermill

    _check_notebook_file(Path(notebook))
    try:
        declared = papermill.inspect_notebook(str(notebook))
    except Exception as e:  # nbformat's and papermill's reading errors: the file is the user's, not a bug
        raise RunError(f"{notebook}: cannot read the notebook ({type(e).__name__}: {e}).") from None
    out: dict[str, Any] = {}
    for name, p in declared.items():
        try:
            out[name] = ast.literal_eval(p["default"])
        except (ValueError, SyntaxError, TypeError):
            out[name] = p["default"]
    return out


def _check_notebook_file(notebook: Path) -> None:
    """A notebook is a JSON document with ``cells``: say where it is not (nbformat's NotJSONError does not)."""
    try:
        data = json.loads(notebook.read_text("utf-8"))
    except UnicodeDecodeError as e:
        raise RunError(f"{notebook}: not a notebook - not UTF-8 text ({e.reason} at byte {e.start}).") from None
    except json.JSONDecodeError as e:
        raise RunError(f"{notebook}: not a notebook - not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}). "
                       "Give an .ipynb file saved by Jupyter, or open this one in Jupyter to repair it.") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise RunError(f"{notebook}: not a notebook - valid JSON, but without the list of `cells` a Jupyter "
                       "notebook has.")


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
    exp = resolved_experiment(params, declared)
    return exp.name if exp is not None else notebook.stem


def resolved_experiment(params: Mapping[str, Any], declared: Mapping[str, Any]):
    """The experiment a notebook that takes a ``spec`` will run with these parameters, or None for another
    notebook. Resolved here, before a kernel starts, by the function the notebook calls itself
    (:func:`~workbench.runs.notebook.resolve_experiment`), and its dataset loaded: a bad value (``-p sample_size
    -2``, an image list as ``targets``, a CSV row with a missing field) is refused naming the parameter, the
    file or the row, and nothing runs."""
    if "spec" not in declared:
        return None
    keywords = [k for k in inspect.signature(resolve_experiment).parameters if k != "spec" and k in declared]
    exp = resolve_experiment(params.get("spec", declared.get("spec")),
                             **{k: params.get(k, declared.get(k)) for k in keywords})
    exp.load_cases()
    return exp


def check_parameters(notebook: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's declared parameters; fails, before anything runs, on a name it does not declare."""
    declared = notebook_parameters(notebook)
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(declared), n=1, cutoff=0.6)
        raise RunError(f"{notebook.name} has no parameter {', '.join(map(repr, unknown))}"
                       + (f" (did you mean {close[0]!r}?)" if close else "") + "; its parameters are: "
                       f"{', '.join(declared) or '(none: tag a cell `parameters`)'}.")
    if "run_dir" in parameters:
        raise RunError("run_dir is chosen by `workbench run` (reports/<experiment>/<run-id>/); do not pass it.")
    return declared


def effective_parameters(declared: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every parameter's value in this run: the notebook's defaults with the given ones on top."""
    return {k: v for k, v in {**declared, **given}.items() if k not in RUN_LOCAL_PARAMETERS}
