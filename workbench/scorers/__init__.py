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

The package, one module per family (in the manner of inspect_ai's ``scorer/``):

- ``base``: :class:`ScoreInput`, the :class:`Scorer` base class and its guarantees, the registry decorator;
- ``text``: exact, contains, regex, label; ``structured``: json_valid, json_schema, numeric;
- ``model_graded``: embedding, judge (and :func:`parse_grade`); ``python``: your own function;
- ``tools``: tool_call, no_tool_call, tool_sequence (function calling; order-free for parallel calls);
- ``registry``: :func:`build_scorer` / :func:`build_scorers` from any spec form, :func:`scorer_name`.
"""

from __future__ import annotations

from ..errors import JudgeParseError, ScoringError
from ..records import Score
from .base import FAILED_OUTCOMES, SCORERS, ScoreInput, Scorer, register_scorer
from .model_graded import EmbeddingScorer, JudgeScorer, parse_grade
from .python import PythonScorer
from .registry import build_scorer, build_scorers, scorer_name
from .structured import JsonSchemaScorer, JsonValidScorer, NumericScorer
from .text import ContainsScorer, ExactScorer, LabelScorer, RegexScorer
from .tools import NoToolCallScorer, ToolCallScorer, ToolSequenceScorer

__all__ = [
    "ScoreInput", "Score", "Scorer", "ExactScorer", "ContainsScorer", "RegexScorer", "LabelScorer",
    "JsonValidScorer", "JsonSchemaScorer", "NumericScorer", "EmbeddingScorer", "JudgeScorer", "PythonScorer",
    "SCORERS", "FAILED_OUTCOMES", "register_scorer", "build_scorer", "build_scorers", "scorer_name", "parse_grade",
    "JudgeParseError", "ScoringError", "ToolCallScorer", "NoToolCallScorer", "ToolSequenceScorer",
]
