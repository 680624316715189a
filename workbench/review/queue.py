"""Which cells to review, in what order, and how far along the review is - pure functions of the records.

The Review widget walks :func:`review_queue`; the same selection works from Python. Filters:

- ``all``: every call of the run;
- ``unreviewed``: calls nobody has reviewed yet;
- ``failed``: a call that errored, was filtered, or that a scorer did not pass;
- ``disagreeing``: the run's scorers disagree about the call (one passes it, another does not);
- ``flaky``: the call's case x variant x target has repeats that a scorer passed and failed;
- ``ambiguous``: a scorer found the answer ambiguous (it named more than one allowed answer) or a refusal;
- ``sample``: a seeded random sample of ``sample_size`` calls (the same sample every time for the same seed).

The order is the run's: case, variant, target, repeat.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import DataError
from ..records import HUMAN_SCORER, CellResult, Score

REVIEW_FILTERS = ("all", "unreviewed", "failed", "disagreeing", "flaky", "ambiguous", "sample")

CellId = tuple[str, str, str, int]  # case_id, variant, target, repeat


def cell_id(record: CellResult) -> CellId:
    return (record.case_id, record.variant, record.target, record.repeat)


def _machine_scores(record: CellResult, scorer: str | None) -> list[Score]:
    return [s for s in record.scores if s.scorer != HUMAN_SCORER and (scorer is None or s.scorer == scorer)]


def is_failed(record: CellResult, scorer: str | None = None) -> bool:
    if record.outcome == "error" or record.outcome in ("prompt_filtered", "completion_filtered"):
        return True
    return any(s.outcome != "pass" for s in _machine_scores(record, scorer))


def is_disagreeing(record: CellResult) -> bool:
    """Two scorers that reached a verdict reached different ones (pass vs not pass)."""
    seen = {s.outcome == "pass" for s in _machine_scores(record, None) if s.outcome != "error"}
    return len(seen) > 1


def is_ambiguous(record: CellResult, scorer: str | None = None) -> bool:
    return any(s.outcome in ("ambiguous", "refused") for s in _machine_scores(record, scorer))


def flaky_cells(records: Iterable[CellResult], scorer: str | None = None) -> set[CellId]:
    """Calls of every case x variant x target whose repeats a scorer both passed and failed."""
    groups: dict[tuple[str, str, str], list[CellResult]] = defaultdict(list)
    for r in records:
        groups[(r.case_id, r.variant, r.target)].append(r)
    out: set[CellId] = set()
    for recs in groups.values():
        if len(recs) < 2:
            continue
        names = {s.scorer for r in recs for s in _machine_scores(r, scorer)}
        for name in names:
            verdicts = {s.outcome == "pass" for r in recs for s in r.scores
                        if s.scorer == name and s.outcome != "error"}
            if len(verdicts) > 1:
                out |= {cell_id(r) for r in recs}
                break
    return out


def _ordered(records: Iterable[CellResult]) -> list[CellResult]:
    return sorted(records, key=lambda r: (r.case_id, r.variant, r.target, r.repeat))


def review_queue(records: Sequence[CellResult], show: str = "all", *, reviewed: Iterable[CellId] = (),
                 scorer: str | None = None, sample_size: int = 20, seed: int = 0,
                 order: Sequence[str] | None = None) -> list[CellId]:
    """The calls the filter ``show`` selects (see the module docstring), in the run's order.

    ``reviewed``: the cells reviewed so far (for ``unreviewed``); ``scorer``: judge ``failed``/``flaky``/
    ``ambiguous`` by this scorer only (default: any); ``order``: case ids in dataset order (default: sorted).
    """
    if show not in REVIEW_FILTERS:
        raise DataError(f"show={show!r}: use one of {', '.join(REVIEW_FILTERS)}")
    if sample_size < 1:
        raise DataError(f"sample_size={sample_size}: a sample needs at least one cell")
    rank = {c: i for i, c in enumerate(order or [])}
    recs = sorted(_ordered(records), key=lambda r: rank.get(r.case_id, len(rank)))
    done = set(reviewed)
    if show == "all":
        picked = recs
    elif show == "unreviewed":
        picked = [r for r in recs if cell_id(r) not in done]
    elif show == "failed":
        picked = [r for r in recs if is_failed(r, scorer)]
    elif show == "disagreeing":
        picked = [r for r in recs if is_disagreeing(r)]
    elif show == "flaky":
        flaky = flaky_cells(recs, scorer)
        picked = [r for r in recs if cell_id(r) in flaky]
    elif show == "ambiguous":
        picked = [r for r in recs if is_ambiguous(r, scorer)]
    else:  # sample: seeded, then shown in the run's order
        chosen = set(random.Random(seed).sample(range(len(recs)), min(sample_size, len(recs))))
        picked = [r for i, r in enumerate(recs) if i in chosen]
    return [cell_id(r) for r in picked]


@dataclass(frozen=True)
class Progress:
    """How many of the queued calls (and of the whole run) have a review."""

    reviewed: int
    total: int
    run_reviewed: int
    run_total: int

    def text(self) -> str:
        """``37 of 120 reviewed`` (and the run's figure when the queue is a part of it)."""
        main = f"{self.reviewed} of {self.total} reviewed"
        if self.total != self.run_total:
            main += f" (whole run: {self.run_reviewed} of {self.run_total})"
        return main


def progress(queue: Sequence[CellId], reviewed: Iterable[CellId], run_total: int) -> Progress:
    done = set(reviewed)
    return Progress(sum(1 for k in queue if k in done), len(queue), len(done), run_total)


def filter_counts(records: Sequence[CellResult], *, reviewed: Iterable[CellId] = (), scorer: str | None = None,
                  sample_size: int = 20, seed: int = 0) -> dict[str, int]:
    """How many calls each filter selects (the widget shows them on its filter buttons)."""
    done = set(reviewed)
    return {f: len(review_queue(records, f, reviewed=done, scorer=scorer, sample_size=sample_size, seed=seed))
            for f in REVIEW_FILTERS}
