"""Durable storage: the response cache and the per-run result store, both SQLite.

SQLite in WAL mode gives what a long run needs: every result is committed as it arrives, a process killed
at any instant (Ctrl-C, an exception, ``kill -9``) leaves only whole rows behind, and several processes can
share one cache or run store (readers never block; writers wait up to ``busy_timeout``).

- :class:`ResponseCache` is content-addressed: the key is a hash of the backend identity (kind, endpoint,
  api-version - never a key or token), the full request body (deployment, messages, parameters) and the
  repeat index. Only completed answers are cached, never errors.
- The run ledger (one row per logical cell of one run, ``results.sqlite`` in the run folder) is
  :class:`workbench.ledger.RunLedger`, built on :class:`_SQLite` below.

A damaged file is never a raw ``sqlite3.DatabaseError``: a damaged response cache is moved aside (renamed with
the time, named in a :class:`~workbench.errors.CacheCorrupt` warning) and a fresh one started - it only holds
copies of answers; a damaged run ledger stops with a :class:`~workbench.errors.LedgerError` naming the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import warnings
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import CacheCorrupt
from .records import Completion
from .secrets import redact_obj

log = logging.getLogger("workbench.store")


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


def is_damage(e: BaseException) -> bool:
    """A file that is not a database, or a damaged one - as opposed to a busy or locked one."""
    if not isinstance(e, sqlite3.DatabaseError):
        return False
    text = str(e).lower()
    return not isinstance(e, sqlite3.OperationalError) or "malformed" in text or "not a database" in text


def damaged_name(path: Path) -> Path:
    """Where a damaged file is moved: next to it, named with the time (``responses.sqlite.damaged-20250101T120000``)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    return path.with_name(f"{path.name}.damaged-{stamp}")


class _SQLite:
    """A connection shared by the threads of one process, serialised by a lock (writes are tiny).

    Subclasses say what a damaged file means in :meth:`_damaged` (called with the ``sqlite3.DatabaseError``).
    """

    SCHEMA: str = ""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            if not is_damage(e):
                raise
            self._damaged(e, opening=True)
        except BaseException:
            self._close_quietly()
            raise

    def _open(self) -> None:
        self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA busy_timeout = 60000")
        self._retry(lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
        # NORMAL in WAL mode survives process crashes (kill -9); only an OS crash can lose the last commits
        self._conn.execute("PRAGMA synchronous = NORMAL")
        # checkpoint (and sync the main file) every ~40 MB of log instead of every 4 MB: fewer stalls mid-run
        self._conn.execute("PRAGMA wal_autocheckpoint = 10000")
        self._setup()

    def _setup(self) -> None:
        self._retry(lambda: self._conn.executescript(self.SCHEMA))

    def _damaged(self, error: sqlite3.DatabaseError, opening: bool = False) -> None:
        raise error

    def _close_quietly(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:  # pragma: no cover - closing a broken connection
                pass
        self._conn = None

    @staticmethod
    def _retry(fn, attempts: int = 50):
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as e:  # "database is locked" while another process sets up
                if "locked" not in str(e) or i == attempts - 1:
                    raise
                time.sleep(0.05 * (i + 1))

    def _guarded(self, fn):
        try:
            return self._retry(fn)
        except sqlite3.DatabaseError as e:
            if not is_damage(e):
                raise
            self._damaged(e)
            return None

    def execute(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._guarded(lambda: self._conn.execute(sql, tuple(args)).fetchall()) or []

    def transaction(self, fn):
        """Run ``fn(conn)`` in one write transaction (``BEGIN IMMEDIATE``: the write lock is taken at once, so
        two processes never interleave their reads and writes); returns what ``fn`` returns."""
        def go():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return out

        with self._lock:
            return self._guarded(go)

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        """Insert many rows in one transaction (one commit: the cost of a write is mostly the commit)."""
        self.transaction(lambda conn: conn.executemany(sql, rows))

    def close(self) -> None:
        with self._lock:
            self._close_quietly()

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
        self.hits = 0
        self.misses = 0
        self.disabled = False  # damaged while in use: this process goes on without it
        super().__init__(Path(path) if path else default_cache_path())

    def _damaged(self, error: sqlite3.DatabaseError, opening: bool = False) -> None:
        """A cache only holds copies of answers: never let a damaged one stop a run."""
        self._close_quietly()
        if not opening:  # other processes may have it open: do not move it under them, stop using it
            self.disabled = True
            warnings.warn(CacheCorrupt(
                f"The response cache {self.path} is damaged ({error}); this run goes on without it (answers are "
                f"not cached or reused). Move the file aside, or delete it, before the next run."), stacklevel=4)
            return
        moved = damaged_name(self.path)
        for suffix in ("", "-wal", "-shm"):
            src = self.path.with_name(self.path.name + suffix)
            if src.exists():
                src.replace(moved.with_name(moved.name + suffix))
        warnings.warn(CacheCorrupt(
            f"The response cache {self.path} was damaged ({error}); it was moved to {moved} and a fresh cache "
            f"started. Answers cached before are not reused; results already in run folders are not affected."),
            stacklevel=4)
        log.warning("response cache %s was damaged (%s); moved to %s", self.path, error, moved)
        self._open()

    @staticmethod
    def key(identity: dict[str, Any], body: dict[str, Any], repeat: int = 0) -> str:
        # identity holds no secret by construction; redact_obj is a second line of defence
        return content_hash(_safe_identity(canonical_json(identity)), body, repeat)

    def get(self, key: str) -> Completion | None:
        if self.disabled:
            return None
        rows = self.execute("SELECT completion FROM responses WHERE key = ?", (key,))
        if not rows:
            self.misses += 1
            return None
        self.hits += 1
        return Completion.model_validate_json(rows[0][0])

    def has(self, key: str) -> bool:
        return not self.disabled and bool(self.execute("SELECT 1 FROM responses WHERE key = ?", (key,)))

    _PUT = "INSERT OR REPLACE INTO responses (key, created_at, identity, deployment, completion) VALUES (?, ?, ?, ?, ?)"

    def put(self, key: str, completion: Completion, identity: dict[str, Any]) -> None:
        self.put_many([(key, completion, identity)])

    def put_many(self, items: list[tuple[str, Completion, dict[str, Any]]]) -> None:
        if self.disabled:
            return
        now = time.time()
        self.executemany(self._PUT, [(key, now, canonical_json(_safe_identity(canonical_json(identity))),
                                      c.deployment, c.model_dump_json()) for key, c, identity in items])

    def __len__(self) -> int:
        rows = [] if self.disabled else self.execute("SELECT COUNT(*) FROM responses")
        return rows[0][0] if rows else 0

    def clear(self) -> None:
        if not self.disabled:
            self.execute("DELETE FROM responses")


