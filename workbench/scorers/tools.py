"""Scorers of function calling: ``tool_call`` (the right functions with the right arguments, in any order),
``no_tool_call`` (the model answered without calling) and ``tool_sequence`` (the functions a looping cell called,
step after step).

They look at the calls themselves (``ScoreInput.tool_calls``: the first answer's, and ``ScoreInput.steps`` for
the loop), never at the text; their evidence is the calls as made (``get_weather({"city": "Paris"})``) or, when
the model did not call, what it said instead. The existing scorers (``contains``, ``label``...) score a looping
cell's final answer as usual.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..errors import DataError, ScoringError
from ..records import Score
from ..tools import EXPECTED_TOOL_CALLS, call_arguments, call_name, expected_calls, show_call
from ._util import _clip
from .base import ScoreInput, Scorer, register_scorer
from .refusal import find_refusal

MATCHES = ("equal", "subset", "schema")


def _said(inp: ScoreInput) -> str:
    return f"no tool call; the model answered {_clip(inp.output, 120)!r}" if inp.output else "no tool call, no text"


def _shown(calls: Sequence[Mapping[str, Any]]) -> str:
    return "; ".join(show_call(c) for c in calls)


@register_scorer("tool_call")
@dataclass(kw_only=True, eq=False)
class ToolCallScorer(Scorer):
    """The model's first answer calls the expected functions with the expected arguments.

    Expected calls come from the case's ``expected_tool_calls`` column (``column``) - a name, ``{name,
    arguments}``, ``{name, schema}`` or a list of them, for parallel calls matched in any order - or from the
    scorer's own ``function`` / ``arguments`` / ``schema``. ``match``: ``equal`` (the arguments are exactly
    these), ``subset`` (at least these keys, with these values) or ``schema`` (the arguments validate against
    the JSON Schema). ``allow_extra``: further calls beyond the expected ones do not fail the cell. The value is
    the share of expected calls matched; only all of them passes. A case expecting ``[]`` expects no call.
    """

    evidence_in_output: ClassVar[bool] = False
    primary: ClassVar[str | None] = "function"

    function: str | None = None
    arguments: Mapping[str, Any] | None = None
    schema: Mapping[str, Any] | None = None
    match: str = "equal"
    allow_extra: bool = False
    ignore_case: bool = False
    column: str = EXPECTED_TOOL_CALLS
    _validators: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.match not in MATCHES:
            raise DataError(f"scorer {self.name!r}: match must be one of {', '.join(MATCHES)}, got {self.match!r}")
        if self.schema is not None:
            self._validator(self.schema)  # a bad schema is refused when the scorer is built

    def _validator(self, schema: Mapping[str, Any]) -> Any:
        import jsonschema

        key = json.dumps(schema, sort_keys=True, default=str)
        if key not in self._validators:
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as e:
                raise DataError(f"scorer {self.name!r}: invalid JSON Schema at {e.json_path}: {e.message}") from None
            self._validators[key] = jsonschema.Draft202012Validator(schema)
        return self._validators[key]

    def expected_for(self, inp: ScoreInput) -> list[dict[str, Any]]:
        if self.function is not None:
            call: dict[str, Any] = {"name": self.function}
            if self.arguments is not None:
                call["arguments"] = dict(self.arguments)
            if self.schema is not None:
                call["schema"] = dict(self.schema)
            return [call]
        value = inp.vars.get(self.column)
        if value is None or value != value:  # (NaN: an empty table cell)
            raise ScoringError(f"case {inp.case_id!r} has no {self.column!r}, which the tool_call scorer "
                               f"{self.name!r} compares against: add the column, or give the scorer `function:`.")
        return expected_calls(value, f"case {inp.case_id!r}")

    def _score(self, inp: ScoreInput) -> Score:
        expected = self.expected_for(inp)
        calls = list(inp.tool_calls)
        if not expected:
            if not calls:
                return self._verdict(True, explanation="no call expected, none made", evidence=_said(inp))
            return self._verdict(False, explanation=f"no call expected; the model called {_shown(calls)}",
                                 evidence=_shown(calls), answer=call_name(calls[0]))
        if not calls:
            refusal = find_refusal(inp.output) if inp.output else None
            return Score(scorer=self.name, value=0.0, passed=False, verdict="refused" if refusal else "fail",
                         evidence=refusal.text if refusal else _said(inp),
                         explanation=f"expected {_shown([_as_call(e) for e in expected])}; {_said(inp)}")
        assignment = _match(expected, calls, self._problem)
        matched = sum(1 for a in assignment if a is not None)
        reasons = []
        for e, a in zip(expected, assignment):
            if a is None:
                reasons.append(f"expected {show_call(_as_call(e))}: {self._closest(e, calls)}")
        extra = [c for i, c in enumerate(calls) if i not in assignment]
        if extra and not self.allow_extra:
            reasons.append(f"extra call{'s' if len(extra) > 1 else ''} {_shown(extra)}")
        counted_extra = 0 if self.allow_extra else len(extra)
        value = matched / (len(expected) + counted_extra)  # the share of calls that were the right ones
        ok = not reasons
        explanation = (f"{matched} of {len(expected)} expected call{'s' if len(expected) > 1 else ''} made "
                       f"(match: {self.match})" + ("" if ok else "; " + "; ".join(reasons)))
        return Score(scorer=self.name, value=value, passed=ok, verdict="pass" if ok else "fail",
                     answer=call_name(calls[0]), explanation=explanation, evidence=_shown(calls),
                     metadata={"expected": expected, "calls": calls, "match": self.match})

    def _problem(self, e: Mapping[str, Any], call: Mapping[str, Any]) -> str | None:
        """Why ``call`` is not the expected call ``e``; None when it is."""
        if call_name(call) != e["name"]:
            return f"called {call_name(call)!r}, not {e['name']!r}"
        args, problem = call_arguments(call)
        if problem:
            return f"{call_name(call)}: {problem}: {_clip(str(args), 80)!r}"
        if self.match == "schema" or ("schema" in e and "arguments" not in e):
            schema = e.get("schema") or self.schema
            if schema is None:
                raise ScoringError(f"scorer {self.name!r} (match: schema): expected call {e['name']!r} has no "
                                   "`schema`; give one per expected call or the scorer's `schema:`.")
            from jsonschema.exceptions import best_match

            errors = list(self._validator(schema).iter_errors(args))
            if errors:
                best = best_match(errors)
                return f"arguments {best.json_path}: {best.message}"
            return None
        if "arguments" not in e:
            return None
        want = e["arguments"]
        if self.match == "equal":
            if _norm(args, self.ignore_case) != _norm(want, self.ignore_case):
                return f"arguments {json.dumps(args, sort_keys=True)} != {json.dumps(want, sort_keys=True)}"
            return None
        for key, value in want.items():  # subset
            if key not in args:
                return f"argument {key!r} missing"
            if _norm(args[key], self.ignore_case) != _norm(value, self.ignore_case):
                return f"argument {key!r} is {json.dumps(args[key])}, not {json.dumps(value)}"
        return None

    def _closest(self, e: Mapping[str, Any], calls: Sequence[Mapping[str, Any]]) -> str:
        same = [c for c in calls if call_name(c) == e["name"]]
        if not same:
            return f"no call of {e['name']!r}"
        return "; ".join(p for p in (self._problem(e, c) for c in same) if p) or "matched another expected call"


def _as_call(e: Mapping[str, Any]) -> dict[str, Any]:
    return {"function": {"name": e["name"], "arguments": json.dumps(e.get("arguments", {}))}}


def _norm(value: Any, ignore_case: bool) -> Any:
    if isinstance(value, str):
        return value.strip().casefold() if ignore_case else value
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return float(value)  # 1 and 1.0 are the same argument
    if isinstance(value, Mapping):
        return {k: _norm(v, ignore_case) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v, ignore_case) for v in value]
    return value


def _match(expected: list[dict[str, Any]], calls: list[Mapping[str, Any]], problem) -> list[int | None]:
    """For each expected call, the index of the call that matches it (each call used once; order-free), found by
    augmenting paths so the assignment matches as many expected calls as can be matched."""
    fits = [[j for j, c in enumerate(calls) if problem(e, c) is None] for e in expected]
    owner: dict[int, int] = {}  # call index -> expected index

    def place(i: int, seen: set[int]) -> bool:
        for j in fits[i]:
            if j in seen:
                continue
            seen.add(j)
            if j not in owner or place(owner[j], seen):
                owner[j] = i
                return True
        return False

    for i in range(len(expected)):
        place(i, set())
    out: list[int | None] = [None] * len(expected)
    for j, i in owner.items():
        out[i] = j
    return out


@register_scorer("no_tool_call")
@dataclass(kw_only=True, eq=False)
class NoToolCallScorer(Scorer):
    """The model's first answer calls no function (a question the tools do not serve, or ``tool_choice: none``)."""

    evidence_in_output: ClassVar[bool] = False

    def _score(self, inp: ScoreInput) -> Score:
        calls = list(inp.tool_calls)
        if calls:
            return self._verdict(False, explanation=f"the model called {_shown(calls)}", evidence=_shown(calls),
                                 answer=call_name(calls[0]))
        return self._verdict(True, explanation="answered without calling a tool", evidence=_said(inp))


SEQUENCE_MATCHES = ("exact", "in_order", "set")


def step_calls(inp: ScoreInput) -> list[tuple[int, Mapping[str, Any]]]:
    """(step number, call) for every call of a cell, step after step (a single call is step 1)."""
    if not inp.steps:
        return [(1, c) for c in inp.tool_calls]
    out = []
    for s in inp.steps:
        number = s.get("step") if isinstance(s, Mapping) else s.step
        calls = s.get("tool_calls") if isinstance(s, Mapping) else s.tool_calls
        out.extend((int(number), c) for c in calls or [])
    return out


@register_scorer("tool_sequence")
@dataclass(kw_only=True, eq=False)
class ToolSequenceScorer(Scorer):
    """The functions a looping cell called, in the order it called them, are the expected ones.

    Expected names: the scorer's ``sequence`` or the case's ``expected_tool_sequence`` column (a list, JSON text
    or comma-separated names). ``match``: ``exact`` (these calls, in this order, nothing else), ``in_order``
    (these in this order, others allowed between) or ``set`` (these names, any order, others allowed)."""

    evidence_in_output: ClassVar[bool] = False
    primary: ClassVar[str | None] = "sequence"

    sequence: list[str] | None = None
    match: str = "exact"
    column: str = "expected_tool_sequence"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.match not in SEQUENCE_MATCHES:
            raise DataError(f"scorer {self.name!r}: match must be one of {', '.join(SEQUENCE_MATCHES)}, "
                            f"got {self.match!r}")

    def _expected_names(self, inp: ScoreInput) -> list[str]:
        value: Any = self.sequence if self.sequence is not None else inp.vars.get(self.column)
        if value is None or value != value:
            raise ScoringError(f"case {inp.case_id!r} has no {self.column!r}, which the tool_sequence scorer "
                               f"{self.name!r} compares against: add the column, or give the scorer `sequence:`.")
        if isinstance(value, str):
            text = value.strip()
            value = json.loads(text) if text.startswith("[") else [n.strip() for n in text.split(",") if n.strip()]
        return [str(n) for n in value]

    def _score(self, inp: ScoreInput) -> Score:
        want = self._expected_names(inp)
        made = step_calls(inp)
        names = [call_name(c) for _, c in made]
        shown = " -> ".join(f"{n}@{step}" for (step, _), n in zip(made, names)) or "no calls"
        if self.match == "exact":
            ok = names == want
        elif self.match == "set":
            ok = set(want) <= set(names)
        else:
            it = iter(names)
            ok = all(any(n == w for n in it) for w in want)
        explanation = f"called {shown}; expected {' -> '.join(want) or 'no calls'} (match: {self.match})"
        return self._verdict(ok, explanation=explanation, evidence=shown, answer=" -> ".join(names),
                             calls=[{"step": s, "name": call_name(c)} for s, c in made])
