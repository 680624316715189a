"""Structured-output scorers: json_valid, json_schema, and numeric (a number within a tolerance)."""

from __future__ import annotations

import dataclasses
import json
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import DataError, ScoreFailed, ScoringError
from ..records import Score
from ._util import (
    _as_text,
    _clip,
    _expected_field,
    _field_value,
    _fmt,
    _loads,
    _py,
)
from .base import AnswerScorer, ScoreInput, Scorer, register_scorer


@register_scorer("json_valid")
@dataclass(kw_only=True, eq=False)
class JsonValidScorer(Scorer):
    """The output is valid JSON. ``allow_fences`` (default on) accepts a Markdown ```json fence around it."""

    allow_fences: bool = True

    def _score(self, inp: ScoreInput) -> Score:
        _instance(inp, self.allow_fences)
        return self._verdict(True, explanation="valid JSON")


def _instance(inp: ScoreInput, allow_fences: bool) -> Any:
    if inp.parsed is not None and allow_fences:
        return inp.parsed
    if not inp.output.strip():
        raise ScoreFailed("output is empty, not JSON")
    try:
        return _loads(inp.output, allow_fences=allow_fences)
    except json.JSONDecodeError as e:
        raise ScoreFailed(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


@register_scorer("json_schema")
@dataclass(kw_only=True, eq=False)
class JsonSchemaScorer(Scorer):
    """The output is JSON that validates against ``schema`` (a JSON Schema dict, or a path to a .json file).

    YAML: ``{json_schema: {schema: {...}}}``, or the schema directly: ``{json_schema: {type: object, ...}}``.
    The explanation names the failing location as a JSON path (``$.items[2].price: 'abc' is not of type
    'number'``); ``metadata["errors"]`` lists up to ten problems. The schema's ``$schema`` picks the draft
    (2020-12 if absent); an invalid schema is a :class:`DataError` when the scorer is built.
    """

    primary: ClassVar[str | None] = "schema"
    primary_is_mapping: ClassVar[bool] = True
    schema: Mapping[str, Any] | str = dataclasses.field(default_factory=dict)
    allow_fences: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        import jsonschema

        schema = self._load(self.schema)
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as e:
            raise DataError(f"scorer {self.name!r}: invalid JSON Schema at {e.json_path}: {e.message}") from None
        self._validator = cls(schema)

    def _load(self, schema: Any) -> Mapping[str, Any]:
        if isinstance(schema, Mapping):
            if not schema:
                raise DataError(f"scorer {self.name!r}: json_schema needs a `schema`")
            return schema
        if isinstance(schema, str) and schema.lstrip().startswith("{"):
            try:
                return json.loads(schema)
            except ValueError as e:
                raise DataError(f"scorer {self.name!r}: the schema is not valid JSON: {e}") from None
        path = Path(str(schema)).expanduser()
        try:
            return json.loads(path.read_text("utf-8"))
        except (OSError, ValueError) as e:
            raise DataError(f"scorer {self.name!r}: cannot read the JSON Schema file {str(path)!r}: {e}") from None

    def _score(self, inp: ScoreInput) -> Score:
        from jsonschema.exceptions import best_match

        instance = _instance(inp, self.allow_fences)
        errors = list(self._validator.iter_errors(instance))
        if not errors:
            return self._verdict(True, explanation="matches the schema")
        best = best_match(errors)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        listed = [{"path": e.json_path, "message": e.message} for e in errors[:10]]
        evidence = _clip(json.dumps(best.instance, ensure_ascii=False, default=str), 200)
        raise ScoreFailed(f"{best.json_path}: {best.message}{more}", evidence=evidence, errors=listed)


_NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
                     r"|(?<![\w.])[-+\u2212]?\.\d+(?:[eE][-+]?\d+)?")


def _to_float(text: str) -> float:
    s = text.strip().replace("\u2212", "-").replace(",", "").replace("_", "")
    s = s.lstrip("$€£¥").rstrip("%").strip()
    return float(s)


@register_scorer("numeric")
@dataclass(kw_only=True, eq=False)
class NumericScorer(AnswerScorer):
    """A number read from the output equals ``expected`` within tolerance (like ``math.isclose``).

    - Reading: ``field`` (a JSON field; numbers or numeric strings), else ``pattern`` (a regex whose first
      group - or whole match - is the number), else the ``which`` number in the text: ``last`` (default:
      reasoning comes before the answer), ``first``, or ``only`` (fail if several different numbers appear).
      Thousands separators, currency signs, a trailing % and the Unicode minus are understood.
    - Tolerance: pass when ``|x - expected| <= max(abs_tol, rel_tol * |expected|)``.
    """

    abs_tol: float = 0.0
    rel_tol: float = 1e-9
    which: str = "last"  # first | last | only
    field: str | None = None
    pattern: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.which not in ("first", "last", "only"):
            raise DataError(f"scorer {self.name!r}: which must be first, last or only, got {self.which!r}")
        if self.abs_tol < 0 or self.rel_tol < 0:
            raise DataError(f"scorer {self.name!r}: tolerances must not be negative")
        try:
            self._pattern = re.compile(self.pattern) if self.pattern else None
        except re.error as e:
            raise DataError(f"scorer {self.name!r}: invalid regex {self.pattern!r}: {e}") from None

    def read(self, inp: ScoreInput) -> float:
        """The number the output gives (raises the failing-cell signal when there is none)."""
        return self._read(inp)[0]

    def _read(self, inp: ScoreInput) -> tuple[float, str]:
        """(the number, the text it was read from)."""
        if self.field:
            value = _py(_field_value(inp, self.field))
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                return float(value), _as_text(value)
            return self._from_text(_as_text(value))
        if self._pattern is not None:
            m = self._pattern.search(inp.output)
            if m is None:
                raise ScoreFailed(f"no match for /{self.pattern}/ in the output")
            text = m.group(1) if m.re.groups else m.group(0)
            try:
                return _to_float(text), text
            except ValueError:
                return self._from_text(text)
        return self._from_text(inp.output)

    def _from_text(self, text: str) -> tuple[float, str]:
        found = [(_to_float(m.group(0)), m.group(0)) for m in _NUMBER.finditer(text)]
        if not found:
            raise ScoreFailed(f"no number in {_clip(text)!r}")
        if self.which == "only" and len({v for v, _ in found}) > 1:
            raise ScoreFailed(f"several numbers in the output ({', '.join(_fmt(v) for v, _ in found[:5])}); "
                              f"expected only one", verdict="ambiguous",
                              evidence=", ".join(t for _, t in found[:5]))
        return found[-1] if self.which == "last" else found[0]

    def _score(self, inp: ScoreInput) -> Score:
        expected = _expected_field(inp.expected, self.field) if self.field else inp.expected
        wanted = [self._expected_number(w, inp) for w in self._expected(inp, expected)]
        got, text = self._read(inp)
        for want in wanted:
            if abs(got - want) <= max(self.abs_tol, self.rel_tol * abs(want)):
                return self._verdict(True, answer=_fmt(got), evidence=text,
                                     explanation=f"{_fmt(got)} equals {_fmt(want)} within tolerance")
        return self._verdict(
            False,
            answer=_fmt(got),
            evidence=text,
            explanation=f"{_fmt(got)} is not " + " or ".join(_fmt(w) for w in wanted) + self._tolerance(),
        )

    def _tolerance(self) -> str:
        parts = [f"abs_tol={self.abs_tol:g}"] if self.abs_tol else []
        parts += [f"rel_tol={self.rel_tol:g}"] if self.rel_tol and self.rel_tol != 1e-9 else []
        return f" ({', '.join(parts)})" if parts else ""

    @staticmethod
    def _expected_number(value: Any, inp: ScoreInput) -> float:
        value = _py(value)
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        try:
            return _to_float(str(value))
        except ValueError:
            raise ScoringError(f"case {inp.case_id!r}: expected value {value!r} is not a number") from None
