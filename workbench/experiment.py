"""Experiments: dataset x prompt variants x targets x repeats, with scorers and a budget.

The same :class:`Experiment` is written in Python (in a notebook) or in a YAML file (for ``workbench eval`` and
papermill runs); ``Experiment.to_yaml()`` and :func:`load_experiment` round-trip, so what was tuned in a
notebook is exactly what the batch run executes. The YAML schema is documented in docs/experiment-spec.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .datasets import Case, Dataset, is_dataframe, load_dataset
from .errors import DataError, SpecError
from .gates.spec import Gate, bounded_scorers, gate_problems
from .review.spec import ReviewSpec
from .schema import Model, format_problems
from .variants import Target, Variant

SPEC_SCHEMA_VERSION = 1


class DatasetSpec(Model):
    """Where the cases come from: a file (``path``) or inline ``rows``."""

    _spec_noun = "dataset spec"

    model_config = ConfigDict(extra="forbid")

    path: str | None = None
    rows: list[dict[str, Any]] | None = None
    id_column: str | None = None
    expected_column: str = "expected"
    name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetSpec:
        if (self.path is None) == (self.rows is None):
            raise ValueError("give exactly one of `path` (a CSV/JSONL/Parquet file) or `rows` (inline cases)")
        return self


@dataclass(frozen=True)
class Cell:
    """One call of the matrix: a case, a variant, a target and a repeat index."""

    case: Case
    variant: Variant
    target: Target
    repeat: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.case.id, self.variant.name, self.target.label, self.repeat)


class Experiment(Model):
    """A complete, reproducible description of an evaluation: dataset x variants x targets x repeats, scored.

    Derive a changed copy with :meth:`replace` (validated: ``exp.replace(repeats=0)`` raises a SpecError
    naming ``repeats``); build one from YAML with :func:`load_experiment`.
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    _spec_noun = "experiment spec"

    schema_version: int = SPEC_SCHEMA_VERSION
    name: str
    description: str = ""
    dataset: DatasetSpec | Dataset
    variants: list[Variant]
    targets: list[Target] = Field(default_factory=lambda: [Target()])
    scorers: list[Any] = Field(default_factory=list)
    gates: list[Gate] = Field(default_factory=list,
                              description="quality gates checked after a run (workbench eval exits 3 when one fails)")
    review: ReviewSpec | None = Field(None, description="how people review the cells: a scale and instructions")
    repeats: int = Field(1, ge=1)
    sample: int | None = Field(None, ge=1, description="run on a reproducible sample of this many cases")
    sample_seed: int = Field(0, description="which cases `sample` picks; the sample depends on this (and the "
                                            "dataset) only, so runs that differ in anything else share their cases")
    seed: int | None = Field(None, description="the request seed sent with every call (best effort: not every "
                                               "model honours it); it does not change which cases are sampled")
    concurrency: int = Field(8, ge=1)
    budget_usd: float | None = Field(None, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    max_retries: int = Field(6, ge=0, description="re-sends after a 5xx, a timeout or a connection error "
                                                   "(429s do not count: they wait, up to rate_limit_patience_s)")
    rate_limit_patience_s: float = Field(600.0, gt=0, description="how long one cell may wait on 429 answers "
                                                                "before it is recorded as an error")
    metadata: dict[str, Any] = Field(default_factory=dict)
    base_dir: Path = Field(default_factory=Path.cwd, exclude=True,
                           description="where relative dataset and image paths resolve from (not saved: a spec "
                                       "file's own folder when loaded from one, else the working directory)")

    _dataset: Dataset | None = PrivateAttr(default=None)

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v.strip() or any(ch in v for ch in "/\\"):
            raise ValueError("the experiment name must be non-empty and contain no slashes (it names a folder)")
        return v

    @field_validator("targets", mode="before")
    @classmethod
    def _targets(cls, v: Any) -> Any:
        return [Target.parse(t) if isinstance(t, str) else t for t in (v or [])] or [Target()]

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_spec(cls, v: Any) -> Any:
        if isinstance(v, str):
            return {"path": v}
        if isinstance(v, list):
            return {"rows": v}
        return load_dataset(v) if is_dataframe(v) else v

    @model_validator(mode="after")
    def _unique_variants(self) -> Experiment:
        names = [v.name for v in self.variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"variant names must be unique; repeated: {', '.join(dupes)}")
        if not self.variants:
            raise ValueError("an experiment needs at least one variant")
        return self

    @model_validator(mode="after")
    def _gates_match_the_experiment(self) -> Experiment:
        if not self.gates:
            return self
        targets = {t.label for v in self.variants for t in self.targets_for(v)}
        problems = gate_problems(self.gates, scorers=bounded_scorers(self.scorers),
                                 variants=[v.name for v in self.variants], targets=sorted(targets))
        if problems:  # schema.problems_of reads these paths, so each is reported as gates[i].field
            raise SpecError("gates do not match the experiment", problems)
        return self

    @field_validator("base_dir", mode="before")
    @classmethod
    def _base_dir_abs(cls, v: Any) -> Any:
        return Path.cwd() if v is None else Path(v).expanduser().resolve()

    # -- data -------------------------------------------------------------------------------------------
    def load_cases(self) -> Dataset:
        """The dataset (loaded once), sampled if ``sample`` is set."""
        if self._dataset is None:
            if isinstance(self.dataset, Dataset):
                ds = self.dataset
            else:
                spec = self.dataset
                src = spec.path if spec.path is not None else spec.rows
                ds = load_dataset(src, id_column=spec.id_column, expected_column=spec.expected_column,
                                  name=spec.name, base_dir=self.base_dir)
            if self.sample:
                ds = ds.sample(self.sample, seed=self.sample_seed)
            self._dataset = ds
        return self._dataset

    def targets_for(self, variant: Variant) -> list[Target]:
        return [variant.target] if variant.target else list(self.targets)

    def cells(self) -> Iterator[Cell]:
        """The matrix in a stable order: case-major, so early results cover every variant."""
        ds = self.load_cases()
        for case in ds:
            for variant in self.variants:
                for target in self.targets_for(variant):
                    for r in range(self.repeats):
                        yield Cell(case, variant, target, r)

    def n_cells(self) -> int:
        per_case = sum(len(self.targets_for(v)) for v in self.variants) * self.repeats
        return per_case * len(self.load_cases())

    def fingerprint(self) -> str:
        """A hash of everything that changes results: the spec (minus prose) and the dataset content."""
        spec = self.to_dict()
        spec.pop("description", None)
        spec.pop("metadata", None)
        spec.pop("rate_limit_patience_s", None)  # how long to wait changes no result (and predates no folder)
        spec.pop("gates", None)  # gates judge results, they do not change them: same folder, same cache
        spec.pop("review", None)  # neither does how people review them
        spec["dataset"] = self.load_cases().sha256
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]

    # -- serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json", exclude={"dataset", "scorers", "gates", "review"}, exclude_defaults=False)
        if isinstance(self.dataset, Dataset):
            d["dataset"] = {"rows": [dict(c.vars) for c in self.dataset.cases], "name": self.dataset.name}
        else:
            d["dataset"] = self.dataset.model_dump(exclude_none=True, exclude_defaults=True)
        d["scorers"] = [_scorer_spec(s) for s in self.scorers]
        if self.gates:
            d["gates"] = [g.spec() for g in self.gates]
        if self.review is not None:
            d["review"] = self.review.model_dump(mode="json", exclude_defaults=True)
        for v in d["variants"]:  # keep YAML short: drop empty fields
            for key in [k for k, val in v.items() if val in (None, [], {}, "")]:
                v.pop(key)
            if v.get("image_detail") == "auto":
                v.pop("image_detail")
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_yaml(), "utf-8")
        tmp.replace(path)
        return path


def _scorer_spec(s: Any) -> Any:
    if hasattr(s, "spec") and callable(s.spec):
        return s.spec()
    if callable(s):
        mod, name = getattr(s, "__module__", None), getattr(s, "__qualname__", None)
        if mod and name and "<" not in name:
            return {"python": f"{mod}:{name}"}
        raise DataError(f"Scorer {s!r} cannot be saved to YAML: define it as a module-level function.")
    return s


def apply_overrides(exp: Experiment, overrides: Mapping[str, tuple[str, Any]], *, kind: str = "option") -> Experiment:
    """``exp`` with overrides from a command line, notebook parameters or a widget, through :meth:`Experiment.replace`.

    ``overrides`` maps the name the user typed (``"--repeats"``, ``"sample_size"``) to ``(field, value)``;
    entries whose value is None are not applied (None means "as the spec has it"). A refused value raises
    :class:`SpecError` that names what the user typed, not the spec field behind it::

        apply_overrides(exp, {"--repeats": ("repeats", -1)}, kind="flag")
        # SpecError: --repeats -1: Input should be greater than or equal to 1
    """
    changes = {field: value for field, value in overrides.values() if value is not None}
    if not changes:
        return exp
    try:
        return exp.replace(**changes)
    except SpecError as e:
        by_field = {field: (name, value) for name, (field, value) in overrides.items() if value is not None}
        shown = []
        for path, msg in e.problems:
            head = path.split(".", 1)[0].split("[", 1)[0]
            name, value = by_field.get(head, (path, None))
            typed = f"{name} {_shown(value)}" if head in by_field and not isinstance(value, list) else name
            shown.append((typed, msg + (f" (spec field {path})" if path != head else "")))
        raise flag_error(shown, kind=kind) from None


def flag_error(problems: list[tuple[str, str]], *, kind: str) -> SpecError:
    """The error for values refused where the user typed them: ``bad flag: --repeats -1: <why>`` - a flag, a
    notebook parameter, a widget field. ``problems`` pairs what was typed (``"--repeats -1"``) with why."""
    lines = [f"{typed}: {msg}" for typed, msg in problems]
    return SpecError(f"bad {kind}{'s' if len(lines) > 1 else ''}: " + "; ".join(lines),
                     [(typed.split(" ", 1)[0], msg) for typed, msg in problems])


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def experiment_from_dict(data: dict[str, Any], *, where: str = "experiment",
                         base_dir: Path | None = None) -> Experiment:
    if not isinstance(data, dict):
        raise DataError(
            f"{where}: expected a mapping of fields (name, dataset, variants, ...), got {type(data).__name__}."
        )
    version = data.get("schema_version", SPEC_SCHEMA_VERSION)
    if version != SPEC_SCHEMA_VERSION:
        raise DataError(
            f"{where}: schema_version {version} is not supported (this workbench reads {SPEC_SCHEMA_VERSION})."
        )
    if "base_dir" in data:
        raise DataError(
            f"{where}: `base_dir` is not a spec field: relative dataset and image paths resolve from "
            "the spec file's folder. Remove it, or give absolute paths."
        )
    if data.get("sample") and data.get("seed") is not None and "sample_seed" not in data:
        import warnings

        from .errors import SpecWarning

        warnings.warn(f"{where}: `seed` no longer picks the case sample (it is the request seed only); the sample "
                      f"is picked by `sample_seed` (default 0). Add `sample_seed: {data['seed']}` to get the cases "
                      f"a run of this spec sampled before.", SpecWarning, stacklevel=2)
    try:
        return Experiment(**data, base_dir=base_dir)
    except SpecError as e:  # say which file (or notebook parameter) the fields are in
        raise format_problems(
            e.problems, what="experiment spec", where=where, hint="See docs/experiment-spec.md for every field."
        ) from None


def load_experiment(path: str | Path) -> Experiment:
    """Read an experiment YAML file; relative dataset and image paths resolve from its folder."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Experiment file {path} does not exist.")
    try:
        text = path.read_text("utf-8")
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start}). Save the file as UTF-8.") from None
    except yaml.YAMLError as e:
        raise DataError(f"{path}: not valid YAML at {_yaml_problem(e, text)}") from None
    return experiment_from_dict(data, where=str(path), base_dir=path.parent.resolve())


def _multiline_quote(text: str, before_line: int | None) -> Any:
    """The last quoted value spanning several lines that ends before ``before_line`` (a YAML token), if any."""
    last = None
    try:
        for token in yaml.scan(text):
            if before_line is not None and token.start_mark.line > before_line:
                break
            if isinstance(token, yaml.ScalarToken) and token.style in ('"', "'") and \
                    token.end_mark.line > token.start_mark.line:
                last = token
    except yaml.YAMLError:
        pass
    return last


class _StrictLoader(yaml.SafeLoader):
    """``yaml.safe_load``, except that a key given twice in one mapping is an error: PyYAML keeps the last one
    silently, so a second ``variants:`` would replace the first without a word."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"{key!r} is given twice (first at line {seen[key].line + 1}); YAML would keep "
                    "only the last", key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(e: yaml.YAMLError, text: str) -> str:
    """Where the problem is, in words. PyYAML marks where it gave up - after an unclosed quote, often lines later
    or at the end of the file - and, separately, where the construct it was reading began. An unclosed quote is
    the usual cause, so a quoted value that runs over several lines up to that point is named first."""
    def at(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    problem, pmark = getattr(e, "problem", None) or str(e), getattr(e, "problem_mark", None)
    context, cmark = getattr(e, "context", None), getattr(e, "context_mark", None)
    if "quoted scalar" in (context or "") and cmark is not None:
        return f"{at(cmark)}: this quote is never closed ({problem} at {at(pmark)}). Close the quote."
    quote = _multiline_quote(text, pmark.line if pmark is not None else None)
    if quote is not None:
        return (f"{at(quote.start_mark)}: this quoted value runs on to line {quote.end_mark.line + 1} - is its "
                f"closing quote missing? (YAML then stopped at {at(pmark)}: {problem})")
    if context and cmark is not None and pmark is not None and cmark.line != pmark.line:
        return f"{at(cmark)}: {context.removeprefix('while ')}, {problem} at {at(pmark)}"
    return f"{at(pmark)}: {problem}" if pmark is not None else problem
