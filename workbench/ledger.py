"""The run ledger: one row per logical cell of a run - what is planned, being sent, sent in a batch, done or
failed - shared safely by any number of processes working on one run folder (``results.sqlite``).

A cell is (experiment, case, variant, target label, repeat); its key is a hash of those five (and the
``custom_id`` of its Batch API line). The request it is sent as - endpoint, api-version, deployment, body -
is its *fingerprint*: recorded per cell, never part of its identity, so a re-run after the endpoint changed
finds the same cells and says what changed instead of adding a second copy of the matrix.

States::

    planned ──claim──► claimed ──answer──► done
       ▲                  │ └───failure──► error ──(next run)──► planned
       └─release / owner gone─┘
    claimed ──submit──► batch (batch_id) ──answer──► done | error

- **claim** runs in one ``BEGIN IMMEDIATE`` transaction (one writer at a time across processes): it takes the
  next planned cells, and the cells of owners that are gone, for one owner. An owner is one process's run
  (``host:pid:token``) with a heartbeat in ``owners``; its claims are live while the heartbeat is younger than
  its lease and, on this host, while its process exists. Nobody sends a cell whose claim is live elsewhere.
- **finish** writes a cell's record. A done cell is never overwritten: rows never exceed the plan, and a cell
  answered twice (only possible after a lost lease) keeps its first answer.
- Totals - spend, counts, cache hits - are sums over the rows, so every process reports the run's true totals.
- ``batch`` cells belong to a submitted Batch API job (``batch_id``); claims never take them.

Schema version 3. A version-1 folder (one row per request fingerprint, from before the ledger) is migrated when
opened, after a copy of it is kept as ``results.v1.sqlite``; version 2 gains the summary columns of version 3
(profile, deployment, model, system fingerprint, cached and reasoning tokens), filled from the records.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import LedgerError, RequestChanged
from .records import CellResult
from .store import _SQLite, canonical_json, content_hash, damaged_name, is_damage

LEDGER_SCHEMA_VERSION = 3  # 2: one row per logical cell; 3: + the columns totals and manifests are read from
FILENAME = "results.sqlite"
STATES = ("planned", "claimed", "batch", "done", "error")
DEFAULT_LEASE_S = 30.0


def cell_key(experiment: str, case_id: str, variant: str, target: str, repeat: int) -> str:
    """A logical cell's key: the same cell has the same key whatever endpoint or request it is sent as."""
    return content_hash(experiment, case_id, variant, target, int(repeat))[:32]


@dataclass
class PlannedRow:
    """What the plan knows about a cell before anything is sent."""

    key: str
    seq: int
    case_id: str
    variant: str
    target: str
    repeat: int
    fingerprint: str
    request: str  # canonical JSON of the request's identity: backend, endpoint, api_version, deployment


@dataclass
class SyncReport:
    """What :meth:`RunLedger.sync_plan` found: new cells, cells whose request changed, cells to (re)send."""

    new: int = 0
    pending: int = 0
    done: int = 0
    changed: int = 0
    resent: int = 0
    adopted: int = 0  # migrated cells with no fingerprint: their request is taken as today's
    changes: list[str] = field(default_factory=list)


def _describe_change(old: str | None, new: str) -> str:
    """``endpoint http://127.0.0.1:5001 -> http://127.0.0.1:5002`` for what differs between two request JSONs."""
    try:
        a, b = json.loads(old or "{}"), json.loads(new)
    except ValueError:
        a, b = {}, {}
    diffs = [f"{k} {a.get(k)} -> {b.get(k)}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return "; ".join(diffs) if diffs else "the request body (messages or parameters)"


def _host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except OSError:
        return False
    return True


class RunLedger(_SQLite):
    """The ledger of one run folder (see the module docstring). Opening it creates or migrates the file."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS cells (
        cell_key TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        case_id TEXT NOT NULL,
        variant TEXT NOT NULL,
        target TEXT NOT NULL,
        repeat INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'planned',
        fingerprint TEXT,
        request TEXT,
        owner TEXT,
        claimed_at REAL,
        batch_id TEXT,
        claims INTEGER NOT NULL DEFAULT 0,
        outcome TEXT,
        cost_usd REAL,
        spent_usd REAL NOT NULL DEFAULT 0,
        cache_hit INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        rate_limited INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        latency_s REAL,
        scores TEXT,
        finished_at TEXT,
        record TEXT,
        profile TEXT,
        deployment TEXT,
        model TEXT,
        system_fingerprint TEXT,
        cached_tokens INTEGER,
        reasoning_tokens INTEGER
    );
    CREATE INDEX IF NOT EXISTS cells_by_state ON cells(state, seq);
    CREATE INDEX IF NOT EXISTS cells_by_owner ON cells(owner) WHERE owner IS NOT NULL;
    CREATE TABLE IF NOT EXISTS batches (
        submission TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        target TEXT NOT NULL,
        profile TEXT NOT NULL,
        deployment TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        lines INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        state TEXT NOT NULL DEFAULT 'reserved',
        file_id TEXT,
        batch_id TEXT,
        status TEXT,
        counts TEXT,
        output_file_id TEXT,
        error_file_id TEXT,
        errors TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        estimate_usd REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE IF NOT EXISTS owners (
        owner TEXT PRIMARY KEY,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        lease_s REAL NOT NULL,
        finished_at REAL,
        status TEXT
    );
    """
    FILENAME = FILENAME

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        super().__init__(self.run_dir / FILENAME)

    # -- opening, versions, damage -------------------------------------------------------------------------
    def _setup(self) -> None:
        conn = self._conn
        version = self._version()
        if version is not None and version > LEDGER_SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path} was written by a newer workbench (ledger schema {version}; this one reads up to "
                f"{LEDGER_SCHEMA_VERSION}). Upgrade the workbench, or use another run folder (--out / out=).",
                self.path)
        if self._is_v1():
            self._migrate_v1()
        self._retry(lambda: conn.executescript(self.SCHEMA))
        if version is not None and version < LEDGER_SCHEMA_VERSION:
            self._retry(self._add_columns)
        self._retry(lambda: conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('ledger_schema', ?)",
                                         (canonical_json(LEDGER_SCHEMA_VERSION),)))

    def _version(self) -> int | None:
        conn = self._conn
        if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").fetchone():
            return None
        row = conn.execute("SELECT value FROM meta WHERE key = 'ledger_schema'").fetchone()
        return json.loads(row[0]) if row else None

    _V3_COLUMNS = {"profile": "TEXT", "deployment": "TEXT", "model": "TEXT", "system_fingerprint": "TEXT",
                   "cached_tokens": "INTEGER", "reasoning_tokens": "INTEGER"}

    def _add_columns(self) -> None:
        """Schema 2 -> 3: the summary columns, filled once from the stored records."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            have = {r[1] for r in conn.execute("PRAGMA table_info(cells)")}
            for name, kind in self._V3_COLUMNS.items():
                if name not in have:
                    conn.execute(f"ALTER TABLE cells ADD COLUMN {name} {kind}")
            conn.execute("UPDATE cells SET " + ", ".join(f"{n} = json_extract(record, '$.{n}')"
                                                        for n in self._V3_COLUMNS) + " WHERE record IS NOT NULL")
            conn.execute("UPDATE meta SET value = ? WHERE key = 'ledger_schema'",
                         (canonical_json(LEDGER_SCHEMA_VERSION),))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _is_v1(self) -> bool:
        cols = {r[1] for r in self._conn.execute("PRAGMA table_info(cells)")}
        return bool(cols) and "state" not in cols

    def _damaged(self, error: sqlite3.DatabaseError, opening: bool = False) -> None:
        aside = damaged_name(self.path)
        raise LedgerError(
            f"The run ledger {self.path} is damaged ({error}); the results in it cannot be read. To recover, move it "
            f"aside and run the same command again: `mv {self.path} {aside}` - answers already paid for come back "
            f"from the response cache, not paid again. Or run into a new folder (--out / out=).", self.path) from error

    def _migrate_v1(self) -> None:
        """One row per request fingerprint (version 1) -> one row per logical cell: keep the done row of each cell
        (the latest, if several), else its latest error. A copy of the old file is kept as results.v1.sqlite."""
        conn = self._conn
        backup = self.path.with_name("results.v1.sqlite")
        if not backup.exists():
            with sqlite3.connect(str(backup)) as dest:
                conn.backup(dest)  # a consistent copy, write-ahead log included
            dest.close()
        conn.execute("BEGIN IMMEDIATE")
        try:
            if not self._is_v1():  # another process migrated it while we waited for the lock
                conn.execute("COMMIT")
                return
            old = conn.execute("SELECT record FROM cells ORDER BY rowid").fetchall()
            keep: dict[str, tuple[int, dict[str, Any]]] = {}
            for seq, (raw,) in enumerate(old):
                rec = json.loads(raw)
                key = cell_key(rec.get("experiment", ""), rec["case_id"], rec["variant"], rec["target"],
                               rec["repeat"])
                prev = keep.get(key)
                if prev is None or rec.get("outcome") != "error" or prev[1].get("outcome") == "error":
                    rec["cell_key"] = key
                    keep[key] = (prev[0] if prev else seq, rec)
            conn.execute("ALTER TABLE cells RENAME TO cells_v1")
            for stmt in self.SCHEMA.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            for key, (seq, rec) in keep.items():
                self._insert_finished(conn, key, seq, CellResult.model_validate(rec))
            conn.execute("DROP TABLE cells_v1")
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('ledger_schema', ?)",
                         (canonical_json(LEDGER_SCHEMA_VERSION),))
            conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('migrated_from', ?)",
                         (canonical_json({"schema": 1, "rows": len(old), "cells": len(keep),
                                          "backup": backup.name}),))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @staticmethod
    def _insert_finished(conn: sqlite3.Connection, key: str, seq: int, rec: CellResult) -> None:
        conn.execute(
            "INSERT INTO cells (cell_key, seq, case_id, variant, target, repeat, state) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, seq, rec.case_id, rec.variant, rec.target, rec.repeat, "planned"))
        conn.execute(RunLedger._FINISH, RunLedger._finish_args(rec, rec.cost_usd if not rec.cache_hit else 0.0))

    # -- meta ----------------------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, canonical_json(value)))

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self.execute("SELECT value FROM meta WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    # -- the plan ------------------------------------------------------------------------------------------
    def sync_plan(self, rows: Iterable[PlannedRow], *, resend_changed: bool = False, chunk: int = 500) -> SyncReport:
        """Bring the ledger up to the plan in one transaction: insert new cells, put failed cells back to
        planned (a re-run retries errors), and compare every finished cell's request fingerprint with today's.

        A finished cell whose request changed (another endpoint, api-version, deployment or body) is refused
        with :class:`RequestChanged` unless ``resend_changed``: then it goes back to planned and is sent again.
        """
        report = SyncReport()

        def go(conn: sqlite3.Connection) -> SyncReport:
            batch: list[PlannedRow] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= chunk:
                    self._sync_chunk(conn, batch, report, resend_changed)
                    batch = []
            if batch:
                self._sync_chunk(conn, batch, report, resend_changed)
            if report.changed and not resend_changed:
                raise RequestChanged(self._changed_message(report), report.changes, report.changed)
            conn.execute("UPDATE cells SET state = 'planned' WHERE state = 'error'")
            return report

        return self.transaction(go)

    def _sync_chunk(self, conn: sqlite3.Connection, batch: list[PlannedRow], report: SyncReport,
                    resend_changed: bool) -> None:
        marks = ",".join("?" * len(batch))
        existing = {k: (state, fp, req, seq) for k, state, fp, req, seq in conn.execute(
            f"SELECT cell_key, state, fingerprint, request, seq FROM cells WHERE cell_key IN ({marks})",
            [r.key for r in batch])}
        new, refresh, resend = [], [], []
        for r in batch:
            old = existing.get(r.key)
            if old is None:
                new.append((r.key, r.seq, r.case_id, r.variant, r.target, r.repeat, r.fingerprint, r.request))
                continue
            state, fp, req, seq = old
            if state == "done":
                report.done += 1
            if fp == r.fingerprint:
                if req != r.request or seq != r.seq:
                    refresh.append((r.fingerprint, r.request, r.seq, r.key))
                continue
            if state != "done" or fp is None:  # nothing stored was answered to another request
                report.adopted += fp is None and state == "done"
                refresh.append((r.fingerprint, r.request, r.seq, r.key))
                continue
            report.changed += 1
            change = _describe_change(req, r.request)
            if change not in report.changes:
                report.changes.append(change)
            if resend_changed:
                resend.append((r.fingerprint, r.request, r.seq, r.key))
        if new:
            conn.executemany("INSERT INTO cells (cell_key, seq, case_id, variant, target, repeat, fingerprint, "
                             "request) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", new)
            report.new += len(new)
        if refresh:
            conn.executemany("UPDATE cells SET fingerprint = ?, request = ?, seq = ? WHERE cell_key = ?", refresh)
        if resend:
            conn.executemany("UPDATE cells SET fingerprint = ?, request = ?, seq = ?, state = 'planned' "
                             "WHERE cell_key = ?", resend)
            report.resent += len(resend)
            report.done -= len(resend)

    def _changed_message(self, report: SyncReport) -> str:
        shown = "; ".join(report.changes[:3]) + (f" (and {len(report.changes) - 3} more)" if len(report.changes) > 3
                                                   else "")
        return (f"{report.changed} finished cell{'s' if report.changed != 1 else ''} in {self.run_dir} would now be "
                f"sent with a different request: {shown}. Their stored answers came from the old request, so this "
                f"run folder would mix the two. Use a new run folder (--out / out=) to keep both, or re-send just "
                f"the changed cells into this one with `workbench eval --resend-changed` (Python: "
                f"run(..., resend_changed=True)).")

    # -- owners and claims ---------------------------------------------------------------------------------
    def register_owner(self, lease_s: float = DEFAULT_LEASE_S) -> str:
        """A new owner id for this process's run, with a first heartbeat."""
        owner = f"{_host()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        now = time.time()
        self.execute("INSERT INTO owners (owner, host, pid, started_at, heartbeat_at, lease_s) "
                     "VALUES (?, ?, ?, ?, ?, ?)", (owner, _host(), os.getpid(), now, now, lease_s))
        return owner

    def heartbeat(self, owner: str) -> None:
        self.execute("UPDATE owners SET heartbeat_at = ? WHERE owner = ?", (time.time(), owner))

    def finish_owner(self, owner: str, status: str) -> None:
        """This owner is done: its unsent claims go back to planned for anyone to take."""
        def go(conn: sqlite3.Connection) -> None:
            conn.execute("UPDATE cells SET state = 'planned', owner = NULL, claimed_at = NULL "
                         "WHERE owner = ? AND state = 'claimed'", (owner,))
            conn.execute("UPDATE owners SET finished_at = ?, status = ? WHERE owner = ?", (time.time(), status, owner))
        self.transaction(go)

    def _live_owners(self, conn: sqlite3.Connection, now: float) -> set[str]:
        """Owners whose claims hold: unfinished, heartbeat younger than the lease, and (on this host) alive."""
        host = _host()
        return {owner for owner, h, pid, beat, lease in conn.execute(
            "SELECT owner, host, pid, heartbeat_at, lease_s FROM owners WHERE finished_at IS NULL")
            if beat + lease >= now and (h != host or _pid_alive(pid))}

    def claim(self, owner: str, limit: int) -> list[tuple[str, int]]:
        """Claim up to ``limit`` cells for ``owner`` in plan order: planned ones, and those claimed by owners that
        are gone. Returns ``(cell_key, seq)`` pairs; nobody else sends them while ``owner`` heartbeats."""
        now = time.time()

        def go(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            rows = conn.execute("SELECT cell_key, seq FROM cells WHERE state = 'planned' ORDER BY seq LIMIT ?",
                                (limit,)).fetchall()
            if len(rows) < limit:
                live = self._live_owners(conn, now) | {owner}
                marks = ",".join("?" * len(live))
                rows += conn.execute(f"SELECT cell_key, seq FROM cells WHERE state = 'claimed' AND owner NOT IN "
                                     f"({marks}) ORDER BY seq LIMIT ?", (*live, limit - len(rows))).fetchall()
            if rows:
                conn.executemany("UPDATE cells SET state = 'claimed', owner = ?, claimed_at = ?, claims = claims + 1 "
                                 "WHERE cell_key = ?", [(owner, now, k) for k, _ in rows])
            return rows

        return self.transaction(go) or []

    def busy_elsewhere(self, owner: str) -> int:
        """Cells claimed by other owners that are alive: their answers are on the way."""
        def go() -> int:
            live = self._live_owners(self._conn, time.time()) - {owner}
            if not live:
                return 0
            marks = ",".join("?" * len(live))
            return self._conn.execute(f"SELECT COUNT(*) FROM cells WHERE state = 'claimed' AND owner IN ({marks})",
                                      tuple(live)).fetchone()[0]

        with self._lock:
            return self._guarded(go) or 0

    def live_owners(self) -> list[str]:
        with self._lock:
            return sorted(self._guarded(lambda: self._live_owners(self._conn, time.time())) or ())

    def release(self, keys: Sequence[str], owner: str) -> None:
        """Give claimed cells back (a stopping run that did not send them)."""
        self.executemany("UPDATE cells SET state = 'planned', owner = NULL, claimed_at = NULL "
                         "WHERE cell_key = ? AND owner = ? AND state = 'claimed'", [(k, owner) for k in keys])

    # -- batches (the Batch API builds on these) ----------------------------------------------------------
    def submit_batch(self, keys: Sequence[str], batch_id: str, owner: str) -> int:
        """Mark claimed cells as sent in batch ``batch_id`` (their batch lines' ``custom_id`` is the cell key)."""
        def go(conn: sqlite3.Connection) -> int:
            cur = conn.executemany("UPDATE cells SET state = 'batch', batch_id = ?, owner = NULL "
                                   "WHERE cell_key = ? AND owner = ? AND state = 'claimed'",
                                   [(batch_id, k, owner) for k in keys])
            return cur.rowcount
        return self.transaction(go) or 0

    def batch_cells(self, batch_id: str) -> list[str]:
        return [r[0] for r in self.execute("SELECT cell_key FROM cells WHERE batch_id = ? AND state = 'batch' "
                                           "ORDER BY seq", (batch_id,))]

    def batch_cell_seqs(self, submission: str) -> dict[str, int]:
        """Cell key -> plan position of the cells still waiting on batch ``submission``."""
        return dict(self.execute("SELECT cell_key, seq FROM cells WHERE batch_id = ? AND state = 'batch'",
                                 (submission,)))

    BATCH_FIELDS = ("state", "file_id", "batch_id", "status", "counts", "output_file_id", "error_file_id", "errors",
                    "attempts", "estimate_usd")

    def reserve_batch(self, submission: str, keys: Sequence[str], info: dict[str, Any]) -> list[str]:
        """Record a submission and move its planned cells to ``batch`` in one transaction, before anything is
        uploaded: a process killed at any later point leaves a row that says how far it got, and the cells are
        never claimed or submitted again. Returns the keys it took (cells another process took are left out)."""
        def go(conn: sqlite3.Connection) -> list[str]:
            taken: list[str] = []
            for i in range(0, len(keys), 500):
                chunk = list(keys[i:i + 500])
                marks = ",".join("?" * len(chunk))
                taken += [r[0] for r in conn.execute(
                    f"SELECT cell_key FROM cells WHERE state = 'planned' AND cell_key IN ({marks})", chunk)]
            if not taken:
                return []
            conn.executemany("UPDATE cells SET state = 'batch', batch_id = ?, owner = NULL WHERE cell_key = ?",
                             [(submission, k) for k in taken])
            now = time.time()
            seq = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM batches").fetchone()[0]
            conn.execute("INSERT INTO batches (submission, seq, target, profile, deployment, endpoint, lines, bytes, "
                         "estimate_usd, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (submission, seq, info["target"], info["profile"], info["deployment"], info["endpoint"],
                          len(taken), int(info.get("bytes", 0)), info.get("estimate_usd"), now, now))
            return taken
        return self.transaction(go) or []

    def update_batch(self, submission: str, **fields: Any) -> None:
        bad = [k for k in fields if k not in self.BATCH_FIELDS]
        if bad:
            raise LedgerError(f"no batch field {bad[0]!r}; fields: {', '.join(self.BATCH_FIELDS)}", self.path)
        values = [canonical_json(v) if isinstance(v, (dict, list)) else v for v in fields.values()]
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.execute(f"UPDATE batches SET {sets}, updated_at = ? WHERE submission = ?",
                     (*values, time.time(), submission))

    def batch_jobs(self) -> list[dict[str, Any]]:
        """Every submission of this run folder, in order: its files, provider ids, status and counts."""
        cols = ("submission", "seq", "target", "profile", "deployment", "endpoint", "lines", "bytes", "state",
                "file_id", "batch_id", "status", "counts", "output_file_id", "error_file_id", "errors", "attempts",
                "estimate_usd", "created_at", "updated_at")
        out = []
        for row in self.execute(f"SELECT {', '.join(cols)} FROM batches ORDER BY seq"):
            job = dict(zip(cols, row))
            for k in ("counts", "errors"):
                job[k] = json.loads(job[k]) if job[k] else None
            out.append(job)
        return out

    def planned_keys(self) -> list[tuple[str, int]]:
        """(cell key, plan position) of the cells nobody has claimed, finished or submitted, in plan order."""
        return [(k, s) for k, s in self.execute("SELECT cell_key, seq FROM cells WHERE state = 'planned' ORDER BY seq")]

    # -- results -------------------------------------------------------------------------------------------
    _FINISH = """UPDATE cells SET state = ?, outcome = ?, record = ?, cost_usd = ?, spent_usd = ?, cache_hit = ?,
                 retries = ?, rate_limited = ?, prompt_tokens = ?, completion_tokens = ?, latency_s = ?, scores = ?,
                 finished_at = ?, profile = ?, deployment = ?, model = ?, system_fingerprint = ?, cached_tokens = ?,
                 reasoning_tokens = ?, owner = NULL, claimed_at = NULL, batch_id = NULL
                 WHERE cell_key = ? AND state != 'done'"""

    @staticmethod
    def _finish_args(r: CellResult, spent: float | None) -> tuple:
        scores = {s.scorer: [s.value, s.passed, s.outcome] for s in r.scores} if r.scores else None
        return ("error" if r.outcome == "error" else "done", r.outcome, r.model_dump_json(), r.cost_usd,
                spent or 0.0, int(r.cache_hit), r.retries, getattr(r, "rate_limited", 0) or 0, r.prompt_tokens,
                r.completion_tokens, r.latency_s, canonical_json(scores) if scores else None, r.finished_at,
                r.profile, r.deployment, r.model, r.system_fingerprint, r.cached_tokens, r.reasoning_tokens,
                r.cell_key)

    def finish_many(self, results: Sequence[tuple[CellResult, float]]) -> None:
        """Store finished cells, each with what was paid for it here (0 for a cache hit), in one transaction."""
        if results:
            self.executemany(self._FINISH, [self._finish_args(r, spent) for r, spent in results])

    def put_many(self, records: Sequence[CellResult]) -> None:
        """Store finished cells that were planned by :meth:`sync_plan` (or add them, for imported records)."""
        def go(conn: sqlite3.Connection) -> None:
            for r in records:
                cur = conn.execute(self._FINISH, self._finish_args(r, r.cost_usd if not r.cache_hit else 0.0))
                if cur.rowcount == 0 and not conn.execute("SELECT 1 FROM cells WHERE cell_key = ?",
                                                          (r.cell_key,)).fetchone():
                    seq = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM cells").fetchone()[0]
                    self._insert_finished(conn, r.cell_key, seq, r)
        self.transaction(go)

    def put(self, record: CellResult) -> None:
        self.put_many([record])

    def pending_seqs(self) -> list[int]:
        """Plan positions of the cells nobody has finished or submitted in a batch."""
        return [r[0] for r in self.execute("SELECT seq FROM cells WHERE state IN ('planned', 'claimed', 'error') "
                                           "ORDER BY seq")]

    def pending_targets(self) -> list[str]:
        return [r[0] for r in self.execute("SELECT target FROM cells WHERE state IN ('planned', 'claimed', 'error') "
                                           "GROUP BY target ORDER BY MIN(seq)")]

    def state_of(self, key: str) -> str | None:
        rows = self.execute("SELECT state FROM cells WHERE cell_key = ?", (key,))
        return rows[0][0] if rows else None

    def done_keys(self) -> set[str]:
        return {r[0] for r in self.execute("SELECT cell_key FROM cells WHERE state = 'done'")}

    def __len__(self) -> int:
        """Cells with a stored record (done or failed)."""
        return self.execute("SELECT COUNT(*) FROM cells WHERE record IS NOT NULL")[0][0]

    def iter_records(self, page: int = 1000, outcome: str | None = None) -> Iterator[CellResult]:
        """Stored records in plan order (only ``outcome`` ones if given), read a page at a time: memory stays
        flat in the run's size."""
        last: tuple[int, str] = (-1, "")
        only = "AND outcome = ?" if outcome is not None else ""
        while True:
            rows = self.execute(f"SELECT seq, cell_key, record FROM cells WHERE record IS NOT NULL {only} AND "
                                f"(seq, cell_key) > (?, ?) ORDER BY seq, cell_key LIMIT ?",
                                (*((outcome,) if outcome is not None else ()), *last, page))
            if not rows:
                return
            for _seq, _key, raw in rows:
                yield CellResult.model_validate_json(raw)
            last = rows[-1][0], rows[-1][1]

    def records(self) -> list[CellResult]:
        return list(self.iter_records())

    def records_for(self, keys: Iterable[str], chunk: int = 500) -> list[CellResult]:
        """The stored records of the cells with these keys (:func:`cell_key`), e.g. the reviewed ones."""
        keys = list(keys)
        out: list[CellResult] = []
        for i in range(0, len(keys), chunk):
            part = keys[i:i + chunk]
            rows = self.execute(f"SELECT record FROM cells WHERE record IS NOT NULL AND cell_key IN "
                                f"({', '.join('?' * len(part))}) ORDER BY seq", tuple(part))
            out.extend(CellResult.model_validate_json(raw) for (raw,) in rows)
        return out

    def iter_rows(self, columns: Sequence[str], page: int = 5000) -> Iterator[tuple]:
        """Selected summary columns of the stored cells (no record parsing), a page at a time."""
        allowed = {"cell_key", "seq", "case_id", "variant", "target", "repeat", "state", "outcome", "cost_usd",
                   "spent_usd", "cache_hit", "retries", "rate_limited", "prompt_tokens", "completion_tokens",
                   "latency_s", "scores", "finished_at", "fingerprint"}
        bad = [c for c in columns if c not in allowed]
        if bad:
            raise LedgerError(f"no ledger column {bad[0]!r}; columns: {', '.join(sorted(allowed))}", self.path)
        last: tuple[int, str] = (-1, "")
        cols = ", ".join(columns)
        while True:
            rows = self.execute(f"SELECT seq, cell_key, {cols} FROM cells WHERE record IS NOT NULL AND "
                                f"(seq, cell_key) > (?, ?) ORDER BY seq, cell_key LIMIT ?", (*last, page))
            if not rows:
                return
            for row in rows:
                yield row[2:]
            last = rows[-1][0], rows[-1][1]

    def stream(self, sql: str, args: Sequence[Any] = (), page: int = 2000) -> Iterator[tuple]:
        """Rows of a read-only query, a page at a time, on a connection of their own (a sorted scan is not
        restarted for every page, and the writers of this process are not held up)."""
        conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60, check_same_thread=False)
        try:
            cur = conn.execute(sql, tuple(args))
            while True:
                rows = cur.fetchmany(page)
                if not rows:
                    return
                yield from rows
        except sqlite3.DatabaseError as e:
            if is_damage(e):
                self._damaged(e)
            raise
        finally:
            conn.close()

    def iter_scores(self, scorer: str) -> Iterator[tuple[str, str, str, Any, Any, Any, Any, str | None]]:
        """``(variant, target, case_id, score, cost_usd, prompt_tokens, completion_tokens, verdict)`` per stored
        cell, in the order of ``Results.df`` (case, variant, target, repeat): what a summary needs, no record
        parsed."""
        sql = ("SELECT variant, target, case_id, scores, cost_usd, prompt_tokens, completion_tokens FROM cells "
               "WHERE record IS NOT NULL ORDER BY case_id, variant, target, repeat")
        for variant, target, case_id, scores, cost, pt, ct in self.stream(sql):
            value, _passed, *verdict = (json.loads(scores).get(scorer) if scores else None) or (None, None)
            yield variant, target, case_id, value, cost, pt, ct, (verdict[0] if verdict else None)

    def first_errors(self, limit: int = 5) -> list[CellResult]:
        """The first failed cells in the order of ``Results.df``."""
        return [CellResult.model_validate_json(r[0]) for r in self.execute(
            "SELECT record FROM cells WHERE outcome = 'error' ORDER BY case_id, variant, target, repeat LIMIT ?",
            (limit,))]

    def counts(self) -> dict[str, int]:
        """Stored cells by outcome (``ok``, ``length``, ..., ``error``)."""
        return {o: n for o, n in self.execute(
            "SELECT outcome, COUNT(*) FROM cells WHERE outcome IS NOT NULL GROUP BY outcome")}

    def states(self) -> dict[str, int]:
        return {s: n for s, n in self.execute("SELECT state, COUNT(*) FROM cells GROUP BY state")}

    def totals(self) -> dict[str, Any]:
        """The run's true totals, whoever sent the cells: counts by state, spend, cache hits, 429s, retries."""
        row = self.execute(
            "SELECT COUNT(*), COUNT(record), SUM(state = 'done'), SUM(outcome = 'error'), COALESCE(SUM(spent_usd), 0), "
            "SUM(CASE WHEN record IS NOT NULL THEN cost_usd END), COALESCE(SUM(cache_hit), 0), "
            "COALESCE(SUM(rate_limited), 0), COALESCE(SUM(retries), 0), "
            "SUM(outcome IN ('completion_filtered', 'prompt_filtered')) FROM cells")[0]
        states = self.states()
        return {"cells": row[0], "stored": row[1], "done": row[2] or 0, "errors": row[3] or 0,
                "spent_usd": float(row[4] or 0.0), "cost_usd": row[5], "cache_hits": row[6], "rate_limited": row[7],
                "retries": row[8], "filtered": row[9] or 0,
                "planned": states.get("planned", 0), "claimed": states.get("claimed", 0),
                "batch": states.get("batch", 0)}

    def record_totals(self) -> dict[str, Any]:
        """Sums over the stored records, as a manifest reports them (calls, outcomes, tokens, cost, spend)."""
        row = self.execute(
            "SELECT COUNT(*), COALESCE(SUM(outcome = 'ok'), 0), COALESCE(SUM(outcome = 'error'), 0), "
            "COALESCE(SUM(outcome IN ('completion_filtered', 'prompt_filtered')), 0), COALESCE(SUM(cache_hit), 0), "
            "COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), COALESCE(SUM(cached_tokens), 0), "
            "COALESCE(SUM(reasoning_tokens), 0), COUNT(cost_usd), SUM(cost_usd), "
            "SUM(CASE WHEN cache_hit = 0 THEN cost_usd END) FROM cells WHERE record IS NOT NULL")[0]
        names = ("calls", "ok", "errors", "filtered", "cache_hits", "prompt_tokens", "completion_tokens",
                 "cached_tokens", "reasoning_tokens")
        out: dict[str, Any] = dict(zip(names, (int(v) for v in row[:9])))
        priced = row[9] > 0
        out["cost_usd"] = float(row[10]) if priced else None
        out["spent_usd"] = float(row[11] or 0.0) if priced else None
        return out

    def target_facts(self) -> list[dict[str, Any]]:
        """Per target (in plan order): profile, deployment, model, calls, and the system fingerprints seen."""
        out: dict[str, dict[str, Any]] = {}
        for target, profile, deployment, model, fp, n in self.execute(
                "SELECT target, profile, deployment, model, system_fingerprint, COUNT(*) FROM cells "
                "WHERE record IS NOT NULL GROUP BY target, system_fingerprint ORDER BY MIN(seq)"):
            t = out.setdefault(target, {"target": target, "profile": profile, "deployment": deployment,
                                        "model": model, "calls": 0, "system_fingerprints": []})
            t["calls"] += n
            if fp and fp not in t["system_fingerprints"]:
                t["system_fingerprints"].append(fp)
        for t in out.values():
            t["system_fingerprints"].sort()
        return list(out.values())

    def scorer_names(self) -> list[str]:
        names: dict[str, None] = {}
        for (raw,) in self.execute("SELECT DISTINCT scores FROM cells WHERE scores IS NOT NULL"):
            for name in json.loads(raw):
                names.setdefault(name, None)
        return list(names)

    def distinct(self, column: str) -> list[str]:
        if column not in ("variant", "target", "case_id"):
            raise LedgerError(f"distinct({column!r}): use variant, target or case_id", self.path)
        return [r[0] for r in self.execute(f"SELECT {column} FROM cells WHERE record IS NOT NULL GROUP BY {column} "
                                           f"ORDER BY MIN(seq)")]


RunStore = RunLedger  # the name before the ledger; notebooks may still use it


def open_ledger(run_dir: str | Path) -> RunLedger:
    """The ledger of an existing run folder (:class:`LedgerError` naming the folder if there is none)."""
    run_dir = Path(run_dir)
    if not (run_dir / FILENAME).is_file():
        raise LedgerError(f"{run_dir} holds no results ({FILENAME} is missing): is it a run folder?", run_dir)
    return RunLedger(run_dir)
