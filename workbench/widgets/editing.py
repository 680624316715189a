"""The playground's logic, without widgets: editor fields <-> :class:`Variant`, estimates, experiment specs.

Everything here is a plain function of plain values, so the tests call it directly and the widgets only wire
controls to it. The experiment a playground saves is built by :func:`experiment_for_save` from the same
variants :func:`experiment_for_run` runs, so what was tuned interactively is what the batch run executes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..catalog import load_catalog
from ..config import Profile
from ..datasets import Case, Dataset, load_dataset
from ..errors import DataError, SpecError, WorkbenchError
from ..experiment import DatasetSpec, Experiment
from ..secrets import shorten
from ..variants import Target, Turn, Variant, template_variables

RESPONSE_FORMATS = ("text", "json_object", "json_schema")
ALL_TARGETS = "*"  # editor value: the variant runs on every target of the experiment
ADHOC_ID = "input"
MAX_COUNTED_CASES = 25  # an estimate recounts on every keystroke: beyond this many cases, extrapolate


# ------------------------------------------------------------------------------------------------ names


def unique_name(base: str, taken: Iterable[str]) -> str:
    """``base`` if free, else ``base-2``, ``base-3``, ... (``copy-of-x-2`` stays readable)."""
    taken = set(taken)
    base = base.strip() or "variant"
    if base not in taken:
        return base
    stem = base
    head, _, tail = base.rpartition("-")
    if head and tail.isdigit():
        stem = head
    n = 2
    while f"{stem}-{n}" in taken:
        n += 1
    return f"{stem}-{n}"


def duplicate_names(names: Sequence[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


# -------------------------------------------------------------------------------------- response formats


def response_format_fields(rf: Mapping[str, Any] | None) -> tuple[str, str]:
    """The editor's (kind, schema text) for a variant's ``response_format``."""
    if not rf:
        return "text", ""
    kind = rf.get("type", "text")
    if kind == "json_schema":
        schema = (rf.get("json_schema") or {}).get("schema", {})
        return "json_schema", json.dumps(schema, indent=2)
    return ("json_object", "") if kind == "json_object" else ("text", "")


def response_format_value(kind: str, schema_text: str, name: str = "output") -> dict[str, Any] | None:
    """The ``response_format`` for the editor's choice; a schema that is not JSON raises :class:`DataError`."""
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind != "json_schema":
        raise DataError(f"response format {kind!r}: choose one of {', '.join(RESPONSE_FORMATS)}.")
    try:
        schema = json.loads(schema_text or "{}")
    except json.JSONDecodeError as e:
        raise DataError(f"JSON schema: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}).") from None
    if not isinstance(schema, dict) or not schema:
        raise DataError('JSON schema: give an object schema, e.g. {"type": "object", "properties": {...}}.')
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


# ----------------------------------------------------------------------------------------------- editing


TURN_ROLES = ("user", "assistant", "system")


@dataclass
class VariantFields:
    """What a variant editor shows. ``base`` keeps the fields the editor does not show (images, other
    parameters, description) so a round trip through the editor loses nothing.

    ``turns``: the few-shot turns as ``(role, content)`` pairs, as the editor shows them (None: the base's)."""

    name: str
    system: str = ""
    user: str = "{{ input }}"
    target: str = ""  # a Target label, ALL_TARGETS, or "" for the experiment's first target
    temperature: float | None = None  # None: not set (the profile's default applies)
    max_tokens: int | None = None
    response_format: str = "text"
    schema: str = ""
    base: Variant | None = None
    turns: list[tuple[str, str]] | None = None

    @classmethod
    def from_variant(cls, v: Variant, default_target: str = "") -> VariantFields:
        kind, schema = response_format_fields(v.response_format)
        max_tokens = v.params.get("max_tokens", v.params.get("max_completion_tokens"))
        return cls(name=v.name, system=v.system or "", user=v.user,
                   target=v.target.label if v.target else default_target,
                   temperature=v.params.get("temperature"), max_tokens=max_tokens,
                   response_format=kind, schema=schema, base=v, turns=[(t.role, t.content) for t in v.turns])

    def to_variant(self, default_target: str = "") -> Variant:
        """The :class:`Variant`; raises :class:`DataError` saying which field is wrong."""
        base = self.base
        params = dict(base.params) if base else {}
        if self.temperature is not None:
            params["temperature"] = float(self.temperature)
        else:
            params.pop("temperature", None)
        if self.max_tokens is not None:
            key = "max_completion_tokens" if "max_completion_tokens" in params else "max_tokens"
            params[key] = int(self.max_tokens)
        else:
            params.pop("max_tokens", None)
            params.pop("max_completion_tokens", None)
        name = self.name.strip()
        try:
            rf = response_format_value(self.response_format, self.schema)
        except DataError as e:
            raise DataError(f"Variant {name!r}: {e}") from None
        target: Target | None
        if self.target in ("", ALL_TARGETS) or (self.target == default_target and not (base and base.target)):
            target = None  # the experiment's targets (keeps a spec without per-variant targets as it was)
        else:
            target = Target.parse(self.target)
        changes: dict[str, Any] = dict(name=name, system=self.system or None, user=self.user, params=params,
                                       response_format=rf, target=target)
        if self.turns is not None:
            changes["turns"] = [Turn(role=role, content=content) for role, content in self.turns]
        try:
            return base.replace(**changes) if base else Variant(**changes)
        except SpecError as e:  # say which variant and which field, in one line
            detail = "; ".join(f"{path}: {msg}" for path, msg in e.problems)
            raise SpecError(f"Variant {name or '(unnamed)'!r}: {detail}", e.problems) from None


def copy_fields(f: VariantFields, taken: Iterable[str]) -> VariantFields:
    """A duplicate with a fresh name."""
    return VariantFields(**{**f.__dict__, "name": unique_name(f.name, taken)})


def variables_of(fields: Iterable[VariantFields]) -> list[str]:
    """Template variables the editors use (sorted; ``case`` and broken templates are skipped)."""
    out: set[str] = set()
    for f in fields:
        base_turns = f.base.turns if f.base else []
        turns = [c for _, c in f.turns] if f.turns is not None else [t.content for t in base_turns]
        for source in (f.system, f.user, *turns):
            try:
                out |= template_variables(source or "")
            except Exception:  # a template being typed is often broken for a moment
                continue
    out.discard("case")
    return sorted(out)


# ------------------------------------------------------------------------------------------------ targets


def target_options(profiles: Mapping[str, Profile], extra: Iterable[str] = ()) -> list[str]:
    """Target labels for the editor's dropdown: each profile's deployments (Azure) or its default model, any
    catalog chat model for OpenAI-style profiles, and ``extra`` labels (the experiment's own targets)."""
    out: list[str] = []
    chat_models = [m.name for m in load_catalog().models.values() if m.supports("chat") and not m.local]
    for name, p in profiles.items():
        if p.deployments:
            out.extend(f"{name}:{d}" for d in p.deployments)
        elif p.backend == "local":
            out.append(name)
        else:
            try:
                default = p.default_model
            except WorkbenchError:
                continue  # no deployment configured: nothing it could run
            out.append(f"{name}:{default}")
            if p.backend == "openai":
                out.extend(f"{name}:{m}" for m in chat_models if m != default)
    for label in extra:
        if label and label not in out:
            out.insert(0, label)
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------------- estimates


@dataclass(frozen=True)
class VariantEstimate:
    """Input tokens and worst-case dollars of one variant over the cases it will run on."""

    variant: str
    target: str
    model: str | None = None
    calls: int = 0
    input_tokens: int = 0  # per call (the largest over the cases)
    max_output_tokens: int | None = None
    usd_max: float | None = None  # all calls, outputs at max tokens
    missing: tuple[str, ...] = ()  # template variables the data does not have
    notes: tuple[str, ...] = ()  # parameter adaptations, counting notes
    error: str | None = None

    def text(self) -> str:
        """One line for the editor: ``41 tokens in · ≤ 20 out · ≤ $0.000012 for 3 calls``."""
        if self.error:
            return f"⚠ {self.error}"
        parts = [f"{self.input_tokens:,} tokens in"]
        if self.max_output_tokens:
            parts.append(f"≤ {self.max_output_tokens:,} out")
        if self.usd_max == 0:
            parts.append("free")
        elif self.usd_max is not None:
            parts.append(f"≤ ${self.usd_max:.6f}" + (f" for {self.calls} calls" if self.calls > 1 else " per call"))
        else:
            parts.append("price unknown")
        return " · ".join(parts) + (f" ({self.model})" if self.model else "")

    def warnings(self, columns: Collection[str] | None = None) -> list[str]:
        out = []
        for var in self.missing:
            cols = f" (columns: {', '.join(sorted(columns))})" if columns else ""
            out.append(f"{{{{ {var} }}}} is not in the data{cols}: counted as empty; a run would fail.")
        return out + list(self.notes)


def request_params(variant: Variant, seed: int | None = None) -> dict[str, Any]:
    """The request parameters the harness sends for ``variant`` (same rule as :func:`workbench.harness.plan`)."""
    from ..harness import request_params as harness_params

    return harness_params(variant, seed)


def estimate_variant(variant: Variant, target: Target, cases: Sequence[Mapping[str, Any]], provider: Any, *,
                     columns: Collection[str] | None = None, seed: int | None = None,
                     base_dir: str | Path | None = None, max_cases: int = MAX_COUNTED_CASES) -> VariantEstimate:
    """Count the prompt tokens of ``variant`` on each case and price the calls (outputs at max tokens).

    Variables the data lacks are counted as empty strings and reported in ``missing``; the request is adapted
    to the model exactly as a run would (``provider.prepare``), so a reasoning model's renamed parameters and
    developer role are counted as sent. Beyond ``max_cases`` cases (this runs on every keystroke) the first
    ``max_cases`` are counted and the cost is scaled to all of them, with a note saying so.
    """
    from ..costs import PriceUnknown, estimate_request_cost

    cols = set(columns) if columns is not None else None
    needed = variant.variables() - {"case"}
    missing = tuple(sorted(needed - cols)) if cols is not None else ()
    notes: list[str] = []
    worst_in, total, model, max_out = 0, 0.0, None, None
    priced = True
    counted = list(cases[:max_cases]) or [{}]
    if len(cases) > len(counted):
        notes.append(f"counted on the first {len(counted)} of {len(cases)} cases; the cost is scaled to all")
    try:
        for case in counted:
            values = {**{m: "" for m in needed}, **dict(case)}
            messages = variant.render(values, base_dir=base_dir)
            req = provider.prepare(messages, target.model, warn=False, **request_params(variant, seed))
            for w in req.warnings:
                if w not in notes:
                    notes.append(w)
            model, max_out = req.model.name, req.max_output_tokens
            try:
                est = estimate_request_cost(req.messages, req.model, max_output_tokens=max_out or None)
            except PriceUnknown:
                from ..tokens import count_messages

                n = count_messages(req.messages, req.model).total
                priced = False
            else:
                n = est.input_tokens
                total += est.usd_max
                max_out = est.max_output_tokens
            worst_in = max(worst_in, n)
    except WorkbenchError as e:
        return VariantEstimate(variant.name, target.label, model, len(cases), missing=missing, error=str(e))
    except Exception as e:  # an estimate is advice: never let it break the editor
        return VariantEstimate(variant.name, target.label, model, len(cases), missing=missing,
                               error=f"{type(e).__name__}: {e}")
    scale = len(cases) / len(counted) if cases else 1.0
    return VariantEstimate(variant.name, target.label, model, max(1, len(cases)), worst_in, max_out,
                           total * scale if priced else None, missing, tuple(notes))


# ------------------------------------------------------------------------------------------- experiments


def adhoc_dataset(values: Mapping[str, Any], expected: str = "") -> Dataset:
    """A one-case dataset from the playground's input fields (``expected`` only when given)."""
    row: dict[str, Any] = {"id": ADHOC_ID, **{k: v for k, v in values.items() if k != "id"}}
    if expected.strip():
        row["expected"] = expected.strip()
    return load_dataset([row], name="playground input")


def experiment_for_run(template: Experiment, variants: Sequence[Variant], dataset: Dataset, *,
                       repeats: int | None = None) -> Experiment:
    """What the Run button executes: the template's scorers, targets and limits on ``dataset``."""
    names = [v.name for v in variants]
    if duplicate_names(names):
        raise DataError(f"Variant names must be unique; rename: {', '.join(duplicate_names(names))}.")
    changes: dict[str, Any] = dict(variants=list(variants), dataset=dataset, sample=None)
    if repeats is not None:
        changes["repeats"] = repeats
    return template.replace(**changes)


def experiment_for_save(template: Experiment, variants: Sequence[Variant], path: str | Path, *,
                        repeats: int | None = None) -> Experiment:
    """The template with the edited variants (and ``repeats``), its dataset path relative to where it is saved.

    A dataset that lives in the installed package or a temporary folder is not referenced there (it would not
    survive an upgrade or a reboot): the spec names a copy next to it instead (:func:`dataset_copy` says which)."""
    names = [v.name for v in variants]
    if duplicate_names(names):
        raise DataError(f"Variant names must be unique; rename: {', '.join(duplicate_names(names))}.")
    where = Path(path).resolve().parent
    dataset: Any = template.dataset
    src = _dataset_file(template)
    if src is not None:
        copy = dataset_copy(template, path)
        target = copy[1] if copy else src
        try:
            rel = os.path.relpath(target, where)
        except ValueError:  # another drive on Windows
            rel = str(target)
        dataset = dataset.replace(path=Path(rel).as_posix())
    changes: dict[str, Any] = dict(variants=list(variants), dataset=dataset, base_dir=where)
    if repeats is not None:
        changes["repeats"] = repeats
    return template.replace(**changes)


def _dataset_file(template: Experiment) -> Path | None:
    dataset = template.dataset
    if not isinstance(dataset, DatasetSpec) or dataset.path is None:
        return None
    src = Path(dataset.path)
    return src if src.is_absolute() else (template.base_dir / src).resolve()


def _in_package(path: Path) -> bool:
    return path.is_relative_to(Path(__file__).resolve().parents[1])


def _in_temp(path: Path) -> bool:
    import tempfile

    return path.is_relative_to(Path(tempfile.gettempdir()).resolve())


def dataset_copy(template: Experiment, path: str | Path) -> tuple[Path, Path] | None:
    """``(source, destination)`` when saving the template to ``path`` must copy its dataset next to the spec: the
    dataset is in the installed package (an upgrade moves it), or in a temporary folder while the spec is not;
    None when the spec can point to the dataset where it is."""
    src = _dataset_file(template)
    spec = Path(path).resolve()
    if src is None or not (_in_package(src) or (_in_temp(src) and not _in_temp(spec))):
        return None
    dest = spec.parent / src.name
    if dest.exists() and dest.resolve() != src and dest.read_bytes() != src.read_bytes():
        dest = spec.parent / f"{spec.stem}-{src.name}"  # never overwrite someone's file of the same name
    return src, dest


def default_template(variants: Sequence[Variant] | None, dataset: Any, scorers: Sequence[Any] | None,
                     target: str = "local", name: str = "playground") -> Experiment:
    """An experiment to start a playground from when none is given."""
    variants = list(variants or [Variant(name="v1", system="You are a helpful assistant.", user="{{ input }}")])
    if dataset is None:
        names = sorted(set().union(*(v.variables() for v in variants)) - {"case"}) or ["input"]
        dataset = [{"id": ADHOC_ID, **{n: "" for n in names}}]
    return Experiment(name=name, dataset=dataset, variants=variants, targets=[target], scorers=list(scorers or []))


def new_run_dir(root: Path, name: str) -> Path:
    """A fresh folder for one playground run, in the run history like every other run (``<root>/<name>/<run-id>``;
    playground runs never resume each other)."""
    from ..history import new_run_dir as history_run_dir

    return history_run_dir(name, root)


@dataclass
class CaseSource:
    """The cases a run or an estimate uses: the ad-hoc input, or the first ``k`` cases of the dataset."""

    mode: str  # "input" | "dataset"
    values: dict[str, Any] = field(default_factory=dict)
    expected: str = ""
    dataset: Dataset | None = None
    k: int = 3

    def cases(self) -> Dataset:
        if self.mode == "dataset":
            if self.dataset is None:
                raise DataError("No dataset: give the playground an experiment or a dataset, or use one input.")
            return self.dataset.head(max(1, self.k))
        return adhoc_dataset(self.values, self.expected)

    def rows(self) -> list[dict[str, Any]]:
        return [dict(c.vars) for c in self.cases()]

    def columns(self) -> list[str] | None:
        """Columns the templates may use; None when every variable gets an input field (ad-hoc, no dataset)."""
        if self.dataset is not None:
            return list(self.dataset.columns)
        return None


def case_label(case: Case, limit: int = 80) -> str:
    shown = {k: v for k, v in case.vars.items() if k not in ("id", "case_id", "expected")}
    return shorten("; ".join(f"{v}" for v in shown.values()), limit)
