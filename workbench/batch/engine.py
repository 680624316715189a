"""Run an experiment through the provider's Batch API: submit, track in the run ledger, merge by ``custom_id``.

The steps, each durable in the ledger before the next one starts (so Ctrl-C, a kernel restart or kill -9 at any
point is resumed by :func:`resume` / ``workbench batch resume RUN`` without a line submitted twice):

1. **answer from the cache** the planned cells whose request the response cache already holds;
2. **plan files** (:mod:`workbench.batch.files`): one per target and deployment, cut at the limits, checked;
   the budget gate prices them at batch rates;
3. **reserve** each file's cells in the ledger (state ``batch``, one transaction with the submission's row);
4. **upload** the file (``files.create(purpose="batch")``), record its id; **create** the batch with the
   submission id in its ``metadata``, record the batch id. A process killed between create and record is
   found again by that metadata (``batches.list``) instead of being created twice;
5. **poll** (``batches.retrieve``; Azure: no more often than every 60 s by default) until each batch ends;
   a fast failure of Azure's enqueued-token quota (``token_limit_exceeded``) is created again, with backoff;
6. **merge** the output and error files by ``custom_id`` (any order): answers go into the ledger and the
   response cache (so an online re-run is free), error lines and the cells a failed, expired or cancelled batch
   never ran become error cells with their code and message. Running the experiment again (batch or online)
   sends only those.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

from ..errors import BatchFailed, BudgetExceeded, ConfigError, WorkbenchError
from ..experiment import Experiment, experiment_from_dict
from ..harness.execute import Executor, RunProgress
from ..harness.plan import PlannedCell, Planner, estimate_planned
from ..ledger import RunLedger, open_ledger
from ..providers import Provider, error_text
from ..providers.provider import completion_from_batch_line
from ..records import utcnow
from ..store import ResponseCache
from .files import BatchFile, BatchLimits, check_file, split_files

log = logging.getLogger("workbench.batch")

DEFAULT_POLL_S = 60.0  # Azure asks for no more than one status check a minute
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
TERMINAL = ("completed", "failed", "expired", "cancelled")
CREATE_RETRIES = 5  # token_limit_exceeded: re-create the batch this many times, with exponential backoff
FOLLOW_UP = ("Run the same experiment again to send only the failed cells: with --batch (mode=\"batch\") as "
             "a new batch, or without it online.")


@dataclass
class BatchSettings:
    """How a batch run is planned and tracked (kept in the run folder, so ``resume`` polls the same way)."""

    poll_interval_s: float = DEFAULT_POLL_S
    max_lines: int | None = None  # per file; None: the provider's limit (OpenAI 50,000, Azure 100,000)
    max_bytes: int | None = None  # per file; None: 200 MB
    max_polls: int | None = None  # stop polling after this many rounds (None: until every batch ends)

    def limits(self, style: str) -> BatchLimits:
        return BatchLimits.for_style(style, self.max_lines, self.max_bytes)


@dataclass
class BatchJobStatus:
    """One submission as the ledger knows it (``workbench batch status``)."""

    submission: str
    target: str
    deployment: str
    lines: int
    state: str  # reserved | uploaded | submitted | merged
    status: str | None  # the provider's status
    batch_id: str | None
    file_id: str | None
    completed: int = 0
    failed: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class BatchStatus:
    """Every batch of a run folder with its status and counts; shows as a table in a notebook."""

    run_dir: Path
    jobs: list[BatchJobStatus]
    cells: dict[str, int]

    @property
    def finished(self) -> bool:
        return all(j.state == "merged" for j in self.jobs)

    def __str__(self) -> str:
        head = f"{'batch':<34} {'target':<24} {'status':<12} {'done':>7} {'failed':>7} {'lines':>7}"
        rows = [head]
        for j in self.jobs:
            status = j.status or j.state
            if j.state == "merged":
                status += " (merged)"
            rows.append(f"{(j.batch_id or j.submission):<34} {j.target[:24]:<24} {status:<12} {j.completed:>7} "
                        f"{j.failed:>7} {j.lines:>7}")
        c = self.cells
        rows.append(f"cells: {c.get('done', 0)} done, {c.get('error', 0)} failed, {c.get('batch', 0)} waiting on a "
                    f"batch, {c.get('planned', 0) + c.get('claimed', 0)} not submitted")
        return "\n".join(rows)

    def _repr_html_(self) -> str:
        import html

        cells = "".join(
            f"<tr><td><code>{html.escape(j.batch_id or j.submission)}</code></td><td>{html.escape(j.target)}</td>"
            f"<td>{html.escape((j.status or j.state) + (' (merged)' if j.state == 'merged' else ''))}</td>"
            f"<td>{j.completed}</td><td>{j.failed}</td><td>{j.lines}</td></tr>" for j in self.jobs)
        c = self.cells
        return (f"<div class='wb-batch'><table><thead><tr><th>batch</th><th>target</th><th>status</th><th>done</th>"
                f"<th>failed</th><th>lines</th></tr></thead><tbody>{cells}</tbody></table>"
                f"<p>cells: {c.get('done', 0)} done, {c.get('error', 0)} failed, {c.get('batch', 0)} waiting on a "
                f"batch</p></div>")


def _job_status(job: dict[str, Any]) -> BatchJobStatus:
    counts = job.get("counts") or {}
    return BatchJobStatus(job["submission"], job["target"], job["deployment"], job["lines"], job["state"],
                          job["status"], job["batch_id"], job["file_id"], int(counts.get("completed") or 0),
                          int(counts.get("failed") or 0), list(job.get("errors") or []))


def batch_status(run_dir: str | Path) -> BatchStatus:
    """What the ledger of ``run_dir`` knows about its batches (no request is sent)."""
    ledger = open_ledger(run_dir)
    try:
        return BatchStatus(Path(run_dir), [_job_status(j) for j in ledger.batch_jobs()], ledger.states())
    finally:
        ledger.close()


class BatchRun:
    """The batch side of one run folder: submits, polls and merges (see the module docstring)."""

    def __init__(self, exp: Experiment, planner: Planner, ledger: RunLedger, run_dir: Path,
                 cache: ResponseCache | None, settings: BatchSettings, *, progress: bool = True):
        self.exp, self.planner, self.ledger, self.run_dir, self.cache = exp, planner, ledger, run_dir, cache
        self.settings = settings
        self.progress = progress
        self.targets = planner.targets()
        self._executor: Executor | None = None
        self._bar = None
        self._rendered: dict[int, PlannedCell] = {}  # cells rendered by this process (a file holds them anyway)

    def cell(self, seq: int) -> PlannedCell:
        """Cell ``seq`` rendered once per process: planning, submitting and merging use the same one."""
        p = self._rendered.get(seq)
        if p is None:
            p = self._rendered[seq] = self.planner.cell(seq)
        return p

    # -- recording -------------------------------------------------------------------------------------
    def executor(self) -> Executor:
        """Records answers exactly as the online path does (scored, priced - at batch rates)."""
        if self._executor is None:
            self._executor = Executor(self.exp, self.planner, self.ledger, "batch", self.cache, _scorers(self.exp),
                                      RunProgress(), None, None, None, None)
            self._executor.batch_pricing = True
        return self._executor

    async def answer_from_cache(self) -> int:
        """Record the planned cells the response cache answers; they are never submitted."""
        if self.cache is None:
            return 0
        ex = self.executor()
        rows = []
        for _key, seq in self.ledger.planned_keys():
            p = self.cell(seq)
            completion = self.cache.get(p.cache_key)
            if completion is not None:
                rows.append(await ex.record(p, completion, cache_hit=True))
        self.ledger.finish_many(rows)
        return len(rows)

    # -- planning and submitting -----------------------------------------------------------------------
    def plan_files(self) -> tuple[list[BatchFile], list[PlannedCell]]:
        """The files for every planned cell, checked as the provider will check them (nothing uploaded yet)."""
        cells = [self.cell(seq) for _key, seq in self.ledger.planned_keys()]
        for p in cells:
            _require_batch_capable(p)
        files = split_files(cells, self.settings.limits)
        seen: set[str] = set()
        for i, f in enumerate(files, 1):
            check_file(f.content(), self.settings.limits(f.style), f.endpoint,
                       name=f"batch file {i} of {len(files)} ({f.target}, {f.deployment})", seen=seen)
        return files, cells

    def budget_gate(self, cells: list[PlannedCell], budget_usd: float | None) -> float | None:
        """Price what would be submitted at batch rates; refuse it above the budget. Returns the estimate."""
        if not cells:
            return 0.0
        try:
            est = estimate_planned(cells, batch=True)
        except WorkbenchError as e:
            if budget_usd is None:
                log.warning("cannot estimate the batch's cost: %s", e)
                return None
            raise
        if budget_usd is not None:
            from ..costs import Budget

            try:
                Budget(budget_usd).check_estimate(est)
            except BudgetExceeded as e:
                self.ledger.set_meta("status", "refused: over budget")
                raise BudgetExceeded(f"Experiment {self.exp.name!r}, {len(cells)} calls to submit as a batch (at "
                                     f"batch prices): {e} Nothing was submitted.") from None
        return est.usd

    def submit(self, files: list[BatchFile], estimate_usd: float | None = None) -> list[str]:
        """Reserve, upload and create a batch for each file; returns the submission ids."""
        total_lines = sum(len(f.keys) for f in files) or 1
        out = []
        for f in files:
            submission = f"wb-{uuid.uuid4().hex[:16]}"
            share = None if estimate_usd is None else estimate_usd * len(f.keys) / total_lines
            taken = self.ledger.reserve_batch(submission, f.keys, {
                "target": f.target, "profile": f.profile, "deployment": f.deployment, "endpoint": f.endpoint,
                "bytes": f.size, "estimate_usd": share})
            if not taken:
                continue
            if len(taken) != len(f.keys):  # another process took some: the file holds only ours
                keep = set(taken)
                lines = [ln for k, ln in zip(f.keys, f.lines) if k in keep]
                f.keys, f.lines, f.size = taken, lines, sum(map(len, lines))
            self._upload_and_create(submission, f.target, f.content(), f.name)
            out.append(submission)
        return out

    def _provider(self, target: str) -> Provider:
        prov = self.targets.get(target)
        if prov is None:
            raise BatchFailed(f"{self.run_dir}: batch of target {target!r}, which the experiment no longer has.")
        return prov

    def _upload_and_create(self, submission: str, target: str, content: bytes, name: str) -> None:
        client = self._provider(target).client
        try:
            uploaded = client.files.create(file=(f"{name}.jsonl", content, "application/jsonl"), purpose="batch")
        except openai.APIError as e:
            raise self._stopped(submission, target, "uploading its input file", e) from e
        self.ledger.update_batch(submission, state="uploaded", file_id=uploaded.id)
        self._create(submission, target, uploaded.id)

    def _stopped(self, submission: str, target: str, doing: str, e: BaseException) -> BatchFailed:
        """The error a submission that broke off ends with: what failed, and that resume carries on from there."""
        self.ledger.set_meta("status", "batch in progress")
        return BatchFailed(f"Batch submission {submission} (target {target!r}) stopped while {doing}: "
                           f"{error_text(e)}. Its cells are kept for it, so nothing is submitted twice: run "
                           f"`workbench batch resume {self.run_dir}` (Python: workbench.batch.resume(...)) to carry "
                           f"on.")

    def _create(self, submission: str, target: str, file_id: str) -> None:
        job = next(j for j in self.ledger.batch_jobs() if j["submission"] == submission)
        client = self._provider(target).client
        try:
            batch = client.batches.create(input_file_id=file_id, endpoint=job["endpoint"], completion_window="24h",
                                          metadata={"workbench_submission": submission,
                                                    "workbench_experiment": self.exp.name[:500]})
        except openai.APIError as e:
            raise self._stopped(submission, target, "creating the batch", e) from e
        self.ledger.update_batch(submission, state="submitted", batch_id=batch.id, status=batch.status,
                                 attempts=job["attempts"] + 1, counts=_counts(batch))

    def finish_submissions(self) -> None:
        """Carry on submissions a stopped process left half done: upload what was reserved, create what was
        uploaded - unless a batch carrying the submission id already exists (created, then killed)."""
        for job in self.ledger.batch_jobs():
            if job["state"] == "reserved":
                keys = self.ledger.batch_cell_seqs(job["submission"])
                cells = [self.cell(seq) for seq in sorted(keys.values())]
                files = split_files(cells, lambda style: BatchLimits(10 ** 9, 10 ** 12))
                content = b"".join(f.content() for f in files)
                check_file(content, self.settings.limits(files[0].style if files else "openai"), job["endpoint"],
                           name=f"batch file of {job['target']}")
                self._upload_and_create(job["submission"], job["target"], content,
                                        files[0].name if files else "workbench")
            elif job["state"] == "uploaded":
                found = self._find_created(job)
                if found is not None:
                    self.ledger.update_batch(job["submission"], state="submitted", batch_id=found.id,
                                             status=found.status, counts=_counts(found))
                else:
                    self._create(job["submission"], job["target"], job["file_id"])

    def _find_created(self, job: dict[str, Any]):
        client = self._provider(job["target"]).client
        for batch in client.batches.list(limit=100):
            if (batch.metadata or {}).get("workbench_submission") == job["submission"]:
                return batch
        return None

    # -- tracking --------------------------------------------------------------------------------------
    async def poll(self, *, wait: bool = True) -> bool:
        """Check every open batch; merge those that ended. With ``wait``, until all have ended. Returns True when
        every submission of the folder is merged."""
        rounds = 0
        while True:
            open_jobs = [j for j in self.ledger.batch_jobs() if j["state"] == "submitted"]
            for job in open_jobs:
                await self._check(job)
            self._show()
            rounds += 1
            if all(j["state"] == "merged" for j in self.ledger.batch_jobs()):
                return True
            if not wait or (self.settings.max_polls is not None and rounds >= self.settings.max_polls):
                return False
            await asyncio.sleep(self.settings.poll_interval_s)

    async def _check(self, job: dict[str, Any]) -> None:
        client = self._provider(job["target"]).client
        batch = client.batches.retrieve(job["batch_id"])
        errors = [e.model_dump() for e in (batch.errors.data or [])] if batch.errors and batch.errors.data else None
        self.ledger.update_batch(job["submission"], status=batch.status, counts=_counts(batch),
                                 output_file_id=batch.output_file_id, error_file_id=batch.error_file_id,
                                 errors=errors)
        if batch.status not in TERMINAL:
            return
        codes = {e.get("code") for e in errors or []}
        if batch.status == "failed" and "token_limit_exceeded" in codes and job["attempts"] < CREATE_RETRIES:
            wait = min(self.settings.poll_interval_s * 2 ** job["attempts"], 3600.0)
            log.warning("batch %s: the deployment's enqueued-token quota is full (token_limit_exceeded); creating it "
                        "again in %.0f s (attempt %d of %d)", batch.id, wait, job["attempts"] + 1, CREATE_RETRIES)
            await asyncio.sleep(wait)
            self._create(job["submission"], job["target"], job["file_id"])
            return
        await self.merge(job, batch)

    def _show(self) -> None:
        if not self.progress:
            return
        jobs = self.ledger.batch_jobs()
        if not jobs:
            return
        total = sum(j["lines"] for j in jobs)
        done = sum(int((j["counts"] or {}).get("completed") or 0) + int((j["counts"] or {}).get("failed") or 0)
                   for j in jobs)
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=f"{self.exp.name} (batch)", unit="line", dynamic_ncols=True)
        self._bar.total = total
        self._bar.n = done
        statuses: dict[str, int] = {}
        for j in jobs:
            s = "merged" if j["state"] == "merged" else (j["status"] or j["state"])
            statuses[s] = statuses.get(s, 0) + 1
        self._bar.set_postfix({k: str(v) for k, v in statuses.items()}, refresh=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # -- merging ---------------------------------------------------------------------------------------
    async def merge(self, job: dict[str, Any], batch: Any) -> None:
        """Output and error lines into the ledger and the cache by ``custom_id``; what the batch never ran
        becomes error cells saying why. Marks the submission merged."""
        submission = job["submission"]
        waiting = self.ledger.batch_cell_seqs(submission)
        client = self._provider(job["target"]).client
        ex = self.executor()
        started = utcnow()
        records, cached = [], []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for raw in client.files.content(file_id).read().splitlines():
                if not raw.strip():
                    continue
                line = json.loads(raw)
                seq = waiting.pop(line.get("custom_id"), None)
                if seq is None:  # not ours, or merged already
                    continue
                p = self.cell(seq)
                if p.cell_key != line["custom_id"]:
                    raise BatchFailed(f"{self.run_dir}: cell {seq} of the plan is no longer the cell batch {batch.id} "
                                      f"answered (the experiment changed since it was submitted); nothing was merged.")
                completion, error, code = _line_outcome(line, p)
                rec, spent = await ex.record(p, completion, error, started=started)
                rec.batch_id = batch.id
                if completion is None:
                    rec.error_type = code
                elif self.cache is not None:
                    cached.append((p.cache_key, completion, p.provider.identity))
                records.append((rec, spent))
        for seq in sorted(waiting.values()):  # lines the batch never ran (failed, expired, cancelled)
            p = self.cell(seq)
            code, message = _unrun(batch)
            rec, spent = await ex.record(p, None, BatchFailed(message), started=started)
            rec.batch_id, rec.error_type = batch.id, code
            records.append((rec, spent))
        if cached:
            self.cache.put_many(cached)
        self.ledger.finish_many(records)
        self.ledger.update_batch(submission, state="merged")

    async def cancel(self) -> int:
        """Ask the provider to cancel every open batch; their finished part is merged when they end."""
        n = 0
        for job in self.ledger.batch_jobs():
            if job["state"] == "submitted" and job["status"] not in TERMINAL:
                batch = self._provider(job["target"]).client.batches.cancel(job["batch_id"])
                self.ledger.update_batch(job["submission"], status=batch.status)
                n += 1
        return n


def _scorers(exp: Experiment) -> list[Any]:
    if not exp.scorers:
        return []
    from ..scorers import build_scorer

    return [build_scorer(s) for s in exp.scorers]


def _counts(batch: Any) -> dict[str, int]:
    rc = batch.request_counts
    return {"total": rc.total, "completed": rc.completed, "failed": rc.failed} if rc is not None else {}


def _line_outcome(line: dict[str, Any], p: PlannedCell):
    """(completion, error, code) of one output or error line."""
    resp = line.get("response") or {}
    status = int(resp.get("status_code") or 0)
    body = resp.get("body") if isinstance(resp.get("body"), dict) else {}
    if resp and not line.get("error"):
        completion = completion_from_batch_line(status, body, p.request, resp.get("request_id"))
        if completion is not None:
            return completion, None, None
    err = line.get("error") or body.get("error") or {}
    code = str(err.get("code") or (f"http_{status}" if status else "batch_error"))
    message = str(err.get("message") or "no message")
    where = f" (HTTP {status})" if status else ""
    return None, BatchFailed(f"{code}{where}: {message}. {FOLLOW_UP}"), code


def _unrun(batch: Any) -> tuple[str, str]:
    """Why a batch's remaining lines never ran: the code and message their error cells get."""
    status = batch.status
    if status == "failed":
        errs = batch.errors.data if batch.errors and batch.errors.data else []
        first = errs[0] if errs else None
        code = (first.code if first else None) or "batch_failed"
        detail = "; ".join(f"{e.code}: {e.message}" + (f" (line {e.line})" if e.line else "") for e in errs[:3])
        return code, f"batch {batch.id} failed validation: {detail or 'no reason given'}. Nothing of it ran or was " \
                     f"billed. {FOLLOW_UP}"
    if status == "expired":
        return "batch_expired", (f"batch {batch.id} expired (24 h window) before this request ran; it was not "
                                 f"billed. {FOLLOW_UP}")
    if status == "cancelled":
        return "batch_cancelled", f"batch {batch.id} was cancelled before this request ran. {FOLLOW_UP}"
    return "batch_missing", (f"batch {batch.id} ended ({status}) without a line for this request. {FOLLOW_UP}")


def _require_batch_capable(p: PlannedCell) -> None:
    prof = p.provider.profile
    if prof.backend == "local":
        raise ConfigError(f"Target {p.target.label!r} is the embedded local model, which has no Batch API: run this "
                          f"experiment online (without --batch / mode=\"batch\"), or target an OpenAI or Azure "
                          f"profile.")
    if not prof.batch_capable(p.request.deployment):
        hint = (f"list it in `batch_deployments = [\"{p.request.deployment}\"]` (an Azure Global-Batch or Data Zone "
                f"Batch deployment)" if prof.backend == "azure" else "set `batch = true`")
        raise ConfigError(f"Target {p.target.label!r} (profile {prof.name!r}, deployment {p.request.deployment!r}) "
                          f"is not marked batch-capable: {hint} under [profiles.{prof.name}] in workbench.toml, or "
                          f"run online (without --batch).")


# ------------------------------------------------------------------------------------------------ entry points

async def run_batch_in(exp: Experiment, planner: Planner, ledger: RunLedger, run_dir: Path,
                       cache: ResponseCache | None, settings: BatchSettings, *, budget_usd: float | None,
                       progress: bool, wait: bool):
    """The batch half of ``run(exp, mode="batch")``, after the plan is in the ledger (see ``harness.run``)."""
    br = BatchRun(exp, planner, ledger, run_dir, cache, settings, progress=progress)
    ledger.set_meta("mode", "batch")
    ledger.set_meta("batch_settings", _settings_dict(settings))
    ledger.set_meta("base_dir", str(exp.base_dir))
    ledger.set_meta("started_at", ledger.get_meta("started_at") or utcnow())
    try:
        br.finish_submissions()  # an earlier process's, stopped half-way
        await _submit_planned(br, budget_usd if budget_usd is not None else exp.budget_usd)
        return await _track(br, wait)
    finally:
        br.close()


async def _submit_planned(br: BatchRun, budget_usd: float | None) -> None:
    """Answer what the cache can, then plan, check, price and submit the rest."""
    await br.answer_from_cache()
    files, cells = br.plan_files()
    estimate = br.budget_gate(cells, budget_usd)
    if files:
        br.ledger.set_meta("status", "batch in progress")
    br.submit(files, estimate)


async def _track(br: BatchRun, wait: bool):
    from ..results import Results

    ledger = br.ledger
    finished = False
    try:
        finished = await br.poll(wait=wait)
    finally:
        status = _final_status(ledger) if finished else "batch in progress"
        ledger.set_meta("status", status)
        if finished:
            ledger.set_meta("finished_at", utcnow())
        ledger.set_meta("batch", batch_summary(ledger))
    info = {**ledger.get_meta("batch", {}), **_totals_info(ledger)}
    return Results.load(br.run_dir, experiment=br.exp, status=status, info=info)


def _final_status(ledger: RunLedger) -> str:
    totals = ledger.totals()
    if totals["planned"] or totals["claimed"]:
        return "stopped: cells not submitted"
    return "complete with errors" if totals["errors"] else "complete"


def _totals_info(ledger: RunLedger) -> dict[str, Any]:
    t = ledger.totals()
    return {"spent_usd": t["spent_usd"], "cache_hits": t["cache_hits"], "rate_limited": t["rate_limited"],
            "retries": t["retries"], "cells": t["cells"]}


def batch_summary(ledger: RunLedger) -> dict[str, Any]:
    """Mode, batch ids and what the batch cells cost against online prices (reports and the manifest)."""
    from ..costs import load_prices

    jobs = ledger.batch_jobs()
    row = ledger.execute("SELECT COALESCE(SUM(cost_usd), 0), COUNT(*) FROM cells WHERE record IS NOT NULL AND "
                         "json_extract(record, '$.batch_id') IS NOT NULL")[0]
    cost = float(row[0] or 0.0)
    try:
        discount = load_prices().batch_discount
    except WorkbenchError:
        discount = 0.5
    online = cost / (1.0 - discount) if discount < 1 else None
    return {"mode": "batch", "batch_ids": [j["batch_id"] for j in jobs if j["batch_id"]],
            "batches": [{"batch_id": j["batch_id"], "target": j["target"], "deployment": j["deployment"],
                         "lines": j["lines"], "status": j["status"], "counts": j["counts"]} for j in jobs],
            "batch_cells": row[1], "batch_cost_usd": cost, "online_cost_usd": online,
            "saving_usd": None if online is None else online - cost, "batch_discount": discount}


def _settings_dict(s: BatchSettings) -> dict[str, Any]:
    return {"poll_interval_s": s.poll_interval_s, "max_lines": s.max_lines, "max_bytes": s.max_bytes}


def _reopen(run_dir: Path, providers: Mapping[str, Provider] | None, poll_interval_s: float | None,
            cache: bool | str | Path | ResponseCache):
    ledger = open_ledger(run_dir)
    spec = ledger.get_meta("experiment")
    if spec is None or ledger.get_meta("mode") != "batch":
        ledger.close()
        raise BatchFailed(f"{run_dir} holds no batch run (run it with `workbench eval SPEC --batch` or "
                          f"run(exp, mode=\"batch\")).")
    base = ledger.get_meta("base_dir")
    exp = experiment_from_dict(spec, where=f"{run_dir} (the experiment of the run)",
                               base_dir=Path(base) if base else None)
    stored = ledger.get_meta("fingerprint")
    if stored and exp.fingerprint() != stored:  # the dataset changed: plan positions no longer name the same cells
        ledger.close()
        raise BatchFailed(f"The experiment of {run_dir} has changed since its batches were submitted (its dataset "
                          f"{exp.load_cases().source or ''} no longer has the same content), so their answers cannot "
                          f"be matched to its cells. Put the dataset back as it was, then resume.")
    saved = ledger.get_meta("batch_settings", {}) or {}
    settings = BatchSettings(poll_interval_s if poll_interval_s is not None else
                             saved.get("poll_interval_s", DEFAULT_POLL_S), saved.get("max_lines"),
                             saved.get("max_bytes"))
    if cache is False or cache is None:
        opened = None
    elif isinstance(cache, ResponseCache):
        opened = cache
    else:
        opened = ResponseCache(None if cache is True else cache)
    return ledger, exp, Planner(exp, providers), settings, opened


async def aresume(run_dir: str | Path, *, providers: Mapping[str, Provider] | None = None,
                  poll_interval_s: float | None = None, wait: bool = True, progress: bool = True,
                  cache: bool | str | Path | ResponseCache = True, cancel: bool = False):
    """Carry on the batches of ``run_dir``: finish half-done submissions, poll, merge (see :func:`resume`)."""
    run_dir = Path(run_dir)
    ledger, exp, planner, settings, response_cache = _reopen(run_dir, providers, poll_interval_s, cache)
    br = BatchRun(exp, planner, ledger, run_dir, response_cache, settings, progress=progress)
    try:
        br.finish_submissions()
        if cancel:
            await br.cancel()
        else:  # cells a stopped submission never reached (the budget gate passed them when the run started)
            await _submit_planned(br, None)
        return await _track(br, wait)
    finally:
        br.close()
        if response_cache is not None and not isinstance(cache, ResponseCache):
            response_cache.close()
        ledger.close()


def resume(run_dir: str | Path, *, providers: Mapping[str, Provider] | None = None,
           poll_interval_s: float | None = None, wait: bool = True, progress: bool = True,
           cache: bool | str | Path | ResponseCache = True):
    """Resume a batch run after Ctrl-C, a kernel restart or kill -9: nothing is submitted twice.

    Half-done submissions are completed (or found again at the provider by their id), open batches are polled
    until they end (``wait=False``: one check), and ended ones are merged. Returns the run's
    :class:`~workbench.results.Results`.
    """
    from .._sync import run_sync

    return run_sync(aresume(run_dir, providers=providers, poll_interval_s=poll_interval_s, wait=wait,
                            progress=progress, cache=cache), thread_name="workbench-batch-resume")


def cancel(run_dir: str | Path, *, providers: Mapping[str, Provider] | None = None,
           poll_interval_s: float | None = None, wait: bool = True, progress: bool = True,
           cache: bool | str | Path | ResponseCache = True):
    """Cancel the open batches of ``run_dir``. What they finished is kept: with ``wait`` (default) this polls
    until they are cancelled and merges their finished part; the rest become error cells (``batch_cancelled``)."""
    from .._sync import run_sync

    return run_sync(aresume(run_dir, providers=providers, poll_interval_s=poll_interval_s, wait=wait,
                            progress=progress, cache=cache, cancel=True), thread_name="workbench-batch-cancel")
