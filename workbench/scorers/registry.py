"""Build scorers from their spec forms (a name, a YAML mapping, an instance, a function) and name them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import DataError
from .base import SCORERS, Scorer

# the built-in scorers register themselves when their modules load
from .model_graded import EmbeddingScorer, JudgeScorer  # noqa: F401
from .python import PythonScorer
from .structured import JsonSchemaScorer, JsonValidScorer, NumericScorer  # noqa: F401
from .text import ContainsScorer, ExactScorer, LabelScorer, RegexScorer  # noqa: F401
from .tools import NoToolCallScorer, ToolCallScorer, ToolSequenceScorer  # noqa: F401


def build_scorer(spec: str | Mapping[str, Any] | Scorer | type[Scorer] | Callable[..., Any]) -> Scorer:
    """A :class:`Scorer` from any of its forms: an instance, a registered name, a YAML mapping, a callable.

    Mapping forms: ``{"type": "regex", "pattern": "..."}``, ``{"exact": {"ignore_case": true}}``,
    ``{"regex": "\\\\d+"}`` (a scalar sets the scorer's main option), ``{"python": "pkg.mod:fn"}``, and
    ``name:`` next to either to rename the result columns. Strings: ``"exact"`` or ``"pkg.mod:fn"``.
    Raises :class:`DataError` naming the problem (unknown scorer, unknown option, bad value).
    """
    if isinstance(spec, Scorer):
        return spec
    if isinstance(spec, type) and issubclass(spec, Scorer):
        return spec()
    if isinstance(spec, str):
        if spec in SCORERS:
            return _from_registry(spec, {})
        if ":" in spec:
            return PythonScorer(function=spec)
        raise DataError(f"unknown scorer {spec!r}; known: {', '.join(sorted(SCORERS))} "
                        f"(or 'package.module:function' for your own)")
    if isinstance(spec, Mapping):
        kind, options = _split_spec(dict(spec))
        return _from_registry(kind, options)
    if callable(spec):
        return PythonScorer(function=spec)
    raise DataError(f"cannot build a scorer from {spec!r}: give a name, a mapping, a Scorer or a function")


def build_scorers(specs: Sequence[Any] | Any) -> list[Scorer]:
    """Build a list of scorers, checking that their names (result column names) are unique."""
    if isinstance(specs, (str, Mapping, Scorer)) or callable(specs):
        specs = [specs]
    scorers = [build_scorer(s) for s in specs]
    seen: set[str] = set()
    for s in scorers:
        if s.name in seen:
            raise DataError(f"two scorers are named {s.name!r}; give one of them `name:` so their result "
                            f"columns (score.{s.name}) do not collide")
        seen.add(s.name)
    return scorers


def _split_spec(spec: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    if "type" in spec:
        return str(spec.pop("type")), spec
    name = spec.pop("name", None)
    if len(spec) != 1:
        raise DataError(f"scorer spec {spec!r}: use {{type: <scorer>, ...options}} or {{<scorer>: {{...options}}}}")
    kind, value = next(iter(spec.items()))
    target = SCORERS.get(kind)
    if value is None or value is True:
        options: dict[str, Any] = {}
    elif isinstance(value, Mapping) and not _is_primary_mapping(target, value):
        options = dict(value)
    elif isinstance(target, type) and issubclass(target, Scorer) and target.primary:
        options = {target.primary: value}
    else:
        raise DataError(f"scorer {kind!r}: expected a mapping of options, got {value!r}")
    if name is not None:
        options.setdefault("name", name)
    return str(kind), options


def _is_primary_mapping(target: Any, value: Mapping[str, Any]) -> bool:
    """``{json_schema: {type: object, ...}}``: the mapping is the schema itself, not options."""
    if not (isinstance(target, type) and issubclass(target, Scorer) and target.primary_is_mapping):
        return False
    options = {f.name for f in dataclasses.fields(target) if f.init}
    return not (set(value) & options)


def _from_registry(kind: str, options: dict[str, Any]) -> Scorer:
    target = SCORERS.get(kind)
    if target is None:
        raise DataError(f"unknown scorer {kind!r}; known: {', '.join(sorted(SCORERS))}")
    if isinstance(target, type) and issubclass(target, Scorer):
        allowed = {f.name for f in dataclasses.fields(target) if f.init}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise DataError(f"scorer {kind!r} has no option {', '.join(map(repr, unknown))}; "
                            f"its options: {', '.join(sorted(allowed))}")
        try:
            return target(**options)
        except (TypeError, ValueError) as e:
            if isinstance(e, DataError):
                raise
            raise DataError(f"scorer {kind!r}: {e}") from e
    opts = dict(options)
    name = opts.pop("name", kind)
    threshold = opts.pop("threshold", 1.0)
    return PythonScorer(function=target, kwargs=opts, name=name, threshold=threshold, registered=kind)


def scorer_name(spec: Any) -> str:
    """The name a scorer spec gives its result columns (``score.<name>``), read from the spec without building
    the scorer (a report or a widget must not import a user's module or open a judge's connection to say it)."""
    if isinstance(spec, Scorer):
        return spec.name
    if isinstance(spec, type) and issubclass(spec, Scorer):
        return spec.kind or spec.__name__.lower()
    if isinstance(spec, str):
        return _function_name(spec) if ":" in spec and spec not in SCORERS else spec
    if isinstance(spec, Mapping) and spec:
        if spec.get("name"):
            return str(spec["name"])
        if "type" in spec:
            kind, value = str(spec["type"]), spec.get("function")
        else:
            kind, value = next(iter(spec.items()))
            kind = str(kind)
        if kind in ("python", "custom"):
            fn = value.get("function") if isinstance(value, Mapping) else value
            return _function_name(fn) if fn else "python"
        return kind
    if callable(spec):
        return getattr(spec, "__name__", "python")
    return str(spec)


def _function_name(ref: Any) -> str:
    """``"pkg.mod:fn"`` -> ``"fn"`` (a PythonScorer is named after its function)."""
    if callable(ref):
        return getattr(ref, "__name__", "python")
    text = str(ref).strip()
    module, sep, attr = text.partition(":")
    return (attr if sep else module).rsplit(".", 1)[-1] or "python"
