"""Refusal detection: "I'm sorry, I can't help with that" is not an answer, whatever words it happens to contain.

A refusal often mentions the very labels a scorer looks for ("I don't have the ability to provide a positive or
negative review"), so a scorer that only searches for a label would pass it. :func:`find_refusal` finds the
phrases models use to decline - an inability ("I can't", "I'm unable to", "I don't have the ability to") about
doing the task, or an "As an AI ..." disclaimer followed by one - and returns the matched span as evidence.

It is deliberately conservative: a bare apology ("I'm sorry to hear that, but the review is positive") or a
disclaimer without an inability is not a refusal. Built-in scorers use it (``on_refusal: fail``, the default);
``on_refusal: score`` scores the text as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# what a model declines to do: verbs of the task at hand ("provide", "classify", "determine", ...)
_TASK_VERBS = (r"(?:help|assist|provide|give|answer|comply|do\s+that|do\s+this|fulfil+|complete|classify|"
               r"categori[sz]e|determine|judge|evaluate|assess|analy[sz]e|tell|say|decide|offer|share|generate|"
               r"write|create|make|express|form|predict|identify|label|rate|review|respond|support|engage|discuss|"
               r"perform|process|access|browse|see|read|view|know|have\s+opinions?|hold\s+opinions?)")
_CANNOT = (r"(?:can\s*not|can't|can’t|cannot|am\s+(?:not\s+able|unable)|'m\s+(?:not\s+able|unable)|"
           r"’m\s+(?:not\s+able|unable)|won't|won’t|will\s+not|must\s+(?:decline|refuse)|"
           r"(?:do\s+not|don't|don’t)\s+have\s+the\s+(?:ability|capability|capacity|means)|"
           r"(?:am|'m|’m)\s+not\s+(?:capable|in\s+a\s+position|programmed|designed|allowed|permitted))")
_INABILITY = re.compile(
    rf"\bI\s*{_CANNOT}\s+(?:to\s+)?(?:\w+\s+){{0,2}}?{_TASK_VERBS}\b"
    rf"|\bI\s*(?:must|have\s+to)\s+(?:respectfully\s+)?(?:decline|refuse)\b"
    rf"|\bI\s*(?:do\s+not|don't|don’t)\s+have\s+the\s+(?:ability|capability|capacity)\s+to\b"
    rf"|\bI(?:'m|’m|\s+am)\s+(?:sorry|afraid)\b[^.!?\n]{{0,40}}?\b(?:can't|can’t|cannot|can\s+not|unable|not\s+able)\b",
    re.IGNORECASE,
)
_AS_AN_AI = re.compile(
    r"\bAs\s+an?\s+(?:AI|artificial\s+intelligence|language\s+model|AI\s+language\s+model|AI\s+assistant|"
    r"chatbot|virtual\s+assistant)\b"
    r"[^.!?\n]{0,120}?\b(?:can't|can’t|cannot|can\s+not|unable|not\s+able|don't|don’t|do\s+not|won't|"
    r"will\s+not|have\s+no)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Refusal:
    """Where an output declines: the matched text and its character offsets in the output."""

    text: str
    start: int
    end: int


def find_refusal(text: str, *, prompt: str = "") -> Refusal | None:
    """The first refusal phrase in ``text`` (None if it does not decline).

    A phrase that ``prompt`` (the request and the case's values) contains too is an echo of the input - a
    review that says "I can't recommend it" - and does not count.
    """
    if not text:
        return None
    quoted = prompt.casefold()
    for m in sorted((*_AS_AN_AI.finditer(text), *_INABILITY.finditer(text)), key=lambda m: m.start()):
        if quoted and _squash(m.group(0)) in _squash(quoted):
            continue
        return Refusal(text=m.group(0), start=m.start(), end=m.end())
    return None


def _squash(text: str) -> str:
    return " ".join(text.casefold().replace("’", "'").split())


__all__ = ["Refusal", "find_refusal"]
