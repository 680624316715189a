"""Human reviews, stored in the run folder next to the cells they judge (the ``reviews`` table of
``results.sqlite``).

- A review is keyed by the cell's **logical identity** - (experiment, case id, variant, target label, repeat) -
  and its reviewer, never by a request hash, so it survives re-runs into the same folder.
- The table is append-only: every save is a new row, and a cell's current review by a reviewer is its latest
  row (:meth:`ReviewStore.history` keeps the rest). Withdrawing a review writes a ``cleared`` row.
- Its schema is versioned on its own (``reviews_meta``), independent of the run ledger's tables, and created
  when a review is first written; reading a folder without reviews creates nothing (:func:`read_reviews`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import DataError, LedgerError
from ..records import CellResult, HumanReview
from ..store import _SQLite

FILENAME = "results.sqlite"
TABLE_SCHEMA_VERSION = 1  # of the reviews table itself (the HumanReview record has its own schema_version)

_COLUMNS = "experiment, case_id, variant, target, repeat, reviewer"


def default_reviewer() -> str:
    """``WORKBENCH_REVIEWER``, else the login name, else ``reviewer``."""
    name = os.environ.get("WORKBENCH_REVIEWER", "").strip()
    if name:
        return name
    try:
        return getpass.getuser() or "reviewer"
    except (OSError, KeyError):  # no login name in a container
        return "reviewer"


def output_sha256(text: str | None) -> str:
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


class ReviewStore(_SQLite):
    """Write and read the reviews of one run folder."""

    SCHEMA = f"""
    CREATE TABLE IF NOT EXISTS reviews (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        experiment TEXT NOT NULL,
        case_id TEXT NOT NULL,
        variant TEXT NOT NULL,
        target TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        reviewer TEXT NOT NULL,
        created_at TEXT NOT NULL,
        record TEXT NOT NULL
    );
    CREATE INDEX IF NOT EXISTS reviews_by_cell ON reviews({_COLUMNS});
    CREATE TABLE IF NOT EXISTS reviews_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT OR IGNORE INTO reviews_meta (key, value) VALUES ('schema_version', '{TABLE_SCHEMA_VERSION}');
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        if not self.run_dir.is_dir():
            raise DataError(f"{self.run_dir} is not a run folder: reviews are stored in a run's folder "
                            f"(the `out` of workbench.run, or Results.run_dir).")
        super().__init__(self.run_dir / FILENAME)
        version = int(self.execute("SELECT value FROM reviews_meta WHERE key = 'schema_version'")[0][0])
        if version > TABLE_SCHEMA_VERSION:
            self.close()
            raise DataError(f"{self.path}: its reviews were written by a newer workbench (reviews schema {version}; "
                            f"this one reads up to {TABLE_SCHEMA_VERSION}). Upgrade the workbench to read them.")

    def _damaged(self, error: sqlite3.DatabaseError, opening: bool = False) -> None:
        raise LedgerError(f"The run ledger {self.path} is damaged ({error}): its reviews cannot be read or written. "
                          f"`workbench.review.read_reviews` reads what is left; move the file aside to start over.",
                          self.path) from error

    # -- writing ---------------------------------------------------------------------------------------
    def add(self, review: HumanReview) -> HumanReview:
        """Store ``review`` (a new row; the cell's previous review by this reviewer stays in the history)."""
        self.execute(f"INSERT INTO reviews ({_COLUMNS}, created_at, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (review.experiment, *review.cell, review.reviewer, review.created_at, review.model_dump_json()))
        return review

    def add_review(self, cell: CellResult, *, verdict: str | None = None, value: float | None = None,
                   corrected_output: str | None = None, comment: str = "", reviewer: str | None = None,
                   scale: tuple[float, float] | None = None, pass_at: float | None = None) -> HumanReview:
        """Review one cell: a verdict (``pass``/``fail``) or a ``value`` on ``scale``, with an optional corrected
        output and comment. Validated (a SpecError names the field) before anything is written."""
        review = HumanReview(experiment=cell.experiment, case_id=cell.case_id, variant=cell.variant, target=cell.target,
                        repeat=cell.repeat, reviewer=reviewer or default_reviewer(), verdict=verdict, value=value,
                        scale=scale, pass_at=pass_at, corrected_output=_correction(corrected_output, cell.output),
                        comment=(comment or "").strip(), output_sha256=output_sha256(cell.output))
        return self.add(review)

    def clear(self, cell: CellResult, *, reviewer: str | None = None) -> HumanReview:
        """Withdraw the reviewer's review of ``cell`` (it no longer counts; the history keeps it)."""
        review = HumanReview(experiment=cell.experiment, case_id=cell.case_id, variant=cell.variant, target=cell.target,
                        repeat=cell.repeat, reviewer=reviewer or default_reviewer(), cleared=True,
                        output_sha256=output_sha256(cell.output))
        return self.add(review)

    # -- reading ---------------------------------------------------------------------------------------
    def history(self) -> list[HumanReview]:
        """Every review row, oldest first (cleared ones included)."""
        return [HumanReview.model_validate_json(r[0]) for r in self.execute("SELECT record FROM reviews ORDER BY id")]

    def reviews(self, *, reviewer: str | None = None) -> list[HumanReview]:
        """The current reviews: each cell's latest review by each reviewer, withdrawn ones left out."""
        return current_reviews(self.history(), reviewer=reviewer)

    def reviewers(self) -> list[str]:
        return sorted({r.reviewer for r in self.reviews()})


def _correction(corrected: str | None, output: str) -> str | None:
    """A correction only when it differs from the output (a reviewer who left the text as it was corrected nothing)."""
    if corrected is None or corrected.strip() == (output or "").strip():
        return None
    return corrected


def current_reviews(rows: Iterable[HumanReview], *, reviewer: str | None = None) -> list[HumanReview]:
    """The latest row per (experiment, cell, reviewer), without withdrawn ones, in first-review order."""
    latest: dict[tuple, HumanReview] = {}
    for r in rows:
        key = (r.experiment, *r.cell, r.reviewer)
        latest.pop(key, None)  # re-insert: a changed review keeps no stale position
        latest[key] = r
    return [r for r in latest.values() if not r.cleared and (reviewer is None or r.reviewer == reviewer)]


def read_reviews(run_dir: str | Path | None) -> list[HumanReview]:
    """The current reviews of a run folder, read-only: a folder without reviews (or without a store) gives []
    and is left untouched."""
    if run_dir is None:
        return []
    path = Path(run_dir) / FILENAME
    if not path.is_file():
        return []
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=60)
    except sqlite3.Error:
        return []
    try:
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'reviews'").fetchone():
            return []
        rows = conn.execute("SELECT record FROM reviews ORDER BY id").fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()
    return current_reviews(HumanReview.model_validate_json(r[0]) for r in rows)


def review_rows(reviews: Iterable[HumanReview]) -> list[dict[str, Any]]:
    """Reviews as plain dicts (a table, a JSON export)."""
    return [json.loads(r.model_dump_json()) for r in reviews]

