"""Scorers: turn one finished cell (a model's output for one case) into a typed :class:`Score`.

In the manner of inspect_ai's ``scorer/_match.py``, every scorer is small and declarative: a dataclass whose
fields are its options, so the same object is built from Python or from an experiment's YAML, and saved back
(:meth:`Scorer.spec` round-trips through :func:`build_scorer`)::

    build_scorer("exact")
    build_scorer({"exact": {"ignore_case": True}})
    build_scorer({"type": "regex", "pattern": r"\\bParis\\b"})
    build_scorer({"name": "sentiment", "type": "label", "labels": ["positive", "negative"]})
    build_scorer({"python": "mypackage.checks:has_citation"})

Rules every scorer follows (the harness relies on them):

- **One cell never breaks a run.** An exception inside a scorer becomes a :class:`Score` with ``error`` set
  (``"ExceptionType: message"``) and ``value``/``passed`` ``None``; statistics count it as an error, not a
  fail. Configuration mistakes (unknown option, bad regex, invalid JSON Schema) raise :class:`DataError` when
  the scorer is *built*, before any tokens are spent.
- **A model's failure is a fail, not an error.** Output that is not JSON, a missing field, no label found:
  ``value 0.0, passed False`` with an ``explanation``.
- **Filtered cells fail.** When the completion was blocked by a content filter (``outcome`` is
  ``prompt_filtered`` or ``completion_filtered``) there is no answer to judge, so built-in scorers return
  ``value 0.0, passed False`` with an explanation naming the outcome, without looking at the output (the
  judge spends no tokens on it). We count it as a fail rather than an error because, from the user's point of
  view, the prompt did not get the job done on that case - and a variant that trips the filter more often
  should rank lower. Custom Python scorers are the exception: they see every outcome, so a red-team check can
  score "the filter stopped it" as a pass. ``length`` (cut at the token limit) is scored normally, with
  ``metadata["outcome"] = "length"``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import importlib
import inspect
import json
import math
import numbers
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Sequence, TypeVar

from pydantic import BaseModel, Field

from .errors import DataError
from .messages import content_text

__all__ = [
    "ScoreInput", "Score", "Scorer", "ExactScorer", "ContainsScorer", "RegexScorer", "LabelScorer",
    "JsonValidScorer", "JsonSchemaScorer", "NumericScorer", "EmbeddingScorer", "JudgeScorer", "PythonScorer",
    "SCORERS", "FAILED_OUTCOMES", "register_scorer", "build_scorer", "build_scorers", "parse_grade",
    "JudgeParseError",
]

FAILED_OUTCOMES = frozenset({"prompt_filtered", "completion_filtered"})


# --------------------------------------------------------------------------------------------- records


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

    @classmethod
    def of(cls, output: str = "", expected: Any = None, **fields: Any) -> ScoreInput:
        """Shortcut for notebooks and tests: ``ScoreInput.of("Paris", "paris", case_id="q1")``."""
        fields.setdefault("parsed", None)
        fields.setdefault("vars", {})
        fields.setdefault("case_id", "case")
        return cls(output=output, expected=expected, **fields)


class Score(BaseModel):
    """A scorer's verdict on one cell; stored per cell and scorer."""

    scorer: str
    value: float | None  # usually 0..1; None when the scorer itself failed
    passed: bool | None  # value >= threshold; None if not applicable or failed
    answer: str | None = None  # what was extracted from the output (label, number, ...)
    explanation: str | None = None
    error: str | None = None  # the scorer failed on this cell: "ExceptionType: message"
    metadata: dict[str, Any] = Field(default_factory=dict)


class ScoringError(DataError):
    """The cell cannot be scored as configured (e.g. the case has no expected value)."""


class JudgeParseError(ValueError):
    """The judge model answered, but no grade could be read from its reply."""


class _Fail(Exception):
    """Raised inside a scorer to return a failing score (value 0) with an explanation."""

    def __init__(self, explanation: str, answer: str | None = None, **metadata: Any):
        super().__init__(explanation)
        self.explanation, self.answer, self.metadata = explanation, answer, metadata


# ---------------------------------------------------------------------------------------------- base


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
        except _Fail as f:
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
        except _Fail as f:
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
        return _run_sync(self._ascore(inp))

    async def _ascore(self, inp: ScoreInput) -> Score:
        return self._score(inp)

    def _verdict(self, ok: bool, *, answer: Any = None, explanation: str | None = None, **metadata: Any) -> Score:
        """A binary score: 1.0 / 0.0."""
        return Score(scorer=self.name, value=1.0 if ok else 0.0, passed=bool(ok),
                     answer=None if answer is None else _as_text(answer), explanation=explanation, metadata=metadata)

    def _graded(self, value: float, *, answer: Any = None, explanation: str | None = None, **metadata: Any) -> Score:
        """A graded score: passed when ``value >= threshold``."""
        return Score(scorer=self.name, value=float(value), passed=bool(value >= self.threshold),
                     answer=None if answer is None else _as_text(answer), explanation=explanation, metadata=metadata)

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
        return Score(scorer=self.name, value=0.0, passed=False,
                     explanation=f"no answer to score: the {where} was blocked by the content filter "
                                 f"(outcome {inp.outcome}); counted as a fail",
                     metadata={"outcome": inp.outcome})

    def _failed(self, f: _Fail) -> Score:
        return Score(scorer=self.name, value=0.0, passed=False, answer=f.answer, explanation=f.explanation,
                     metadata=f.metadata)

    def _error(self, e: BaseException) -> Score:
        from .secrets import redact  # backend errors can echo request details: never store a key

        return Score(scorer=self.name, value=None, passed=None, error=redact(f"{type(e).__name__}: {e}"))

    def _finish(self, score: Score, inp: ScoreInput) -> Score:
        if score.value is not None and not math.isfinite(score.value):
            return self._error(ValueError(f"scorer returned a non-finite value {score.value!r}"))
        if inp.outcome not in ("ok", "", None) and "outcome" not in score.metadata:
            score.metadata["outcome"] = inp.outcome
        return score


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


def _run_sync(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, even when an event loop is running (Jupyter)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


# ------------------------------------------------------------------------------------------- helpers


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
    s = _as_text(text)
    return s if len(s) <= n else s[: n - 1] + "…"


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
        raise _Fail(f"output is not JSON ({e})") from None


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
        raise _Fail(f"field {path!r} is missing from the output JSON (no {e.args[0]!r})") from None


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


# ------------------------------------------------------------------------------------------- registry

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


# ------------------------------------------------------------------------------------- text matching


@dataclass(kw_only=True, eq=False)
class _TextScorer(Scorer):
    """Shared options of exact / contains / regex."""

    ignore_case: bool = False
    strip: bool = True  # ignore leading/trailing whitespace (models add newlines)
    normalize_whitespace: bool = False  # collapse runs of whitespace to one space (implies strip)
    field: str | None = None  # compare this field of the output JSON (dotted path: a.b.0) instead of the text

    def _norm(self, text: str) -> str:
        text = self._ws(text)
        return text.casefold() if self.ignore_case else text

    def _ws(self, text: str) -> str:
        if self.normalize_whitespace:
            return " ".join(text.split())
        return text.strip() if self.strip else text

    def _pick(self, inp: ScoreInput) -> tuple[Any, Any]:
        """What to compare: (output or its JSON field, expected or its matching field)."""
        if not self.field:
            return inp.output, inp.expected
        return _field_value(inp, self.field), _expected_field(inp.expected, self.field)

    def _equal(self, got: Any, want: Any) -> bool:
        got, want = _py(got), _py(want)
        if isinstance(want, (Mapping, list)) and isinstance(got, str):
            try:
                got = _loads(got)
            except ValueError:
                return False
        if not isinstance(got, str) and not isinstance(want, str):
            return bool(got == want)  # structures and numbers compare as values (12 == 12.0)
        return self._norm(_as_text(got)) == self._norm(_as_text(want))


@register_scorer("exact")
@dataclass(kw_only=True, eq=False)
class ExactScorer(_TextScorer):
    """The output (or a JSON ``field`` of it) equals the expected value - or one of them, if a list.

    Text is compared after the normalisation options; a dict/list expected value is compared as JSON
    structure (key order and formatting do not matter). A list ``expected`` always means "any of these"; to
    expect a JSON array, wrap it: ``[[1, 2, 3]]``.
    """

    def _score(self, inp: ScoreInput) -> Score:
        got, expected = self._pick(inp)
        alternatives = self._expected(inp, expected)
        for want in alternatives:
            if self._equal(got, want):
                return self._verdict(True, answer=got, explanation=f"equals {_clip(want)!r}")
        return self._verdict(False, answer=got, explanation=f"{_clip(got)!r} does not equal "
                                                            + " or ".join(repr(_clip(w)) for w in alternatives))


@register_scorer("contains")
@dataclass(kw_only=True, eq=False)
class ContainsScorer(_TextScorer):
    """The expected text appears in the output (any of them if ``expected`` is a list; all with ``match_all``)."""

    match_all: bool = False

    def _score(self, inp: ScoreInput) -> Score:
        got, expected = self._pick(inp)
        haystack = self._norm(_as_text(got))
        alternatives = self._expected(inp, expected)
        found = [w for w in alternatives if self._norm(_as_text(w)) in haystack]
        missing = [w for w in alternatives if w not in found]
        ok = not missing if self.match_all else bool(found)
        if ok:
            return self._verdict(True, answer=found[0], explanation=f"contains {', '.join(repr(_clip(w)) for w in found)}")
        what = missing if self.match_all else alternatives
        return self._verdict(False, explanation=f"does not contain {', '.join(repr(_clip(w)) for w in what)}")


@register_scorer("regex")
@dataclass(kw_only=True, eq=False)
class RegexScorer(_TextScorer):
    """The output matches a regular expression (Python ``re`` syntax; ``re.search`` unless ``fullmatch``).

    - ``pattern`` may be a jinja2 template using the case: ``\\b{{ expected }}\\b``, ``{{ vars.city }}``.
      Values are inserted regex-escaped, so they match literally; with a list ``expected`` any alternative
      may match.
    - ``group`` (number or name): the captured text is the answer, compared with ``expected`` using the
      text options - e.g. ``pattern: "ANSWER:\\s*(\\w+)"``, ``group: 1``.
    - ``ignore_case`` sets ``re.IGNORECASE``; ``strip``/``normalize_whitespace`` apply to the output.
    """

    primary: ClassVar[str | None] = "pattern"
    pattern: str = ""
    group: int | str | None = None
    fullmatch: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.pattern:
            raise DataError(f"scorer {self.name!r}: regex needs a `pattern`")
        self._compiled = None
        self._tmpl = None
        if _is_template(self.pattern):
            self._tmpl = _template(self.pattern, f"scorer {self.name!r} pattern")
        else:
            self._compiled = self._compile(self.pattern)

    def _compile(self, pattern: str) -> re.Pattern[str]:
        try:
            return re.compile(pattern, re.IGNORECASE if self.ignore_case else 0)
        except re.error as e:
            raise DataError(f"scorer {self.name!r}: invalid regex {pattern!r}: {e}") from None

    def _patterns(self, inp: ScoreInput, expected: Any) -> list[re.Pattern[str]]:
        if self._tmpl is None:
            return [self._compiled]
        esc = lambda v: re.escape(self._ws(_as_text(v)))  # noqa: E731
        variables = {k: esc(v) for k, v in inp.vars.items()}
        uses_expected = "expected" in self.pattern
        alternatives = self._expected(inp, expected) if uses_expected else [None]
        return [self._compile(self._tmpl.render(expected=esc(alt), vars=variables, case_id=inp.case_id))
                for alt in alternatives]

    def _score(self, inp: ScoreInput) -> Score:
        got, expected = self._pick(inp)
        text = self._ws(_as_text(got))
        for pattern in self._patterns(inp, expected):
            m = pattern.fullmatch(text) if self.fullmatch else pattern.search(text)
            if m is None:
                continue
            if self.group is None:
                return self._verdict(True, answer=m.group(0), explanation=f"matches /{_clip(pattern.pattern)}/")
            captured = m.group(self.group)
            alternatives = self._expected(inp, expected)
            ok = captured is not None and any(self._equal(captured, w) for w in alternatives)
            return self._verdict(ok, answer=captured, explanation=f"captured {captured!r}, expected "
                                 + " or ".join(repr(_clip(w)) for w in alternatives))
        return self._verdict(False, explanation=f"no match for /{_clip(self.pattern)}/")


# -------------------------------------------------------------------------------------------- labels


@register_scorer("label")
@dataclass(kw_only=True, eq=False)
class LabelScorer(Scorer):
    """Classification: find which of the allowed ``labels`` the output chose, and compare with ``expected``.

    Extraction, case-insensitive, whole words only ("positive" is not found in "non-positively"):

    - ``field`` set: the label is read from that field of the output JSON;
    - else, if the output is a JSON object, a top-level string value that is exactly one label is used
      (``{"reasoning": "...", "sentiment": "positive"}``);
    - else ``mode: first`` (default): the label mentioned first in the text; on the same position the longer
      label wins ("very positive" over "positive"). ``mode: whole``: the whole output, stripped of quotes and
      trailing punctuation, must be a label.

    ``answer`` is the label as spelled in ``labels`` (None if none was found, which fails the cell).
    ``metadata["ambiguous"]`` is set when the text mentions more than one label.
    """

    primary: ClassVar[str | None] = "labels"
    labels: Sequence[str] = ()
    mode: str = "first"  # first | whole
    field: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.labels, str) or not self.labels or not all(isinstance(x, str) and x.strip() for x in self.labels):
            raise DataError(f"scorer {self.name!r}: label needs `labels`, a list of the allowed labels "
                            f"(got {self.labels!r})")
        if self.mode not in ("first", "whole"):
            raise DataError(f"scorer {self.name!r}: mode must be 'first' or 'whole', got {self.mode!r}")
        self._canonical = {x.strip().casefold(): x for x in self.labels}
        alternation = "|".join(re.escape(x.strip()) for x in sorted(self.labels, key=len, reverse=True))
        self._finder = re.compile(rf"(?<!\w)(?:{alternation})(?!\w)", re.IGNORECASE)

    def extract(self, inp: ScoreInput) -> tuple[str | None, list[str]]:
        """(the chosen label or None, every distinct label mentioned) - public for widgets and debugging."""
        if self.field:
            return self._from_text(_as_text(_field_value(inp, self.field)))
        data = inp.parsed
        if data is None:
            try:
                data = _loads(inp.output)
            except ValueError:
                data = None
        if isinstance(data, Mapping):
            exact = {self._canonical[v.strip().casefold()] for v in data.values()
                     if isinstance(v, str) and v.strip().casefold() in self._canonical}
            if len(exact) == 1:
                label = exact.pop()
                return label, [label]
        if isinstance(data, str):
            return self._from_text(data)
        return self._from_text(inp.output)

    def _from_text(self, text: str) -> tuple[str | None, list[str]]:
        found: list[str] = []
        for m in self._finder.finditer(text):
            label = self._canonical[m.group(0).casefold()]
            if label not in found:
                found.append(label)
        if self.mode == "whole":
            whole = " ".join(text.strip().strip("\"'`*.!?:; \t\n").split()).casefold()
            return self._canonical.get(whole), found
        return (found[0] if found else None), found

    def _score(self, inp: ScoreInput) -> Score:
        alternatives = self._expected(inp)
        label, found = self.extract(inp)
        meta: dict[str, Any] = {"ambiguous": True, "labels_found": found} if len(found) > 1 else {}
        if label is None:
            how = "as the whole output" if self.mode == "whole" else "in the output"
            raise _Fail(f"no label among {list(self.labels)} found {how}: {_clip(inp.output)!r}", **meta)
        ok = any(label.casefold() == _as_text(w).strip().casefold() for w in alternatives)
        want = " or ".join(repr(_as_text(w)) for w in alternatives)
        return self._verdict(ok, answer=label, explanation=f"label {label!r}, expected {want}", **meta)


# ---------------------------------------------------------------------------------------------- JSON


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
        raise _Fail("output is empty, not JSON")
    try:
        return _loads(inp.output, allow_fences=allow_fences)
    except json.JSONDecodeError as e:
        raise _Fail(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None


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
        raise _Fail(f"{best.json_path}: {best.message}{more}", errors=listed)


# ------------------------------------------------------------------------------------------- numbers

_NUMBER = re.compile(r"(?<![\w.])[-+\u2212]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?"
                     r"|(?<![\w.])[-+\u2212]?\.\d+(?:[eE][-+]?\d+)?")


def _to_float(text: str) -> float:
    s = text.strip().replace("\u2212", "-").replace(",", "").replace("_", "")
    s = s.lstrip("$€£¥").rstrip("%").strip()
    return float(s)


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e16 else repr(float(x))


@register_scorer("numeric")
@dataclass(kw_only=True, eq=False)
class NumericScorer(Scorer):
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
        if self.field:
            value = _py(_field_value(inp, self.field))
            if isinstance(value, numbers.Real) and not isinstance(value, bool):
                return float(value)
            return self._from_text(_as_text(value))
        if self._pattern is not None:
            m = self._pattern.search(inp.output)
            if m is None:
                raise _Fail(f"no match for /{self.pattern}/ in the output")
            text = m.group(1) if m.re.groups else m.group(0)
            try:
                return _to_float(text)
            except ValueError:
                return self._from_text(text)
        return self._from_text(inp.output)

    def _from_text(self, text: str) -> float:
        found = [_to_float(m.group(0)) for m in _NUMBER.finditer(text)]
        if not found:
            raise _Fail(f"no number in {_clip(text)!r}")
        if self.which == "only" and len(set(found)) > 1:
            raise _Fail(f"several numbers in the output ({', '.join(map(_fmt, found[:5]))}); expected only one")
        return found[-1] if self.which == "last" else found[0]

    def _score(self, inp: ScoreInput) -> Score:
        expected = _expected_field(inp.expected, self.field) if self.field else inp.expected
        wanted = [self._expected_number(w, inp) for w in self._expected(inp, expected)]
        got = self.read(inp)
        for want in wanted:
            if abs(got - want) <= max(self.abs_tol, self.rel_tol * abs(want)):
                return self._verdict(True, answer=_fmt(got), explanation=f"{_fmt(got)} equals {_fmt(want)} within tolerance")
        return self._verdict(False, answer=_fmt(got), explanation=f"{_fmt(got)} is not "
                             + " or ".join(_fmt(w) for w in wanted) + self._tolerance())

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


# ------------------------------------------------------------------------------------------ providers


class _ProviderCache:
    """One provider per scorer instance - and, for async use, per event loop.

    An async HTTP client's connections belong to the loop that opened them; a harness that runs each
    experiment with ``asyncio.run`` would otherwise reuse a pool bound to a closed loop.
    """

    def __init__(self, profile: str, given: Any = None):
        self.profile, self.given = profile, given
        self._lock = threading.Lock()
        self._sync: Any = None
        self._by_loop: dict[int, tuple[Any, Any]] = {}

    def get(self) -> Any:
        if self.given is not None:
            return self.given
        with self._lock:
            if self._sync is None:
                from .providers import get_provider

                self._sync = get_provider(self.profile)
            return self._sync

    def for_loop(self) -> Any:
        if self.given is not None:
            return self.given
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._by_loop.get(id(loop))
            if entry is None or entry[0] is not loop:
                from .providers import get_provider

                self._by_loop = {k: v for k, v in self._by_loop.items() if not v[0].is_closed()}
                entry = (loop, get_provider(self.profile))
                self._by_loop[id(loop)] = entry
            return entry[1]


def _model_info(provider: Any, model: str | None) -> Any:
    try:
        return provider.model_info(model)
    except Exception:  # an unknown model: the request itself will say so
        return None


def _profile_name(provider: Any, default: str) -> str:
    return getattr(getattr(provider, "profile", None), "name", None) or default


# ----------------------------------------------------------------------------------------- embedding


@register_scorer("embedding")
@dataclass(kw_only=True, eq=False)
class EmbeddingScorer(Scorer):
    """Semantic similarity: cosine similarity between the output's and the expected answer's embeddings.

    ``value`` is the similarity (the best one over a list of expected answers), ``passed`` is
    ``value >= threshold``. The default ``profile: local`` embeds offline with multilingual-e5-small; any
    profile with an embeddings model works (``model:`` e.g. ``text-embedding-3-small``). Calibrate the
    threshold on a few known pairs: e5 similarities are compressed (unrelated sentences often score 0.7+), so
    the default 0.85 is a starting point, not a law. Embeddings are cached per scorer, so an expected answer
    shared by many variants and repeats is embedded once.
    """

    profile: str = "local"
    model: str | None = None
    threshold: float = 0.85
    field: str | None = None
    provider: Any = dataclasses.field(default=None, repr=False, metadata=_NO_SPEC)  # a ready Provider (tests: FakeBackend)

    _CACHE_LIMIT: ClassVar[int] = 10_000

    def __post_init__(self) -> None:
        super().__post_init__()
        self.profile = _profile_name(self.provider, self.profile)
        self._providers = _ProviderCache(self.profile, self.provider)
        self._cache: dict[str, list[float]] = {}
        self._cache_lock = threading.Lock()

    async def _ascore(self, inp: ScoreInput) -> Score:
        return await asyncio.to_thread(self._score, inp)  # Provider.embed is sync

    def _score(self, inp: ScoreInput) -> Score:
        if self.field:
            got, expected = _field_value(inp, self.field), _expected_field(inp.expected, self.field)
        else:
            got, expected = inp.output, inp.expected
        alternatives = [_as_text(w) for w in self._expected(inp, expected)]
        text = _as_text(got).strip()
        if not text:
            raise _Fail("output is empty")
        vectors = self._embed([text, *alternatives])
        sims = [_cosine(vectors[text], vectors[w]) for w in alternatives]
        best = max(range(len(sims)), key=sims.__getitem__)
        return self._graded(sims[best], explanation=f"cosine similarity {sims[best]:.3f} to {_clip(alternatives[best])!r} "
                            f"(threshold {self.threshold:g})", similarities=sims)

    def _embed(self, texts: list[str]) -> dict[str, list[float]]:
        with self._cache_lock:
            have = {t: self._cache[t] for t in texts if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in have]
        if not missing:
            return have
        vectors = self._providers.get().embed(missing, model=self.model)
        if len(vectors) != len(missing):
            raise ValueError(f"the provider returned {len(vectors)} embeddings for {len(missing)} texts")
        fresh = dict(zip(missing, vectors))
        with self._cache_lock:
            if len(self._cache) + len(fresh) > self._CACHE_LIMIT:
                self._cache.clear()
            self._cache.update(fresh)
        return {**have, **fresh}


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    import numpy as np

    va, vb = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if va.shape != vb.shape:
        raise ValueError(f"embeddings of different sizes ({va.size} and {vb.size})")
    denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb / denom) if denom else 0.0


# --------------------------------------------------------------------------------------------- judge

JUDGE_TEMPLATE = """\
You are grading an AI assistant's answer. Be strict, impartial and brief.

[Task given to the assistant]
{{ input }}

[Assistant's answer]
{{ output }}
{% if expected %}
[Reference answer]
{{ expected }}
{% endif %}
[Grading rubric]
{{ rubric }}

{{ instructions }}"""

_JSON_INSTRUCTIONS = (
    'Reply with only a JSON object: {"reasoning": "<one or two sentences>", "score": <integer from 0 to '
    '{scale}>}, where {scale} means the answer fully meets the rubric and 0 means it does not meet it at all.'
)
_GRADE_INSTRUCTIONS = (
    "First explain your reasoning in one or two sentences. Then, on the last line, write \"GRADE: C\" if the "
    "answer meets the rubric{partial}, or \"GRADE: I\" if it does not."
)

DEFAULT_GRADES: dict[str, float] = {
    "c": 1.0, "correct": 1.0, "pass": 1.0, "yes": 1.0, "true": 1.0,
    "p": 0.5, "partial": 0.5, "partially correct": 0.5,
    "i": 0.0, "incorrect": 0.0, "fail": 0.0, "no": 0.0, "false": 0.0,
}
DEFAULT_JUDGE_PARAMS: dict[str, Any] = {"temperature": 0, "max_tokens": 400}

_SCORE_KEYS = ("score", "grade", "rating", "label", "verdict", "result")
_REASON_KEYS = ("reasoning", "explanation", "rationale", "reason", "justification")
_GRADE_LINE = re.compile(r"GRADE\s*[:=]\s*\**\s*([A-Za-z][A-Za-z ]*?|\d+(?:\.\d+)?)\s*\**\s*(?:/\s*(\d+(?:\.\d+)?))?\s*$",
                         re.IGNORECASE | re.MULTILINE)
_SCORE_LINE = re.compile(r"(?:score|rating)[\"']?\s*(?:is|[:=])?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/|out of)?\s*(\d+(?:\.\d+)?)?",
                         re.IGNORECASE)
_FRACTION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)(?!\w|\.\d)", re.IGNORECASE)


def parse_grade(text: str, scale: float = 10, grades: Mapping[str, float] | None = None
                ) -> tuple[float, str, str | None]:
    """Read a judge's verdict: ``(value in 0..1, the grade as written, the reasoning or None)``.

    Understands, in this order: a JSON object (fenced or embedded in prose) with a ``score``/``grade``/...
    key holding a number on ``0..scale`` or a grade word; an inspect-style ``GRADE: C`` line (the last one,
    because models sometimes echo the instructions first); ``score: 7/10``-style text. Grade words map
    through ``grades`` (default: C/correct/pass/yes = 1, P/partial = 0.5, I/incorrect/fail/no = 0).
    Raises :class:`JudgeParseError` when no grade can be found or it is out of range.
    """
    table = {**DEFAULT_GRADES, **{k.casefold(): float(v) for k, v in (grades or {}).items()}}
    obj = _json_object(text)
    if obj is not None:
        lowered = {str(k).casefold(): v for k, v in obj.items()}
        reasoning = next((str(lowered[k]) for k in _REASON_KEYS if lowered.get(k) not in (None, "")), None)
        for key in _SCORE_KEYS:
            if key in lowered and lowered[key] is not None:
                value, raw = _grade_value(lowered[key], None, scale, table)
                return value, raw, reasoning
    lines = list(_GRADE_LINE.finditer(text))
    if lines:
        m = lines[-1]
        value, raw = _grade_value(m.group(1), m.group(2), scale, table)
        return value, raw, text[: m.start()].strip() or None
    for rx in (_SCORE_LINE, _FRACTION):
        found = list(rx.finditer(text))
        if found:
            m = found[-1]
            value, raw = _grade_value(m.group(1), m.group(2), scale, table)
            return value, raw, text[: m.start()].strip() or None
    raise JudgeParseError(f"no grade found in the judge's reply {_clip(text, 200)!r}; expected JSON "
                          f'{{"score": 0..{_fmt(scale)}}} or a line "GRADE: C" / "GRADE: I"')


def _json_object(text: str) -> Mapping[str, Any] | None:
    candidates = [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start: end + 1])
    for c in candidates:
        try:
            obj = _loads(c)
        except ValueError:
            continue
        if isinstance(obj, Mapping):
            return obj
    return None


def _grade_value(raw: Any, out_of: str | None, scale: float, table: Mapping[str, float]) -> tuple[float, str]:
    raw = _py(raw)
    if isinstance(raw, bool):
        return (1.0 if raw else 0.0), str(raw).lower()
    if isinstance(raw, str):
        word = " ".join(raw.strip().strip("\"'*.").split()).casefold()
        if word in table:
            return table[word], raw.strip()
        try:
            number = float(word)
        except ValueError:
            raise JudgeParseError(f"unknown grade {raw!r}; known: {', '.join(sorted(table))}") from None
    elif isinstance(raw, numbers.Real):
        number = float(raw)
    else:
        raise JudgeParseError(f"grade {raw!r} is neither a number nor a grade word")
    top = float(out_of) if out_of else float(scale)
    if top <= 0 or not 0 <= number <= top:
        raise JudgeParseError(f"score {_fmt(number)} is outside 0..{_fmt(top)}")
    return number / top, f"{_fmt(number)}/{_fmt(top)}"


@register_scorer("judge")
@dataclass(kw_only=True, eq=False)
class JudgeScorer(Scorer):
    """LLM-as-judge: another model grades the output against a ``rubric``.

    - ``rubric``: what a good answer does - a jinja2 template over ``input`` (the last user message),
      ``output``, ``expected``, ``vars``, ``case_id``, ``variant``. It is placed in ``template`` (default
      :data:`JUDGE_TEMPLATE`; override for full control - it also gets ``rubric`` and ``instructions``).
    - ``format: json`` (default) asks for ``{"reasoning": ..., "score": 0..scale}``; ``format: grade`` asks
      for inspect-style ``GRADE: C`` / ``GRADE: I`` (``P`` too with ``partial_credit``). Either way the reply
      is parsed robustly (:func:`parse_grade`); ``value`` is normalised to 0..1, ``answer`` is the grade as
      written, ``explanation`` the judge's reasoning.
    - ``profile`` (default ``local``: the embedded model, offline - weak, fine for plumbing) and ``model``
      pick the judge; ``params`` are added to ``{"temperature": 0, "max_tokens": 400}``. ``structured``
      (default: when the judge model supports structured output and format is json) constrains the reply to
      the JSON shape, which makes small judges parseable.
    - The judge's usage is in ``metadata`` (``prompt_tokens``, ``completion_tokens``, ``cost_usd`` - None when
      the model has no price - and ``judge_model``) so the harness can account for it. A reply without a readable grade is a per-cell error
      (``value`` None, ``error`` "JudgeParseError: ...", the raw reply in ``metadata["judge_output"]``).
    """

    primary: ClassVar[str | None] = "rubric"
    rubric: str = ""
    profile: str = "local"
    model: str | None = None
    format: str = "json"  # json | grade
    scale: float = 10
    partial_credit: bool = False
    grades: Mapping[str, float] = dataclasses.field(default_factory=dict)
    threshold: float = 0.7
    template: str | None = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    structured: bool | None = None
    provider: Any = dataclasses.field(default=None, repr=False, metadata=_NO_SPEC)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.rubric or not isinstance(self.rubric, str):
            raise DataError(f"scorer {self.name!r}: judge needs a `rubric` (what a good answer does)")
        if self.format not in ("json", "grade"):
            raise DataError(f"scorer {self.name!r}: format must be 'json' or 'grade', got {self.format!r}")
        if not self.scale or self.scale <= 0:
            raise DataError(f"scorer {self.name!r}: scale must be positive")
        self._rubric = _template(self.rubric, f"scorer {self.name!r} rubric")
        self._prompt = _template(self.template or JUDGE_TEMPLATE, f"scorer {self.name!r} template")
        self.profile = _profile_name(self.provider, self.profile)
        self._providers = _ProviderCache(self.profile, self.provider)

    # -- request ------------------------------------------------------------------------------------------
    def render(self, inp: ScoreInput) -> list[dict[str, Any]]:
        """The judge's request messages for one cell (public: show users what the judge sees)."""
        user = [m for m in inp.messages if m.get("role") == "user"]
        context = {
            "input": content_text(user[-1].get("content")) if user else _as_text(inp.vars.get("input")),
            "messages": list(inp.messages), "output": inp.output, "expected": _as_text(inp.expected),
            "vars": dict(inp.vars), "case_id": inp.case_id, "variant": inp.variant,
        }
        rubric = self._rubric.render(**context).strip()
        return [{"role": "user", "content": self._prompt.render(rubric=rubric, instructions=self._instructions(),
                                                                 **context)}]

    def _instructions(self) -> str:
        if self.format == "json":
            return _JSON_INSTRUCTIONS.replace("{scale}", _fmt(self.scale))
        return _GRADE_INSTRUCTIONS.format(partial=', "GRADE: P" if it partially meets it' if self.partial_credit else "")

    def _request(self, provider: Any, inp: ScoreInput) -> Any:
        params = {**DEFAULT_JUDGE_PARAMS, **self.params}
        info = _model_info(provider, self.model)
        if self._use_structured(info) and "response_format" not in params:
            params["response_format"] = self._response_format(score_first=bool(info and info.local))
        return provider.prepare(self.render(inp), self.model, warn=False, **params)

    def _use_structured(self, info: Any) -> bool:
        if self.format != "json":
            return False
        if self.structured is not None:
            return self.structured
        return bool(info and info.supports("structured_output"))

    def _response_format(self, score_first: bool = False) -> dict[str, Any]:
        """The JSON shape of a grade. Reasoning comes first (the grade is better for it) - except on the
        embedded model, which rambles: there the score comes first so a reply cut at max_tokens still has it."""
        # an enum keeps even a tiny judge inside 0..scale (min/max are not supported by every backend's grammar)
        score: dict[str, Any] = {"type": "integer", "enum": list(range(int(self.scale) + 1))} \
            if float(self.scale).is_integer() and self.scale <= 100 else {"type": "number"}
        properties = {"reasoning": {"type": "string"}, "score": score}
        if score_first:
            properties = {"score": score, "reasoning": properties["reasoning"]}
        schema = {"type": "object", "properties": properties, "required": list(properties),
                  "additionalProperties": False}
        return {"type": "json_schema", "json_schema": {"name": "grade", "strict": True, "schema": schema}}

    # -- scoring ------------------------------------------------------------------------------------------
    async def _ascore(self, inp: ScoreInput) -> Score:
        provider = self._providers.for_loop()
        request = self._request(provider, inp)
        return self._grade(await provider.asend(request), request)

    def _score(self, inp: ScoreInput) -> Score:
        provider = self._providers.get()
        request = self._request(provider, inp)
        return self._grade(provider.send(request), request)

    def _grade(self, completion: Any, request: Any) -> Score:
        meta = {
            "prompt_tokens": completion.usage.prompt_tokens,
            "completion_tokens": completion.usage.completion_tokens,
            "cost_usd": _judge_cost(completion, request),
            "judge_model": completion.model or completion.deployment,
            "judge_profile": self.profile,
            "judge_output": completion.text,
        }
        if completion.outcome != "ok":
            meta["judge_outcome"] = completion.outcome
        try:
            value, raw, reasoning = parse_grade(completion.text, self.scale, self.grades)
        except JudgeParseError as e:
            why = f"the judge's reply ended with outcome {completion.outcome}; " if completion.outcome != "ok" else ""
            return Score(scorer=self.name, value=None, passed=None, error=f"JudgeParseError: {why}{e}",
                         explanation="the judge's reply could not be read as a grade", metadata=meta)
        return self._graded(value, answer=raw, explanation=reasoning or _clip(completion.text, 300), **meta)


def _judge_cost(completion: Any, request: Any) -> float | None:
    """What the judge's call cost (the harness adds it to the run's spend); None when the model has no price."""
    try:
        from .costs import actual_cost

        return float(actual_cost(completion.usage, request.model).usd)
    except Exception:
        return None


# -------------------------------------------------------------------------------------------- python


@register_scorer("python")
@dataclass(kw_only=True, eq=False)
class PythonScorer(Scorer):
    """Your own function as a scorer: ``fn(inp: ScoreInput, **kwargs) -> Score | float | bool | dict``.

    Sync or async. ``function`` is the callable or an import path ``"package.module:function"``; ``kwargs``
    are passed to it. Return values: a :class:`Score` (its ``scorer`` is set to this scorer's name); a bool
    (1.0 / 0.0); a number (``passed = value >= threshold``; the default threshold 1.0 passes only a full
    score - set it for partial credit); a dict of Score fields (``value`` or ``score``,
    ``passed``, ``answer``, ``explanation``; other keys go to ``metadata``). Returning ``None`` is treated as
    a bug in the function (a per-cell error), not as "not applicable".

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
            result = _run_sync(_await(result))
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
        raise TypeError(f"{_describe(self._fn)} returned {type(result).__name__} {_clip(result)!r}; return a "
                        f"Score, a bool, a number or a dict")

    def _from_dict(self, d: dict[str, Any]) -> Score:
        value = d.pop("value", d.pop("score", None))
        value = None if value is None else float(_py(value))
        passed = d.pop("passed", None)
        if passed is None and value is not None:
            passed = value >= self.threshold
        known = {k: d.pop(k) for k in ("answer", "explanation", "error") if k in d}
        metadata = {**d.pop("metadata", {}), **d}
        answer = known.pop("answer", None)
        return Score(scorer=self.name, value=value, passed=None if passed is None else bool(passed),
                     answer=None if answer is None else _as_text(answer), metadata=metadata, **known)


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _resolve(function: str | Callable[..., Any]) -> Callable[..., Any]:
    if callable(function):
        return function
    if not isinstance(function, str) or not function.strip():
        raise DataError("python scorer needs `function`: a callable or 'package.module:function'")
    module_name, sep, attr = function.strip().partition(":")
    if not sep:
        module_name, _, attr = module_name.rpartition(".")
    if not module_name or not attr:
        raise DataError(f"python scorer: {function!r} is not an import path like 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise DataError(f"python scorer: cannot import {function!r} ({type(e).__name__}: {e}); check the module "
                        f"is importable from the notebook's working directory or installed") from None
    if not callable(obj):
        raise DataError(f"python scorer: {function!r} is not callable")
    return obj


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
SCORERS["similarity"] = EmbeddingScorer
