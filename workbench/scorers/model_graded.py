"""Scorers that call a model: embedding similarity and the LLM judge (with its grade parser)."""

from __future__ import annotations

import asyncio
import dataclasses
import numbers
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import BackendError, DataError, JudgeParseError, ScoreFailed, ScoringError
from ..messages import content_text
from ..records import Score
from ._util import (
    _as_text,
    _clip,
    _expected_field,
    _field_value,
    _fmt,
    _loads,
    _py,
    _template,
)
from .base import _NO_SPEC, SCORERS, AnswerScorer, ScoreInput, Scorer, register_scorer


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
                from ..providers import get_provider

                self._sync = get_provider(self.profile)
            return self._sync

    def for_loop(self) -> Any:
        if self.given is not None:
            return self.given
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._by_loop.get(id(loop))
            if entry is None or entry[0] is not loop:
                from ..providers import get_provider

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


@register_scorer("embedding")
@dataclass(kw_only=True, eq=False)
class EmbeddingScorer(AnswerScorer):
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
    # a ready Provider (tests: FakeBackend)
    provider: Any = dataclasses.field(default=None, repr=False, metadata=_NO_SPEC)

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
            raise ScoreFailed("output is empty")
        vectors = self._embed([text, *alternatives])
        sims = [_cosine(vectors[text], vectors[w]) for w in alternatives]
        best = max(range(len(sims)), key=sims.__getitem__)
        return self._graded(
            sims[best],
            explanation=f"cosine similarity {sims[best]:.3f} to {_clip(alternatives[best])!r} "
            f"(threshold {self.threshold:g})",
            evidence=_clip(text, 200),
            similarities=sims,
        )

    def _embed(self, texts: list[str]) -> dict[str, list[float]]:
        with self._cache_lock:
            have = {t: self._cache[t] for t in texts if t in self._cache}
        missing = [t for t in dict.fromkeys(texts) if t not in have]
        if not missing:
            return have
        vectors = self._providers.get().embed(missing, model=self.model)
        if len(vectors) != len(missing):
            raise BackendError(f"the provider returned {len(vectors)} embeddings for {len(missing)} texts")
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
        raise ScoringError(f"embeddings of different sizes ({va.size} and {vb.size})")
    denom = float(np.linalg.norm(va) * np.linalg.norm(vb))
    return float(va @ vb / denom) if denom else 0.0


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
    "{scale}>}, where {scale} means the answer fully meets the rubric and 0 means it does not meet it at all."
)
_GRADE_INSTRUCTIONS = (
    'First explain your reasoning in one or two sentences. Then, on the last line, write "GRADE: C" if the '
    'answer meets the rubric{partial}, or "GRADE: I" if it does not.'
)

DEFAULT_GRADES: dict[str, float] = {
    "c": 1.0,
    "correct": 1.0,
    "pass": 1.0,
    "yes": 1.0,
    "true": 1.0,
    "p": 0.5,
    "partial": 0.5,
    "partially correct": 0.5,
    "i": 0.0,
    "incorrect": 0.0,
    "fail": 0.0,
    "no": 0.0,
    "false": 0.0,
}
DEFAULT_JUDGE_PARAMS: dict[str, Any] = {"temperature": 0, "max_tokens": 400}

_SCORE_KEYS = ("score", "grade", "rating", "label", "verdict", "result")
_REASON_KEYS = ("reasoning", "explanation", "rationale", "reason", "justification")
_GRADE_LINE = re.compile(
    r"GRADE\s*[:=]\s*\**\s*([A-Za-z][A-Za-z ]*?|\d+(?:\.\d+)?)\s*\**\s*(?:/\s*(\d+(?:\.\d+)?))?\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_SCORE_LINE = re.compile(
    r"(?:score|rating)[\"']?\s*(?:is|[:=])?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/|out of)?\s*(\d+(?:\.\d+)?)?", re.IGNORECASE
)
_FRACTION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+(?:\.\d+)?)(?!\w|\.\d)", re.IGNORECASE)


def parse_grade(
    text: str, scale: float = 10, grades: Mapping[str, float] | None = None
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
    raise JudgeParseError(
        f"no grade found in the judge's reply {_clip(text, 200)!r}; expected JSON "
        f'{{"score": 0..{_fmt(scale)}}} or a line "GRADE: C" / "GRADE: I"'
    )


def _json_object(text: str) -> Mapping[str, Any] | None:
    candidates = [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
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
      the model has no price - and ``judge_model``) so the harness can account for it. A reply without a readable
      grade is a per-cell error
      (``value`` None, ``error`` "JudgeParseError: ...", the raw reply in ``metadata["judge_output"]``).
    """

    primary: ClassVar[str | None] = "rubric"
    evidence_in_output: ClassVar[bool] = False  # the evidence is the judge's reason
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
            "messages": list(inp.messages),
            "output": inp.output,
            "expected": _as_text(inp.expected),
            "vars": dict(inp.vars),
            "case_id": inp.case_id,
            "variant": inp.variant,
        }
        rubric = self._rubric.render(**context).strip()
        return [
            {
                "role": "user",
                "content": self._prompt.render(rubric=rubric, instructions=self._instructions(), **context),
            }
        ]

    def _instructions(self) -> str:
        if self.format == "json":
            return _JSON_INSTRUCTIONS.replace("{scale}", _fmt(self.scale))
        return _GRADE_INSTRUCTIONS.format(
            partial=', "GRADE: P" if it partially meets it' if self.partial_credit else ""
        )

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
        score: dict[str, Any] = (
            {"type": "integer", "enum": list(range(int(self.scale) + 1))}
            if float(self.scale).is_integer() and self.scale <= 100
            else {"type": "number"}
        )
        properties = {"reasoning": {"type": "string"}, "score": score}
        if score_first:
            properties = {"score": score, "reasoning": properties["reasoning"]}
        schema = {
            "type": "object",
            "properties": properties,
            "required": list(properties),
            "additionalProperties": False,
        }
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
            return Score(
                scorer=self.name,
                value=None,
                passed=None,
                error=f"JudgeParseError: {why}{e}",
                explanation="the judge's reply could not be read as a grade",
                metadata=meta,
            )
        return self._graded(value, answer=raw, explanation=reasoning or _clip(completion.text, 300),
                            evidence=_clip(reasoning, 600) if reasoning else None, **meta)


def _judge_cost(completion: Any, request: Any) -> float | None:
    """What the judge's call cost (the harness adds it to the run's spend); None when the model has no price."""
    try:
        from ..costs import actual_cost

        return float(actual_cost(completion.usage, request.model).usd)
    except Exception:
        return None


SCORERS["similarity"] = EmbeddingScorer
