"""Small helpers the scorers share: values as text, expected alternatives, JSON fields, sandboxed templates."""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import DataError, ScoreFailed
from ..secrets import shorten

if TYPE_CHECKING:  # pragma: no cover
    from .base import ScoreInput


def _py(value: Any) -> Any:
    """numpy scalars -> Python scalars (pandas hands numpy types out of a DataFrame)."""
    if hasattr(value, "item") and callable(value.item) and getattr(value, "shape", None) == ():
        return value.item()
    return value


def _as_text(value: Any) -> str:
    """How a value reads as text: "12" for 12.0 (CSV columns turn ints into floats), JSON for structures."""
    value = _py(value)
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _alternatives(expected: Any) -> list[Any]:
    expected = _py(expected)
    if expected is None or _is_missing(expected):
        return []
    if isinstance(expected, (list, tuple)):
        return [e for e in (_py(x) for x in expected) if e is not None]
    if hasattr(expected, "tolist") and not isinstance(expected, str):  # numpy arrays from a DataFrame cell
        return _alternatives(expected.tolist())
    return [expected]


def _is_missing(value: Any) -> bool:
    """NaN / pandas NA: an empty `expected` cell in a DataFrame."""
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def _clip(text: Any, n: int = 120) -> str:
    return shorten(_as_text(text), n)


_FENCE = re.compile(r"^```[ \t]*(?:json|JSON)?[ \t]*\n(.*?)\n?```$", re.DOTALL)


def _loads(text: str, *, allow_fences: bool = True) -> Any:
    """Parse JSON, accepting a Markdown code fence around it (models add them)."""
    s = text.strip()
    if allow_fences:
        m = _FENCE.match(s)
        if m:
            s = m.group(1).strip()
    return json.loads(s)


def _json_of(inp: ScoreInput) -> Any:
    if inp.parsed is not None:
        return inp.parsed
    try:
        return _loads(inp.output)
    except ValueError as e:
        raise ScoreFailed(f"output is not JSON ({e})") from None


def _get_field(data: Any, path: str) -> Any:
    """``a.b.0.c`` into nested dicts and lists; raises KeyError naming the missing part."""
    cur = data
    for part in path.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and re.fullmatch(r"-?\d+", part) and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise KeyError(part)
    return cur


def _field_value(inp: ScoreInput, path: str) -> Any:
    data = _json_of(inp)
    try:
        return _get_field(data, path)
    except KeyError as e:
        raise ScoreFailed(f"field {path!r} is missing from the output JSON (no {e.args[0]!r})") from None


def _expected_field(expected: Any, path: str) -> Any:
    """With ``field`` set and a dict ``expected``, compare like with like: ``expected[field]``."""
    if isinstance(expected, Mapping):
        try:
            return _get_field(expected, path)
        except KeyError:
            return expected
    return expected


_env = None


def _jinja():
    global _env
    if _env is None:
        from jinja2 import StrictUndefined
        from jinja2.sandbox import SandboxedEnvironment

        # sandboxed: rubrics and patterns come from YAML files; strict: a typo in a placeholder is an error
        _env = SandboxedEnvironment(undefined=StrictUndefined, keep_trailing_newline=True, autoescape=False)
    return _env


def _template(source: str, what: str):
    from jinja2 import TemplateSyntaxError

    try:
        return _jinja().from_string(source)
    except TemplateSyntaxError as e:
        raise DataError(f"{what}: template error at line {e.lineno}: {e.message}") from None


def _is_template(text: str) -> bool:
    return "{{" in text or "{%" in text


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(float(x))
