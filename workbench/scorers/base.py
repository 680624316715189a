"""The scorer interface: what a scorer sees (:class:`ScoreInput`), the :class:`Scorer` base class with its
per-cell guarantees, and the registry (:data:`SCORERS`, :func:`register_scorer`) that names scorers in specs."""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from .._sync import run_sync
from ..errors import DataError, ScoreFailed, ScoringError
from ..messages import content_text
from ..records import VERDICTS, Score
from ._util import _alternatives, _as_text, _clip
from .refusal import find_refusal

FAILED_OUTCOMES = frozenset({"prompt_filtered", "completion_filtered"})


@dataclass(frozen=True)
class ScoreInput:
    """Everything a scorer may look at for one cell: the output, the case, and how the request looked."""

    output: str  # model output text ("" if none)
    parsed: Any | None  # output parsed as JSON when the variant asked for JSON, else None
    expected: Any | None  # the case's `expected` value (dict, list of alternatives, str, number)
    vars: Mapping[str, Any]  # the case's variables (all dataset columns)
    case_id: str
    variant: str = ""
    messages: Sequence[Mapping[str, Any]] = ()  # rendered request messages
    outcome: str = "ok"  # ok | length | completion_filtered | prompt_filtered
    tool_calls: Sequence[Mapping[str, Any]] = ()  # the first answer's function calls (OpenAI shape)
    steps: Sequence[Any] = ()  # a looping cell's steps (workbench.records.Step), empty for a single call

    @classmethod
    def of(cls, output: str = "", expected: Any = None, **fields: Any) -> ScoreInput:
        """Shortcut for notebooks and tests: ``ScoreInput.of("Paris", "paris", case_id="q1")``."""
        fields.setdefault("parsed", None)
        fields.setdefault("vars", {})
        fields.setdefault("case_id", "case")
        return cls(output=output, expected=expected, **fields)


_NO_SPEC = {"spec": False}  # field metadata: an init option that is not saved by spec() (e.g. a live provider)


@dataclass(kw_only=True, eq=False)
class Scorer:
    """Base class. Subclasses are dataclasses whose fields are their options.

    Implement ``_score`` (sync, for pure scorers) or ``_ascore`` (async, for scorers that call a model); the
    other one is derived. Do not override :meth:`score` / :meth:`ascore`: they hold the per-cell guarantees
    described in the module docstring.
    """

    kind: ClassVar[str] = ""  # registry name, set by @register_scorer
    primary: ClassVar[str | None] = None  # the option a scalar YAML value sets: {"regex": "\\d+"}
    primary_is_mapping: ClassVar[bool] = False  # the primary option may itself be a mapping (a JSON Schema)
    scores_filtered: ClassVar[bool] = False  # True: see filtered cells instead of failing them
    evidence_in_output: ClassVar[bool] = True  # evidence is quoted from the output (a judge's is its reason)

    name: str = ""  # column name in results: score.<name>, passed.<name>; defaults to the kind
    threshold: float = 1.0  # passed = value >= threshold

    def __post_init__(self) -> None:
        if not self.name:
            self.name = self.kind or type(self).__name__.lower()
        if not isinstance(self.threshold, numbers.Real) or isinstance(self.threshold, bool):
            raise DataError(f"scorer {self.name!r}: threshold must be a number, got {self.threshold!r}")

    # -- the harness's interface ------------------------------------------------------------------------
    async def ascore(self, inp: ScoreInput) -> Score:
        """Score one cell; never raises (except on cancellation)."""
        early = self._precheck(inp)
        if early is not None:
            return early
        try:
            return self._finish(await self._ascore(inp), inp)
        except ScoreFailed as f:
            return self._finish(self._failed(f), inp)
        except Exception as e:
            return self._error(e)

    def score(self, inp: ScoreInput) -> Score:
        """Synchronous :meth:`ascore`, for notebooks and tests (works inside a running event loop too)."""
        early = self._precheck(inp)
        if early is not None:
            return early
        try:
            return self._finish(self._score(inp), inp)
        except ScoreFailed as f:
            return self._finish(self._failed(f), inp)
        except Exception as e:
            return self._error(e)

    def spec(self) -> dict[str, Any]:
        """This scorer as a YAML-ready dict; ``build_scorer(s.spec())`` builds an equal scorer.

        Only options that differ from their defaults are written, so saved experiments stay short.
        """
        out: dict[str, Any] = {"type": self.kind}
        if self.name != self.kind:
            out["name"] = self.name
        for f in dataclasses.fields(self):
            if not f.init or f.name == "name" or f.metadata.get("spec") is False:
                continue
            value = getattr(self, f.name)
            if not _same(value, _default(f)):
                out[f.name] = _plain(value)
        return out

    # -- for subclasses ---------------------------------------------------------------------------------
    def _score(self, inp: ScoreInput) -> Score:
        return run_sync(self._ascore(inp))

    async def _ascore(self, inp: ScoreInput) -> Score:
        return self._score(inp)

    def _verdict(self, ok: bool, *, answer: Any = None, explanation: str | None = None, evidence: str | None = None,
                 span: tuple[int, int] | None = None, **metadata: Any) -> Score:
        """A binary score: 1.0 / 0.0. ``evidence``: the output text the verdict rests on (located in the
        output automatically when ``span`` is not given)."""
        return Score(scorer=self.name, value=1.0 if ok else 0.0, passed=bool(ok), verdict="pass" if ok else "fail",
                     answer=None if answer is None else _as_text(answer), explanation=explanation, metadata=metadata,
                     evidence=evidence, span=span)

    def _graded(self, value: float, *, answer: Any = None, explanation: str | None = None,
                evidence: str | None = None, span: tuple[int, int] | None = None, **metadata: Any) -> Score:
        """A graded score: passed when ``value >= threshold``."""
        ok = bool(value >= self.threshold)
        return Score(scorer=self.name, value=float(value), passed=ok, verdict="pass" if ok else "fail",
                     answer=None if answer is None else _as_text(answer), explanation=explanation, metadata=metadata,
                     evidence=evidence, span=span)

    def _expected(self, inp: ScoreInput, expected: Any = dataclasses.MISSING) -> list[Any]:
        """The acceptable answers (a list ``expected`` means "any of these"); raises if there are none."""
        value = inp.expected if expected is dataclasses.MISSING else expected
        alternatives = _alternatives(value)
        if not alternatives:
            raise ScoringError(
                f"case {inp.case_id!r} has no expected value, which the {self.kind!r} scorer {self.name!r} "
                f"compares against: fill the case's `expected` column."
            )
        return alternatives

    # -- guarantees ---------------------------------------------------------------------------------------
    def _precheck(self, inp: ScoreInput) -> Score | None:
        if self.scores_filtered or inp.outcome not in FAILED_OUTCOMES:
            return None
        where = "prompt" if inp.outcome == "prompt_filtered" else "completion"
        return Score(scorer=self.name, value=0.0, passed=False, verdict="filtered",
                     explanation=f"no answer to score: the {where} was blocked by the content filter "
                                 f"(outcome {inp.outcome}); counted as a fail",
                     metadata={"outcome": inp.outcome})

    def _failed(self, f: ScoreFailed) -> Score:
        return Score(scorer=self.name, value=0.0, passed=False, answer=f.answer, explanation=f.explanation,
                     metadata=f.metadata, verdict=f.verdict or "fail", evidence=f.evidence, span=f.span)

    def _error(self, e: BaseException) -> Score:
        from ..secrets import redact  # backend errors can echo request details: never store a key

        return Score(scorer=self.name, value=None, passed=None, verdict="error",
                     error=redact(f"{type(e).__name__}: {e}"))

    def _finish(self, score: Score, inp: ScoreInput) -> Score:
        if score.value is not None and not math.isfinite(score.value):
            return self._error(ValueError(f"scorer returned a non-finite value {score.value!r}"))
        if inp.outcome not in ("ok", "", None) and "outcome" not in score.metadata:
            score.metadata["outcome"] = inp.outcome
        if score.verdict is None:
            score.verdict = _verdict_of(score)
        elif score.verdict not in VERDICTS:
            return self._error(ValueError(f"verdict {score.verdict!r} is not one of {', '.join(VERDICTS)}"))
        elif score.verdict != "pass" and score.passed:
            # only a pass passes: a scorer that says "ambiguous" or "refused" cannot also count as passed
            score.passed = False
        if score.span is None and score.evidence and inp.output and self.evidence_in_output:
            score.span = locate(inp.output, score.evidence)
        return score


def _verdict_of(score: Score) -> str | None:
    if score.error:
        return "error"
    if score.passed is None:
        return None
    return "pass" if score.passed else "fail"


def locate(output: str, fragment: str) -> tuple[int, int] | None:
    """Where ``fragment`` first appears in ``output`` (case-insensitively), as ``(start, end)``; None if not."""
    if not fragment:
        return None
    i = output.find(fragment)
    if i < 0:
        i = output.casefold().find(fragment.casefold())
        if i < 0 or len(output.casefold()) != len(output):  # casefold changed the length: offsets would lie
            return None
    return (i, i + len(fragment))


@dataclass(kw_only=True, eq=False)
class AnswerScorer(Scorer):
    """A scorer of answers to a task (exact, contains, regex, label, numeric, embedding): a refusal is its own
    verdict, not an answer that happens to contain the right words.

    ``on_refusal: fail`` (default): an output that declines ("I'm sorry, I can't...", "As an AI I cannot...",
    see :mod:`workbench.scorers.refusal`) fails with verdict ``refused`` and the phrase as evidence, before
    anything else is looked at (an embedding or judge call is not paid for it). ``on_refusal: score``: score
    the text like any other. A refusal phrase the prompt itself contains (a review quoting "I can't
    recommend it") is an echo, not a refusal.
    """

    on_refusal: str = "fail"  # fail | score

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.on_refusal not in ("fail", "score"):
            raise DataError(f"scorer {self.name!r}: on_refusal must be 'fail' or 'score', got {self.on_refusal!r}")

    def _precheck(self, inp: ScoreInput) -> Score | None:
        early = super()._precheck(inp)
        if early is not None or self.on_refusal != "fail":
            return early
        refusal = find_refusal(inp.output, prompt=_prompt_text(inp))
        if refusal is None:
            return None
        return Score(scorer=self.name, value=0.0, passed=False, verdict="refused", evidence=refusal.text,
                     span=(refusal.start, refusal.end),
                     explanation=f"the model declined ({_clip(refusal.text, 80)!r}): counted as a fail, not "
                                 f"as an answer (on_refusal: score scores such outputs anyway)")


def _prompt_text(inp: ScoreInput) -> str:
    """The request's text and the case's values: what an output may quote without declining."""
    parts = [content_text(m.get("content")) for m in inp.messages]
    parts += [v for v in inp.vars.values() if isinstance(v, str)]
    return "\n".join(parts)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _same(a: Any, b: Any) -> bool:
    """Equal as option values (True is not 1 here)."""
    try:
        return isinstance(a, bool) == isinstance(b, bool) and bool(a == b)
    except Exception:
        return False


def _plain(value: Any) -> Any:
    """YAML-friendly: tuples become lists, mappings become dicts."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


SCORERS: dict[str, type[Scorer] | Callable[..., Any]] = {}

T = TypeVar("T")


def register_scorer(name: str, *, replace: bool = False) -> Callable[[T], T]:
    """Register a scorer under ``name`` so experiments can say ``{name: {...options}}``.

    Decorate a :class:`Scorer` subclass (a dataclass; its fields are the options), or a plain function
    ``fn(inp: ScoreInput, **options) -> Score | float | bool | dict`` (sync or async) whose keyword
    arguments are the options::

        @register_scorer("mentions_city")
        def mentions_city(inp, city_field="city"):
            return inp.vars[city_field].lower() in inp.output.lower()

    Re-running a notebook cell that redefines the same function replaces it; registering a different object
    under a taken name needs ``replace=True``.
    """

    def decorate(obj: T) -> T:
        old = SCORERS.get(name)
        if old is not None and old is not obj and not replace and not _redefinition(old, obj):
            raise DataError(f"a scorer named {name!r} is already registered ({_describe(old)}); "
                            f"choose another name or pass replace=True")
        if isinstance(obj, type) and issubclass(obj, Scorer):
            if "kind" not in obj.__dict__:
                obj.kind = name
        elif not callable(obj):
            raise DataError(f"register_scorer({name!r}) needs a Scorer subclass or a function, got {obj!r}")
        SCORERS[name] = obj  # type: ignore[assignment]
        return obj

    return decorate


def _redefinition(old: Any, new: Any) -> bool:
    return (getattr(old, "__module__", None), getattr(old, "__qualname__", None)) == \
        (getattr(new, "__module__", None), getattr(new, "__qualname__", None))


def _describe(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
