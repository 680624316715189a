"""Which cells become fine-tuning examples: ``--where`` terms, validated in one place for the CLI, Python and the
notebook, and applied to a run's records.

Terms (all must hold; the default is ``human=approved``)::

    human=approved     a reviewer passed the output, or wrote a corrected output
    human=pass|fail    the reviewer's verdict
    human=corrected    a reviewer wrote a corrected output
    human=reviewed     any review;  human=unreviewed: none
    SCORER=VERDICT     a scorer's verdict: exact=pass, label=fail, judge=ambiguous ...
    variant=NAME  target=LABEL  case=ID  repeat=N
    expected           the case has an expected answer
    ok                 the call completed (not an error, not filtered)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ..errors import DataError
from ..records import HUMAN_SCORER, VERDICTS, CellResult, Score

HUMAN_VALUES = ("approved", "pass", "fail", "corrected", "reviewed", "unreviewed")
FIELD_KEYS = ("variant", "target", "case", "repeat")
FLAGS = ("expected", "ok")
DEFAULT_WHERE = ("human=approved",)


@dataclass(frozen=True)
class Term:
    key: str  # human, variant, target, case, repeat, expected, ok, or a scorer name
    value: str | None = None

    def __str__(self) -> str:
        return self.key if self.value is None else f"{self.key}={self.value}"


def parse_where(terms: Sequence[str] | str | None, scorers: Sequence[str] = ()) -> tuple[Term, ...]:
    """Validate ``--where`` terms against the run's scorers; a bad term raises DataError naming it."""
    if terms is None:
        terms = DEFAULT_WHERE
    if isinstance(terms, str):
        terms = [terms]
    out = []
    for raw in terms:
        for text in (t.strip() for t in str(raw).split(",")):
            if text:
                out.append(_term(text, scorers))
    if not out:
        raise DataError("--where is empty: give a term such as human=approved, exact=pass or expected")
    return tuple(out)


def _term(text: str, scorers: Sequence[str]) -> Term:
    key, sep, value = (part.strip() for part in text.partition("="))
    if not sep:
        if key in FLAGS:
            return Term(key)
        raise DataError(f"--where {text!r}: write KEY=VALUE (human=approved, exact=pass, variant=NAME) or one of "
                        f"{', '.join(FLAGS)}")
    if not value:
        raise DataError(f"--where {text!r}: {key}= needs a value")
    if key == HUMAN_SCORER:
        if value not in HUMAN_VALUES:
            raise DataError(f"--where {text!r}: human= takes one of {', '.join(HUMAN_VALUES)}")
    elif key == "repeat":
        if not value.isdigit():
            raise DataError(f"--where {text!r}: repeat= takes a whole number (0 is the first repeat)")
    elif key not in FIELD_KEYS:
        if key not in scorers:
            known = ", ".join([HUMAN_SCORER, *FIELD_KEYS, *scorers])
            raise DataError(f"--where {text!r}: {key!r} is not a scorer of this run or a field; use one of {known}")
        if value not in VERDICTS:
            raise DataError(f"--where {text!r}: a scorer's verdict is one of {', '.join(VERDICTS)}")
    return Term(key, value)


def _score(record: CellResult, name: str) -> Score | None:
    return next((s for s in record.scores if s.scorer == name), None)


def corrected_output(record: CellResult) -> str | None:
    human = _score(record, HUMAN_SCORER)
    return (human.metadata.get("corrected_output") or None) if human is not None else None


def _human(record: CellResult, value: str) -> bool:
    human = _score(record, HUMAN_SCORER)
    if value == "unreviewed":
        return human is None
    if human is None or human.metadata.get("stale"):
        return False
    corrected = bool(human.metadata.get("corrected_output"))
    return {"reviewed": True, "corrected": corrected, "pass": human.verdict == "pass",
            "fail": human.verdict == "fail", "approved": human.verdict == "pass" or corrected}[value]


def matches(record: CellResult, terms: Sequence[Term], expected: Mapping[str, object]) -> bool:
    """Whether one record satisfies every term (``expected``: case id -> expected answer)."""
    for t in terms:
        if t.key == HUMAN_SCORER:
            ok = _human(record, t.value or "")
        elif t.key == "variant":
            ok = record.variant == t.value
        elif t.key == "target":
            ok = record.target == t.value
        elif t.key == "case":
            ok = record.case_id == t.value
        elif t.key == "repeat":
            ok = record.repeat == int(t.value or 0)
        elif t.key == "expected":
            ok = expected.get(record.case_id) not in (None, "", [])
        elif t.key == "ok":
            ok = record.outcome in ("ok", "length")
        else:
            s = _score(record, t.key)
            ok = s is not None and s.outcome == t.value
        if not ok:
            return False
    return True
