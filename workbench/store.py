"""Durable storage: the response cache and the per-run result store, both SQLite.

SQLite in WAL mode gives what a long run needs: every result is committed as it arrives, a process killed
at any instant (Ctrl-C, an exception, ``kill -9``) leaves only whole rows behind, and several processes can
share one cache or run store (readers never block; writers wait up to ``busy_timeout``).

- :class:`ResponseCache` is content-addressed: the key is a hash of the backend identity (kind, endpoint,
  api-version - never a key or token), the full request body (deployment, messages, parameters) and the
  repeat index. Only completed answers are cached, never errors.
- :class:`RunStore` keeps one row per cell of one run (``results.sqlite`` in the run folder), so a re-run
  resumes where the last one stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from .records import CellResult, Completion
from .secrets import redact_obj


def workbench_home() -> Path:
    """Where the workbench keeps caches and default run folders (``$WORKBENCH_HOME``, else the user cache)."""
    if os.environ.get("WORKBENCH_HOME"):
        return Path(os.environ["WORKBENCH_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "workbench"


def default_cache_path() -> Path:
    return Path(os.environ["WORKBENCH_CACHE"]).expanduser() if os.environ.get("WORKBENCH_CACHE") \
        else workbench_home() / "responses.sqlite"


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def content_hash(*parts: Any) -> str:
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()


@lru_cache(maxsize=64)
def _safe_identity(identity_json: str) -> Any:
    return redact_obj(json.loads(identity_json))


class _SQLite:
    """A connection shared by the threads of one process, serialised by a lock (writes are tiny)."""

    SCHEMA: str = ""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 60000")
        self._retry(lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
        # NORMAL in WAL mode survives process crashes (kill -9); only an OS crash can lose the last commits
        self._conn.execute("PRAGMA synchronous = NORMAL")
        # checkpoint (and sync the main file) every ~40 MB of log instead of every 4 MB: fewer stalls mid-run
        self._conn.execute("PRAGMA wal_autocheckpoint = 10000")
        self._retry(lambda: self._conn.executescript(self.SCHEMA))

    @staticmethod
    def _retry(fn, attempts: int = 50):
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as e:  # "database is locked" while another process sets up
                if "locked" not in str(e) or i == attempts - 1:
                    raise
                time.sleep(0.05 * (i + 1))

    def execute(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._retry(lambda: self._conn.execute(sql, tuple(args)).fetchall())

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        """Insert many rows in one transaction (one commit: the cost of a write is mostly the commit)."""
        def go():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

        with self._lock:
            self._retry(go)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ResponseCache(_SQLite):
    """Content-addressed cache of completions (see module docstring)."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS responses (
        key TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        identity TEXT NOT NULL,
        deployment TEXT,
        completion TEXT NOT NULL
    );
    """

    def __init__(self, path: str | Path | None = None):
        super().__init__(Path(path) if path else default_cache_path())
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(identity: dict[str, Any], body: dict[str, Any], repeat: int = 0) -> str:
        # identity holds no secret by construction; redact_obj is a second line of defence
        return content_hash(_safe_identity(canonical_json(identity)), body, repeat)

    def get(self, key: str) -> Completion | None:
        rows = self.execute("SELECT completion FROM responses WHERE key = ?", (key,))
        if not rows:
            self.misses += 1
            return None
        self.hits += 1
        return Completion.model_validate_json(rows[0][0])

    _PUT = "INSERT OR REPLACE INTO responses (key, created_at, identity, deployment, completion) VALUES (?, ?, ?, ?, ?)"

    def put(self, key: str, completion: Completion, identity: dict[str, Any]) -> None:
        self.put_many([(key, completion, identity)])

    def put_many(self, items: list[tuple[str, Completion, dict[str, Any]]]) -> None:
        now = time.time()
        self.executemany(self._PUT, [(key, now, canonical_json(_safe_identity(canonical_json(identity))),
                                      c.deployment, c.model_dump_json()) for key, c, identity in items])

    def __len__(self) -> int:
        return self.execute("SELECT COUNT(*) FROM responses")[0][0]

    def clear(self) -> None:
        self.execute("DELETE FROM responses")


class RunStore(_SQLite):
    """The results of one run, one row per cell, written as each cell finishes."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS cells (
        cell_key TEXT PRIMARY KEY,
        case_id TEXT NOT NULL,
        variant TEXT NOT NULL,
        target TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        record TEXT NOT NULL
    );
    """
    FILENAME = "results.sqlite"

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        super().__init__(self.run_dir / self.FILENAME)

    def set_meta(self, key: str, value: Any) -> None:
        self.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, canonical_json(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self.execute("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    # rowid keeps arrival order; a replaced error row keeps its first position
    _PUT = """INSERT INTO cells (cell_key, case_id, variant, target, repeat, outcome, record)
              VALUES (?, ?, ?, ?, ?, ?, ?)
              ON CONFLICT(cell_key) DO UPDATE SET outcome = excluded.outcome, record = excluded.record"""

    def put(self, record: CellResult) -> None:
        self.put_many([record])

    def put_many(self, records: list[CellResult]) -> None:
        self.executemany(self._PUT, [(r.cell_key, r.case_id, r.variant, r.target, r.repeat, r.outcome,
                                      r.model_dump_json()) for r in records])

    def done_keys(self) -> set[str]:
        rows = self.execute("SELECT cell_key FROM cells WHERE outcome != 'error'")
        return {r[0] for r in rows}

    def records(self) -> list[CellResult]:
        rows = self.execute("SELECT record FROM cells ORDER BY rowid")
        return [CellResult.model_validate_json(r[0]) for r in rows]

    def counts(self) -> dict[str, int]:
        return {outcome: n for outcome, n in self.execute("SELECT outcome, COUNT(*) FROM cells GROUP BY outcome")}
