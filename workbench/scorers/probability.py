"""Scores from what the model was thinking: the probability it gave each label, read from its token
log-probabilities rather than from the text it wrote.

A label task asks the model to answer with one of a few labels; the first token of the answer decides which,
and its alternatives (``top_logprobs`` on chat, ``logprobs: N`` on completions) say how sure the model was. That
probability is a score in its own right - and over many cases, how well it matches how often the model is
right is the prompt's calibration (:func:`workbench.stats.calibration`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import DataError, ScoreFailed, ScoringError
from ..records import Score, TokenLogprobs
from ._util import _as_text
from .base import ScoreInput, Scorer, register_scorer

_STRIP = " \t\r\n\"'`*([{<:"  # what may come before a label inside its first token


def answer_token(logprobs: TokenLogprobs, labels: Sequence[str]) -> int | None:
    """The index of the token where the model chose its label: the first output token that begins one of the
    ``labels`` ("Answer: positive" is read at "positive"), else the first token with a letter or digit in it
    (an answer may open with a newline or a quote); None when there is none."""
    folded = [label.strip().casefold() for label in labels]
    first = None
    for i, token in enumerate(logprobs.tokens):
        if not any(ch.isalnum() for ch in token):
            continue
        first = i if first is None else first
        norm = token.strip(_STRIP).casefold()
        if norm and any(f.startswith(norm) for f in folded):
            return i
    return first


def label_masses(alternatives: dict[str, float], labels: Sequence[str]) -> tuple[dict[str, float], float]:
    """The probability each label gets from one token's alternatives (``{token: probability}``), and the
    probability of tokens that begin more than one label (which cannot be split between them).

    A token counts for a label when, stripped of spaces, quotes and brackets and case-folded, it is a non-empty
    beginning of that label: ``" Positive"``, ``"positive"`` and ``"pos"`` all count for ``positive``, so the
    masses of one label's spellings add up."""
    masses = {label: 0.0 for label in labels}
    shared = 0.0
    folded = {label: label.strip().casefold() for label in labels}
    for token, p in alternatives.items():
        norm = token.strip(_STRIP).casefold()
        if not norm:
            continue
        matches = [label for label in labels if folded[label].startswith(norm)]
        if len(matches) == 1:
            masses[matches[0]] += p
        elif matches:
            shared += p
    return masses, shared


@register_scorer("label_probability")
@dataclass(kw_only=True, eq=False)
class LabelProbabilityScorer(Scorer):
    """For label tasks: the probability the model gave the expected label, from the alternatives of the answer
    token - the first output token that begins a label (:func:`answer_token`; usually the first token) - (the
    cell must carry log-probabilities: ``logprobs: true, top_logprobs: 5`` on a chat variant, ``logprobs: 5`` on
    a ``prompt`` variant).

    - ``value``: the expected label's probability, normalised over the labels (so 0.5 on two labels is a coin
      toss), ``1 - value`` the rest;
    - ``passed`` (verdict ``pass``): the most probable label is the expected one;
    - ``answer``: the most probable label; ``evidence``: the first answer token as written;
    - ``metadata``: ``label_probs`` (normalised), ``label_mass`` (raw probability per label), ``coverage`` (how
      much of the token's probability the labels hold - alternatives outside the top N are unknown, so a low
      coverage says the figure rests on little), ``shared`` (mass of tokens that begin several labels),
      ``confidence`` (the most probable label's probability: what calibration compares with being right).

    No label among the alternatives, or labels holding less than ``min_coverage`` (default 0.2) of the token's
    probability (the model was not choosing between the labels there, and normalising would invent a certainty;
    a small model's top alternatives are diffuse, so labels often hold 25-60%), is a fail with
    no confidence: calibration leaves it out and counts it. A cell with no log-probabilities is an error that
    says how to ask for them.
    """

    primary: ClassVar[str | None] = "labels"
    evidence_in_output: ClassVar[bool] = True
    labels: Sequence[str] = ()
    min_coverage: float = 0.2

    def __post_init__(self) -> None:
        super().__post_init__()
        if (isinstance(self.labels, str) or len(self.labels) < 2
                or not all(isinstance(x, str) and x.strip() for x in self.labels)):
            raise DataError(f"scorer {self.name!r}: label_probability needs `labels`, a list of at least two "
                            f"allowed labels (got {self.labels!r})")
        folded = [x.strip().casefold() for x in self.labels]
        if len(set(folded)) != len(folded):
            raise DataError(f"scorer {self.name!r}: labels {list(self.labels)} repeat one label (case-insensitively)")
        self.labels = [x.strip() for x in self.labels]
        if isinstance(self.min_coverage, bool) or not isinstance(self.min_coverage, (int, float)) \
                or not 0 <= self.min_coverage <= 1:
            raise DataError(f"scorer {self.name!r}: min_coverage must be a probability between 0 and 1 "
                            f"(got {self.min_coverage!r})")

    def _score(self, inp: ScoreInput) -> Score:
        lp = inp.logprobs
        if lp is None or not len(lp):
            raise ScoringError(
                f"case {inp.case_id!r}: the cell has no token log-probabilities, which {self.name!r} reads; ask for "
                "them in the variant's params (chat: logprobs: true, top_logprobs: 5; a prompt variant: logprobs: 5)")
        index = answer_token(lp, self.labels)
        if index is None:
            raise ScoreFailed(f"the output has no word to read a label from: {inp.output[:80]!r}")
        alternatives = lp.alternatives(index)
        masses, shared = label_masses(alternatives, self.labels)
        coverage = sum(masses.values())
        token = lp.tokens[index]
        meta: dict[str, Any] = {"label_mass": masses, "shared": shared, "coverage": coverage, "token_index": index,
                                "alternatives": len(alternatives)}
        if coverage <= 0:
            raise ScoreFailed(f"none of the labels {list(self.labels)} is among the {len(alternatives)} alternatives "
                              f"of the answer token {token!r}", evidence=token.strip() or None, **meta)
        if coverage < self.min_coverage:
            raise ScoreFailed(f"the labels hold only {coverage:.0%} of the answer token {token!r}'s probability "
                              f"(min_coverage {self.min_coverage:.0%}): the model was not choosing between them there",
                              evidence=token.strip() or None, **meta)
        probs = {label: m / coverage for label, m in masses.items()}
        predicted = max(self.labels, key=lambda label: probs[label])  # a tie goes to the first label listed
        expected = self._expected_labels(inp)
        value = sum(probs[label] for label in expected)
        shown = ", ".join(f"P({label})={probs[label]:.2f}" for label in self.labels)
        explanation = (f"{shown} from the {len(alternatives)} alternatives of the answer token {token!r} "
                       f"(the labels hold {coverage:.0%} of its probability); expected "
                       f"{' or '.join(repr(x) for x in expected)}")
        ok = predicted in expected
        return Score(scorer=self.name, value=float(value), passed=ok, verdict="pass" if ok else "fail",
                     answer=predicted, explanation=explanation, evidence=token.strip() or None,
                     metadata={**meta, "label_probs": probs, "confidence": probs[predicted], "predicted": predicted})

    def _expected_labels(self, inp: ScoreInput) -> list[str]:
        canonical = {label.casefold(): label for label in self.labels}
        wanted = [_as_text(w).strip().casefold() for w in self._expected(inp)]
        found = [canonical[w] for w in wanted if w in canonical]
        if not found:
            raise ScoringError(f"case {inp.case_id!r}: expected {wanted!r} is none of the labels "
                               f"{list(self.labels)}; fix the case's `expected` or the scorer's labels")
        return found
