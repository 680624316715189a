"""Cells -> chat-format fine-tuning examples (one ``{"messages": [...]}`` per line, the OpenAI / Azure OpenAI
format), and the seeded train/validation split.

An example is the request the cell sent (its system, user and earlier turns, tool results included) followed by
one assistant message: the answer to train on - the output, a reviewer's corrected output, or the case's
expected answer (``answer``). A cell that answered with tool calls keeps them (``tool_calls`` on the assistant
message, the request's ``tools`` on the example).
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import DataError
from ..records import CellResult
from .select import corrected_output

ANSWERS = ("auto", "output", "corrected", "expected")


@dataclass(frozen=True)
class Example:
    """One training example and where it came from."""

    data: dict[str, Any]  # what is written: {"messages": [...], "tools": [...]?}
    case_id: str
    variant: str
    target: str
    repeat: int
    answer: str  # output | corrected | expected

    def line(self) -> str:
        return json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))

    def source(self) -> dict[str, Any]:
        return {"case_id": self.case_id, "variant": self.variant, "target": self.target, "repeat": self.repeat,
                "answer": self.answer}


@dataclass
class Built:
    """Examples built from selected cells, and the cells that gave none (with why)."""

    examples: list[Example] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (cell, reason)
    duplicates: int = 0
    notes: list[str] = field(default_factory=list)


def expected_text(value: Any) -> str | None:
    """The expected answer as assistant text: a string as is, the first of several alternatives, JSON otherwise."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, list):
        return expected_text(value[0])
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _answer(record: CellResult, answer: str, expected: Mapping[str, Any]) -> tuple[str | None, str]:
    if answer == "expected":
        return expected_text(expected.get(record.case_id)), "expected"
    fixed = corrected_output(record)
    if answer == "corrected":
        return fixed, "corrected"
    if answer == "auto" and fixed:
        return fixed, "corrected"
    return record.output, "output"


def _prompt(messages: Sequence[Mapping[str, Any]], system: str, notes: list[str]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        m = dict(m)
        if m.get("role") == "developer":  # reasoning models' system turn: the fine-tuning format says system
            m["role"] = "system"
            _note(notes, "developer messages written as system messages (the fine-tuning format has no developer)")
        if m.get("role") == "system" and system != "keep":
            continue
        out.append(m)
    if system not in ("keep", "drop"):
        out.insert(0, {"role": "system", "content": system})
    return out


def _note(notes: list[str], text: str) -> None:
    if text not in notes:
        notes.append(text)


def build_examples(records: Sequence[CellResult], *, answer: str = "auto", system: str = "keep",
                   expected: Mapping[str, Any] | None = None) -> Built:
    """An example per selected cell (identical examples once). ``system``: ``keep`` the request's system message,
    ``drop`` it, or any other text to use as the system message of every example."""
    if answer not in ANSWERS:
        raise DataError(f"answer={answer!r}: use one of {', '.join(ANSWERS)}")
    if not isinstance(system, str) or not system.strip():
        raise DataError("system= is 'keep', 'drop' or the text of a system message; got an empty value")
    built, seen, expected = Built(), set(), expected or {}
    for rec in records:
        where = f"{rec.case_id} / {rec.variant} / {rec.target} / repeat {rec.repeat}"
        text, source = _answer(rec, answer, expected)
        calls = list(getattr(rec, "tool_calls", None) or []) if source == "output" else []
        if not (text or "").strip() and not calls:
            reason = {"corrected": "no corrected output", "expected": "the case has no expected answer"}.get(
                source, "the output is empty")
            built.skipped.append((where, reason))
            continue
        reply: dict[str, Any] = {"role": "assistant", "content": text if (text or "").strip() else None}
        if calls:
            reply["tool_calls"] = calls
        data: dict[str, Any] = {"messages": [*_prompt(rec.messages, system, built.notes), reply]}
        tools = (rec.params or {}).get("tools")
        if tools:
            data["tools"] = tools
        ex = Example(data, rec.case_id, rec.variant, rec.target, rec.repeat, source)
        if ex.line() in seen:
            built.duplicates += 1
            continue
        seen.add(ex.line())
        built.examples.append(ex)
    return built


def split_examples(examples: Sequence[Example], validation: float = 0.2,
                   seed: int = 0) -> tuple[list[Example], list[Example]]:
    """Train and validation sets, split by **case** (every example of a case lands on the same side, so the
    validation set never holds a case the model trained on), seeded: the same seed gives the same split."""
    if not 0 <= validation < 1:
        raise DataError(f"validation={validation!r}: the share of cases held out, from 0 (none) to below 1")
    cases = sorted({e.case_id for e in examples})
    random.Random(seed).shuffle(cases)
    n_val = round(validation * len(cases))
    if validation > 0 and len(cases) >= 2:
        n_val = min(max(n_val, 1), len(cases) - 1)
    held = set(cases[:n_val])
    return [e for e in examples if e.case_id not in held], [e for e in examples if e.case_id in held]
