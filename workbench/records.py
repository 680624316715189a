"""Every typed, versioned record the workbench stores: what a backend answered, and what a cell of a run became.

- :class:`Completion` (with :class:`Usage` and :class:`ContentFilter`) is what every provider call returns -
  including the outcomes that are not errors in the workbench's sense: a completion stopped by Azure's content
  filter, and a prompt rejected with the 400 ``content_filter`` error. The response cache stores these.
- :class:`CellResult` is one cell of a run (case x variant x target x repeat): what was sent, what came back,
  what it cost and its :class:`Score` per scorer. The run store keeps one per cell; ``Results`` wraps them.

Reports, caches and widgets are pure functions of these records, so their shape is versioned
(``schema_version``) and only ever grows. This module imports nothing heavy (no pandas): the store and the
harness's hot path use it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from .schema import Model

COMPLETION_SCHEMA_VERSION = 3  # 2: first_token_s, streamed. 3: tool_calls

Outcome = Literal["ok", "length", "completion_filtered", "prompt_filtered"]


class Usage(Model):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens billed at the cached-input price
    reasoning_tokens: int = 0  # part of completion_tokens, billed as output

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class FilterResult(Model):
    """One content-filter category, as Azure reports it."""

    model_config = ConfigDict(frozen=True)

    category: str  # hate, sexual, violence, self_harm, jailbreak, profanity, protected_material_text, ...
    filtered: bool = False
    severity: str | None = None  # safe | low | medium | high (harm categories)
    detected: bool | None = None  # detection categories (jailbreak, profanity, protected material)
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. citation {URL, license}


class ContentFilter(Model):
    prompt: list[FilterResult] = Field(default_factory=list)
    completion: list[FilterResult] = Field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return any(r.filtered for r in (*self.prompt, *self.completion))

    @property
    def flagged(self) -> list[str]:
        """Categories that were filtered, detected or above 'safe', as ``where:category[:severity]``."""
        out = []
        for where, results in (("prompt", self.prompt), ("completion", self.completion)):
            for r in results:
                if r.filtered or r.detected or (r.severity not in (None, "safe")):
                    out.append(f"{where}:{r.category}" + (f":{r.severity}" if r.severity else ""))
        return out

    @property
    def empty(self) -> bool:
        return not self.prompt and not self.completion


class Completion(Model):
    """The answer to one chat request, with everything needed to audit and price it."""

    schema_version: int = COMPLETION_SCHEMA_VERSION
    outcome: Outcome = "ok"
    text: str = ""
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    request_id: str | None = None
    system_fingerprint: str | None = None
    model: str | None = None  # the model name the service reported
    deployment: str | None = None  # what we asked for (Azure deployment or model name)
    rate_limit: dict[str, str] = Field(default_factory=dict)  # x-ratelimit-* response headers
    content_filter: ContentFilter = Field(default_factory=ContentFilter)
    retries: int = 0
    warnings: list[str] = Field(default_factory=list)  # request parameters we dropped or changed
    error_code: str | None = None  # for prompt_filtered: the service's error code
    error_message: str | None = None
    first_token_s: float | None = None
    """Seconds from sending the request to the first piece of answer text; only a streamed call can measure it."""
    streamed: bool = False
    """The answer came as a stream (``stream=True``): ``first_token_s`` is measured."""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    """The functions the model called, in the OpenAI shape ``{id, type: function, function: {name, arguments}}``
    (``arguments`` is JSON text, as the service sent it); ``finish_reason`` is then ``tool_calls``."""

    @property
    def filtered(self) -> bool:
        return self.outcome in ("completion_filtered", "prompt_filtered")

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second of the whole call (see :func:`output_rate`)."""
        return output_rate(self.usage.completion_tokens, self.latency_s)


def output_rate(completion_tokens: int, latency_s: float | None) -> float | None:
    """Output tokens per second, end to end: completion tokens / total latency.

    One definition for streamed and whole answers alike, so cells compare; the time to first token is its own
    number (``first_token_s``). None when there is nothing to measure (no tokens, no time)."""
    if not completion_tokens or not latency_s or latency_s <= 0:
        return None
    return completion_tokens / latency_s


def parse_filter_results(raw: dict[str, Any] | None) -> list[FilterResult]:
    """Turn Azure's ``content_filter_results`` mapping into a list of :class:`FilterResult`."""
    out: list[FilterResult] = []
    for category, value in (raw or {}).items():
        if not isinstance(value, dict):
            continue
        details = {k: v for k, v in value.items() if k not in ("filtered", "severity", "detected")}
        out.append(
            FilterResult(
                category=category,
                filtered=bool(value.get("filtered", False)),
                severity=value.get("severity"),
                detected=value.get("detected"),
                details=details,
            )
        )
    return out


# ------------------------------------------------------------------------------------------ results of a run

# 2: cell_key is the logical cell; request_fingerprint, rate_limited. 3: first_token_s, tokens_per_s, streamed.
# 4: tool_calls, steps
CELL_SCHEMA_VERSION = 4
DONE_OUTCOMES = ("ok", "length", "completion_filtered", "prompt_filtered")


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Score(Model):
    """A scorer's verdict on one cell; stored per cell and scorer (``CellResult.scores``)."""

    scorer: str
    """The scorer's name: the column suffix in results (``score.<name>``, ``passed.<name>``)."""
    value: float | None = None
    """Usually 0..1; None when the scorer itself failed on this cell (see ``error``)."""
    passed: bool | None = None
    """``value >= threshold``; None if not applicable or the scorer failed."""
    answer: str | None = None
    """What was extracted from the output (a label, a number, the judge's grade...)."""
    explanation: str | None = None
    """Why the score is what it is, in words a reader can check."""
    error: str | None = None
    """The scorer failed on this cell: ``"ExceptionType: message"``."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Scorer-specific details (every label found, the judge's raw reply and the cost of its call...)."""
    verdict: str | None = None
    """Why the cell counts as it does, one of :data:`VERDICTS`: ``pass``, ``fail``, ``ambiguous`` (the answer
    names more than one allowed answer), ``refused`` (the model declined), ``filtered`` (a content filter
    stopped it) or ``error`` (the scorer failed). Only ``pass`` passes; summaries count each verdict. Set by
    every built-in scorer (None on records written before verdicts existed: read :attr:`outcome`)."""
    evidence: str | None = None
    """The text the verdict rests on: quoted from the output (the label as written, the matched span, the
    refusal phrase, the JSON field) or, for a judge, its reason."""
    span: tuple[int, int] | None = None
    """``(start, end)`` character offsets of :attr:`evidence` in the output, when it is a span of the output."""

    @property
    def outcome(self) -> str:
        """The verdict, derived for records without one (``passed`` and ``error`` decide)."""
        if self.verdict:
            return self.verdict
        if self.error:
            return "error"
        return "pass" if self.passed else ("fail" if self.passed is False else "error")


VERDICTS = ("pass", "fail", "ambiguous", "refused", "filtered", "error")
"""Every verdict a :class:`Score` can carry, in the order reports list them."""


class ToolResult(Model):
    """What one tool call was answered with, in a step of a cell that loops (model -> tools -> model)."""

    tool_call_id: str
    name: str
    content: str
    """The result as the model read it (text; JSON for anything else)."""
    error: str | None = None
    """Why the call got an error result instead (no result for that tool, bad arguments, the function raised)."""


class Step(Model):
    """One model call of a cell that loops: what it answered, the tools it called and what they gave back."""

    step: int
    """1 for the reply to the case's own messages, then 2, 3... after each round of tool results."""
    request_fingerprint: str
    """This step's request fingerprint, its response cache key: a resumed cell finds finished steps by it."""
    output: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    tool_results: list[ToolResult] = Field(default_factory=list)
    finish_reason: str | None = None
    outcome: str = "ok"
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float | None = None
    latency_s: float | None = None
    cache_hit: bool = False
    """The answer came from the response cache (this step was not paid again)."""


class CellResult(Model):
    """Everything about one call: what was sent, what came back, what it cost and how it scored."""

    schema_version: int = CELL_SCHEMA_VERSION
    cell_key: str
    """The logical cell: a hash of (experiment, case, variant, target, repeat) - the same whatever endpoint or
    request it was sent as (records of schema 1 hashed the request in too). A Batch API line's ``custom_id``."""
    experiment: str
    case_id: str
    variant: str
    target: str  # profile[:model]
    profile: str
    deployment: str
    model: str  # catalog model the deployment stands for
    repeat: int
    messages: list[dict[str, Any]]
    params: dict[str, Any] = Field(default_factory=dict)
    output: str = ""
    parsed: Any = None
    parse_error: str | None = None
    outcome: str = "ok"  # ok | length | completion_filtered | prompt_filtered | error
    finish_reason: str | None = None
    latency_s: float | None = None
    first_token_s: float | None = None
    """Seconds to the first piece of answer text (streamed calls; None when the call was not streamed)."""
    tokens_per_s: float | None = None
    """Output tokens per second of the call, end to end (:func:`output_rate`)."""
    streamed: bool = False
    """The call was streamed, so ``first_token_s`` was measured."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float | None = None
    content_filter: dict[str, Any] = Field(default_factory=dict)
    filter_flags: list[str] = Field(default_factory=list)
    error_type: str | None = None
    error_message: str | None = None
    cache_hit: bool = False
    request_id: str | None = None
    system_fingerprint: str | None = None
    retries: int = 0
    """Re-sends of this cell's request, for any reason (429s included)."""
    warnings: list[str] = Field(default_factory=list)
    scores: list[Score] = Field(default_factory=list)
    started_at: str = Field(default_factory=utcnow)
    finished_at: str = Field(default_factory=utcnow)
    rate_limited: int = 0
    """How many times the service answered 429 (the cell waited, and it did not count against ``max_retries``)."""
    batch_id: str | None = None
    """The Batch API job that answered this cell (None: sent online, or answered by the cache)."""
    request_fingerprint: str | None = None
    """What the request was: a hash of the backend identity (endpoint, api-version), the body and the repeat -
    the response cache key. A re-run into the same folder compares it to refuse mixing two requests."""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    """The calls of the model's first answer (the reply to the case's messages), OpenAI-shaped: what the
    ``tool_call`` and ``no_tool_call`` scorers look at. Every step's calls are in :attr:`steps`."""
    steps: list[Step] = Field(default_factory=list)
    """Every model call of a cell that loops over tool results (empty for a single call). The cell's tokens,
    cost and latency are the sums over its steps; ``output`` is the last step's."""

    @property
    def done(self) -> bool:
        """Finished for good (resume skips it); errors are retried on the next run."""
        return self.outcome in DONE_OUTCOMES

    def row(self) -> dict[str, Any]:
        d = self.model_dump(exclude={"scores", "content_filter"})
        d["parsed"] = json.dumps(self.parsed, ensure_ascii=False) if self.parsed is not None else None
        d["messages"] = json.dumps(self.messages, ensure_ascii=False)
        d["params"] = json.dumps(self.params, sort_keys=True)
        d["filter_flags"] = ", ".join(self.filter_flags)
        d["warnings"] = "; ".join(self.warnings)
        d["tool_calls"] = json.dumps(self.tool_calls, ensure_ascii=False) if self.tool_calls else None
        d["steps"] = len(self.steps)
        d["filtered"] = self.outcome in ("completion_filtered", "prompt_filtered")
        for s in self.scores:
            d[f"score.{s.scorer}"] = s.value
            d[f"passed.{s.scorer}"] = s.passed
            d[f"verdict.{s.scorer}"] = s.outcome
            if s.answer is not None:
                d[f"answer.{s.scorer}"] = s.answer
            if s.evidence is not None:
                d[f"evidence.{s.scorer}"] = s.evidence
            if s.error:
                d[f"score_error.{s.scorer}"] = s.error
            if s.scorer == HUMAN_SCORER:  # who reviewed and what they wrote, for exports and tables
                for key in ("reviewer", "reviewed_at", "comment", "corrected_output"):
                    d[f"{key}.{s.scorer}"] = s.metadata.get(key)
        return d


# ------------------------------------------------------------------------------------------- human reviews

REVIEW_SCHEMA_VERSION = 1
HUMAN_VERDICTS = ("pass", "fail")
"""What a reviewer can say about a cell (a scale value is the other way: see ``ReviewScale``)."""

HUMAN_SCORER = "human"
"""The scorer name a review appears under in results: ``score.human``, ``passed.human``, ``verdict.human``."""


class HumanReview(Model):
    """A person's review of one cell of a run: a verdict or a value on the experiment's scale, an optional
    corrected output and a comment. Stored in the run folder (the ``reviews`` table of ``results.sqlite``) and
    keyed by the cell's logical identity, so a review outlives re-runs of the same run folder."""

    schema_version: int = REVIEW_SCHEMA_VERSION
    experiment: str
    """The experiment's name (part of the cell's identity)."""
    case_id: str
    variant: str
    target: str
    """The target label (``profile[:model]``)."""
    repeat: int = 0
    reviewer: str
    """Who reviewed (``WORKBENCH_REVIEWER``, else the login name, unless given)."""
    verdict: str | None = None
    """``pass`` or ``fail``; None when only a scale :attr:`value` was given."""
    value: float | None = None
    """A score on the experiment's review scale (``review: {scale: [1, 5], pass_at: 4}``), as the reviewer gave it."""
    scale: tuple[float, float] | None = None
    """The scale :attr:`value` is on (lowest, highest), recorded with the review so it reads alone."""
    pass_at: float | None = None
    """The value from which :attr:`value` counts as a pass (default: the top of :attr:`scale`)."""
    corrected_output: str | None = None
    """What the output should have been (fine-tuning data can use it instead of the output)."""
    comment: str = ""
    output_sha256: str | None = None
    """A hash of the output the reviewer saw: if a re-sent cell answers differently, the review shows as stale."""
    created_at: str = Field(default_factory=utcnow)
    cleared: bool = False
    """A withdrawn review: the reviewer's earlier review of this cell no longer counts."""

    @model_validator(mode="after")
    def _says_something(self) -> HumanReview:
        if self.verdict is not None and self.verdict not in HUMAN_VERDICTS:
            raise ValueError(f"verdict {self.verdict!r}: a reviewer's verdict is one of {', '.join(HUMAN_VERDICTS)}")
        if not self.cleared and self.verdict is None and self.value is None:
            raise ValueError("a review needs a verdict (pass or fail) or a value on the review scale")
        if self.value is not None:
            if self.scale is None:
                raise ValueError(f"value {self.value:g} needs the scale it is on (scale=(low, high))")
            low, high = self.scale
            if not low <= self.value <= high:
                raise ValueError(f"value {self.value:g} is outside the review scale [{low:g}, {high:g}]")
        if not self.reviewer.strip():
            raise ValueError("the reviewer's name is empty: pass reviewer= or set WORKBENCH_REVIEWER")
        return self

    @property
    def cell(self) -> tuple[str, str, str, int]:
        """``(case_id, variant, target, repeat)``: the cell within its experiment."""
        return (self.case_id, self.variant, self.target, self.repeat)

    @property
    def passed(self) -> bool:
        """The verdict if one was given, else whether :attr:`value` reaches :attr:`pass_at` (the top of the scale)."""
        if self.verdict is not None:
            return self.verdict == "pass"
        assert self.value is not None and self.scale is not None
        return self.value >= (self.pass_at if self.pass_at is not None else self.scale[1])

    @property
    def label(self) -> str:
        """``pass`` / ``fail``: what agreement statistics compare."""
        return "pass" if self.passed else "fail"
