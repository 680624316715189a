"""Your own function as a scorer (sync or async), by reference or registered with :func:`register_scorer`."""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from .._sync import run_sync
from ..errors import DataError, ScoringError
from ..records import Score
from ._util import (
    _as_text,
    _clip,
    _py,
)
from .base import _NO_SPEC, SCORERS, ScoreInput, Scorer, _describe, _plain, register_scorer


@register_scorer("python")
@dataclass(kw_only=True, eq=False)
class PythonScorer(Scorer):
    """Your own function as a scorer: ``fn(inp: ScoreInput, **kwargs) -> Score | float | bool | dict``.

    Sync or async. ``function`` is the callable or an import path ``"package.module:function"``; ``kwargs``
    are passed to it. Return values: a :class:`Score` (its ``scorer`` is set to this scorer's name); a bool
    (1.0 / 0.0); a number (``passed = value >= threshold``; the default threshold 1.0 passes only a full
    score - set it for partial credit); a dict of Score fields (``value`` or ``score``, ``passed``, ``answer``,
    ``explanation``, ``verdict``, ``evidence``, ``span``; other keys go to ``metadata``). Returning ``None`` is
    treated as a bug in the function (a per-cell error), not as "not applicable".

    Unlike the built-in scorers, it also sees content-filtered cells (``inp.outcome``), so a safety check can
    pass when the filter stopped the request. The default name is the function's name.
    """

    primary: ClassVar[str | None] = "function"
    scores_filtered: ClassVar[bool] = True
    function: str | Callable[..., Any] = ""
    kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    registered: str | None = dataclasses.field(default=None, repr=False, metadata=_NO_SPEC)  # set by the registry

    def __post_init__(self) -> None:
        self._fn = _resolve(self.function)
        if not self.name:
            self.name = self.registered or getattr(self._fn, "__name__", "python")
        super().__post_init__()

    def spec(self) -> dict[str, Any]:
        if self.registered:
            out: dict[str, Any] = {"type": self.registered}
            if self.name != self.registered:
                out["name"] = self.name
            if self.threshold != 1.0:
                out["threshold"] = self.threshold
            return {**out, **_plain(dict(self.kwargs))}
        out = super().spec()
        out["function"] = self.function if isinstance(self.function, str) else _reference(self.function)
        if self.name == getattr(self._fn, "__name__", None):
            out.pop("name", None)
        return out

    async def _ascore(self, inp: ScoreInput) -> Score:
        result = self._fn(inp, **self.kwargs)
        if inspect.isawaitable(result):
            result = await result
        return self._coerce(result)

    def _score(self, inp: ScoreInput) -> Score:
        result = self._fn(inp, **self.kwargs)
        if inspect.isawaitable(result):
            result = run_sync(_await(result))
        return self._coerce(result)

    def _coerce(self, result: Any) -> Score:
        result = _py(result)
        if isinstance(result, Score):
            return result.model_copy(update={"scorer": self.name})
        if isinstance(result, bool):
            return self._verdict(result)
        if isinstance(result, numbers.Real):
            return self._graded(float(result))
        if isinstance(result, Mapping):
            return self._from_dict(dict(result))
        raise ScoringError(f"{_describe(self._fn)} returned {type(result).__name__} {_clip(result)!r}; return a "
                        f"Score, a bool, a number or a dict")

    def _from_dict(self, d: dict[str, Any]) -> Score:
        value = d.pop("value", d.pop("score", None))
        value = None if value is None else float(_py(value))
        passed = d.pop("passed", None)
        if passed is None and value is not None:
            passed = value >= self.threshold
        known = {k: d.pop(k) for k in ("answer", "explanation", "error", "verdict", "evidence", "span") if k in d}
        metadata = {**d.pop("metadata", {}), **d}
        answer = known.pop("answer", None)
        return Score(scorer=self.name, value=value, passed=None if passed is None else bool(passed),
                     answer=None if answer is None else _as_text(answer), metadata=metadata, **known)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _resolve(function: str | Callable[..., Any]) -> Callable[..., Any]:
    from ..tools import resolve_function

    if not callable(function) and (not isinstance(function, str) or not function.strip()):
        raise DataError("python scorer needs `function`: a callable or 'package.module:function'")
    return resolve_function(function, "python scorer")


def _reference(fn: Callable[..., Any]) -> str:
    """'module:qualname' for a function that can be imported back; DataError for lambdas and closures."""
    module, qualname = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    ref = f"{module}:{qualname}"
    if module and qualname and "<" not in qualname:
        try:
            if _resolve(ref) is fn:
                return ref
        except DataError:
            pass
    raise DataError(f"scorer function {fn!r} cannot be saved to YAML: define it at module level in an importable "
                    f"module (or register it with @register_scorer) instead of a lambda or nested function")


SCORERS["custom"] = PythonScorer
