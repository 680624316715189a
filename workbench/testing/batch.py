"""A fake of the Files and Batches endpoints, served by :class:`~workbench.testing.FakeBackend` (and so by
:class:`~workbench.testing.FakeServer`): rehearse a Batch API run offline, in tests or from the shell.

Both URL styles: OpenAI (``/v1/files``, ``/v1/batches``, lines with ``url: /v1/chat/completions``) and Azure
(``/openai/files?api-version=...`` with lines ``url: /chat/completions``, or the v1 endpoint ``/openai/v1/...``).
Each line of a batch is answered by the backend's own responder and faults, so a scripted 400 becomes an error
line and a content-filter reply keeps its annotations (Azure). Progress is simulated per poll, so a test decides
how far a batch gets::

    fake = FakeBackend(lambda r: "positive")
    fake.batches.lines_per_poll = 100        # each retrieve processes 100 more lines
    fake.batches.expire_after(lines=250)     # the next batch expires with 250 lines done
    fake.batches.fail_create("token_limit_exceeded")  # the next batch fails fast (Azure's enqueued-token quota)

Validation is the provider's: a UTF-8 BOM, a line that is not JSON, a duplicate ``custom_id``, two models in one
file, a line whose ``url`` is not the batch's endpoint, an empty file, too many lines - each fails the batch with
its code (``invalid_json_line``, ``duplicate_custom_id``, ``model_mismatch``, ``url_mismatch``, ``empty_file``,
``too_many_tasks``, ``model_not_found``). Output lines come back shuffled (not in input order), as they do.
``accepted`` counts, per ``custom_id``, the batches that took the line (a line submitted twice shows there);
``processed`` the times it ran (and was billed).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx2

if TYPE_CHECKING:  # pragma: no cover
    from .backend import FakeBackend, FakeRequest

BOM = b"\xef\xbb\xbf"
TERMINAL = ("completed", "failed", "expired", "cancelled")
_ROUTE = re.compile(r"^(?P<prefix>/v1|/openai/v1|/openai)/(?P<kind>files|batches)(?:/(?P<id>[^/]+))?"
                    r"(?:/(?P<action>content|cancel))?/?$")


@dataclass
class FakeFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int = field(default_factory=lambda: int(time.time()))

    def obj(self) -> dict[str, Any]:
        return {"id": self.id, "object": "file", "bytes": len(self.data), "created_at": self.created_at,
                "filename": self.filename, "purpose": self.purpose, "status": "processed"}


@dataclass
class FakeJob:
    id: str
    input_file_id: str
    endpoint: str
    style: str
    metadata: dict[str, str]
    status: str = "validating"
    created_at: int = field(default_factory=lambda: int(time.time()))
    lines: list[dict[str, Any]] = field(default_factory=list)
    results: list[tuple[dict[str, Any], int, dict[str, Any]]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    output_file_id: str | None = None
    error_file_id: str | None = None
    fail_code: str | None = None
    expire_at: int | None = None
    polls: int = 0

    def obj(self) -> dict[str, Any]:
        failed = sum(1 for _, status, _ in self.results if status != 200)
        total = len(self.lines)
        out: dict[str, Any] = {
            "id": self.id, "object": "batch", "endpoint": self.endpoint, "input_file_id": self.input_file_id,
            "completion_window": "24h", "status": self.status, "created_at": self.created_at,
            "metadata": self.metadata or None, "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "request_counts": {"total": total, "completed": len(self.results) - failed, "failed": failed},
        }
        if self.errors:
            out["errors"] = {"object": "list", "data": self.errors}
        return out


def _multipart(content: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """The parts of a multipart/form-data body: name -> (filename, data)."""
    boundary = content_type.split("boundary=", 1)[1].split(";")[0].strip('"').encode()
    parts: dict[str, tuple[str | None, bytes]] = {}
    for chunk in content.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        disposition = head.decode("latin-1")
        name = re.search(r'name="([^"]*)"', disposition)
        filename = re.search(r'filename="([^"]*)"', disposition)
        if name:
            parts[name.group(1)] = (filename.group(1) if filename else None, data)
    return parts


def _error(status: int, code: str, message: str) -> httpx2.Response:
    return httpx2.Response(status, json={"error": {"code": code, "message": message, "type": "invalid_request_error",
                                                   "param": None}})


class FakeBatches:
    """The Files and Batches endpoints of one :class:`FakeBackend` (``fake.batches``). See the module docstring."""

    def __init__(self, backend: FakeBackend, seed: int = 0):
        self.backend = backend
        self.files: dict[str, FakeFile] = {}
        self.jobs: dict[str, FakeJob] = {}
        self.lines_per_poll: int | None = None  # None: a batch finishes on its second poll
        self.max_lines: int | None = None  # too_many_tasks above this (the provider's 50,000 / 100,000)
        self.deployments: set[str] | None = None  # Azure: the batch deployments that exist (model_not_found)
        self.shuffle = True
        self.accepted: Counter[str] = Counter()  # custom_id -> batches that accepted the line
        self.processed: Counter[str] = Counter()  # custom_id -> times the line ran (and was billed)
        self.creates = 0
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._fail_create: list[list[Any]] = []
        self._fail_upload = 0
        self._expire: int | None = None

    # -- scripting ------------------------------------------------------------------------------------
    def fail_create(self, code: str = "token_limit_exceeded", times: int = 1,
                    message: str = "Enqueued token limit reached for this deployment; retry later.") -> FakeBatches:
        """The next ``times`` batches fail at validation with ``code`` (nothing of them runs)."""
        self._fail_create.append([code, message, times])
        return self

    def fail_upload(self, times: int = 1) -> FakeBatches:
        """The next ``times`` file uploads get an HTTP 500 (the file is not stored)."""
        self._fail_upload += times
        return self

    def expire_after(self, lines: int) -> FakeBatches:
        """The next batch created expires once ``lines`` of its lines are done (they are returned and billed)."""
        self._expire = lines
        return self

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"batches": len(self.jobs), "files": len(self.files), "lines_accepted": sum(self.accepted.values()),
                    "lines_accepted_twice": sorted(k for k, n in self.accepted.items() if n > 1),
                    "lines_run_twice": sorted(k for k, n in self.processed.items() if n > 1),
                    "statuses": dict(Counter(j.status for j in self.jobs.values()))}

    # -- HTTP -----------------------------------------------------------------------------------------
    @staticmethod
    def route(path: str) -> re.Match | None:
        return _ROUTE.match(path)

    def respond(self, req: FakeRequest, match: re.Match) -> httpx2.Response:
        style = {"/v1": "openai", "/openai/v1": "azure_v1", "/openai": "azure"}[match.group("prefix")]
        if style == "azure" and not req.api_version:
            return _error(404, "404", "Resource not found (Azure URLs need ?api-version=...).")
        kind, ident, action = match.group("kind"), match.group("id"), match.group("action")
        with self._lock:
            if kind == "files":
                return self._files(req, ident, action)
            return self._batches(req, style, ident, action)

    def _files(self, req: FakeRequest, ident: str | None, action: str | None) -> httpx2.Response:
        if ident is None and req.method == "POST":
            if self._fail_upload:
                self._fail_upload -= 1
                return _error(500, "server_error", "The server had an error while processing the upload.")
            parts = _multipart(req.content, req.headers.get("content-type", ""))
            if "file" not in parts:
                return _error(400, "invalid_request", "no file in the upload")
            purpose = parts.get("purpose", (None, b""))[1].decode()
            if purpose != "batch":
                return _error(400, "invalid_request", f"purpose {purpose!r}: this fake takes purpose='batch'")
            f = FakeFile(f"file-{uuid.uuid4().hex[:24]}", parts["file"][0] or "upload.jsonl", purpose,
                         parts["file"][1])
            self.files[f.id] = f
            return httpx2.Response(200, json=f.obj())
        f = self.files.get(ident or "")
        if f is None:
            return _error(404, "not_found", f"No such file: {ident}")
        if action == "content":
            return httpx2.Response(200, content=f.data, headers={"content-type": "application/octet-stream"})
        if req.method == "DELETE":
            del self.files[f.id]
            return httpx2.Response(200, json={"id": f.id, "object": "file", "deleted": True})
        return httpx2.Response(200, json=f.obj())

    def _batches(self, req: FakeRequest, style: str, ident: str | None, action: str | None) -> httpx2.Response:
        if ident is None and req.method == "POST":
            return self._create(req, style)
        if ident is None:
            data = [j.obj() for j in sorted(self.jobs.values(), key=lambda j: j.created_at, reverse=True)]
            return httpx2.Response(200, json={"object": "list", "data": data, "has_more": False,
                                              "first_id": data[0]["id"] if data else None,
                                              "last_id": data[-1]["id"] if data else None})
        job = self.jobs.get(ident)
        if job is None:
            return _error(404, "not_found", f"No such batch: {ident}")
        if action == "cancel":
            if job.status in ("validating", "in_progress", "finalizing"):
                job.status = "cancelling"
            return httpx2.Response(200, json=job.obj())
        self._advance(job)
        return httpx2.Response(200, json=job.obj())

    def _create(self, req: FakeRequest, style: str) -> httpx2.Response:
        body = req.body or {}
        f = self.files.get(body.get("input_file_id") or "")
        if f is None:
            return _error(400, "invalid_request", f"input_file_id {body.get('input_file_id')!r} does not exist")
        if body.get("completion_window") != "24h":
            return _error(400, "invalid_request", "completion_window must be '24h'")
        self.creates += 1
        job = FakeJob(f"batch_{uuid.uuid4().hex[:24]}", f.id, str(body.get("endpoint")), style,
                      dict(body.get("metadata") or {}))
        if self._fail_create:
            entry = self._fail_create[0]
            job.fail_code = entry[0]
            job.errors = [{"code": entry[0], "message": entry[1], "line": None, "param": None}]
            entry[2] -= 1
            if entry[2] <= 0:
                self._fail_create.pop(0)
        job.expire_at, self._expire = self._expire, None
        self.jobs[job.id] = job
        return httpx2.Response(200, json=job.obj())

    # -- the engine -----------------------------------------------------------------------------------
    def _advance(self, job: FakeJob) -> None:
        """One poll's worth of progress."""
        job.polls += 1
        if job.status == "validating":
            if job.fail_code:
                job.status = "failed"
                return
            problems = self._validate(job)
            if problems:
                job.status, job.errors = "failed", problems
                return
            for line in job.lines:
                self.accepted[line["custom_id"]] += 1
            job.status = "in_progress"
            return
        if job.status == "in_progress":
            todo = job.lines[len(job.results):]
            step = len(todo) if self.lines_per_poll is None else self.lines_per_poll
            for line in todo[:step]:
                if job.expire_at is not None and len(job.results) >= job.expire_at:
                    break
                status, body = self.backend.answer_batch_line(line.get("body") or {}, job.style)
                self.processed[line["custom_id"]] += 1
                job.results.append((line, status, body))
            if job.expire_at is not None and len(job.results) >= job.expire_at < len(job.lines):
                self._finish(job, "expired")
            elif len(job.results) == len(job.lines):
                job.status = "finalizing"
            return
        if job.status == "finalizing":
            self._finish(job, "completed")
        elif job.status == "cancelling":
            self._finish(job, "cancelled")

    def _validate(self, job: FakeJob) -> list[dict[str, Any]]:
        data = self.files[job.input_file_id].data

        def err(code: str, message: str, line: int | None = None) -> list[dict[str, Any]]:
            return [{"code": code, "message": message, "line": line, "param": None}]

        if data.startswith(BOM):
            return err("invalid_json_line", "The file starts with a UTF-8 byte-order mark (BOM); save it without one.",
                       1)
        text = data.decode("utf-8", errors="replace")
        rows = [ln for ln in text.split("\n") if ln.strip()]
        if not rows:
            return err("empty_file", "The input file is empty.")
        if self.max_lines is not None and len(rows) > self.max_lines:
            return err("too_many_tasks", f"{len(rows)} requests; at most {self.max_lines} a batch.")
        seen: set[str] = set()
        models: set[str] = set()
        lines = []
        for i, raw in enumerate(rows, 1):
            try:
                line = json.loads(raw)
                cid, url, model = line["custom_id"], line["url"], line["body"]["model"]
            except (ValueError, KeyError, TypeError):
                return err("invalid_json_line", f"Line {i} is not a valid request line.", i)
            if cid in seen:
                return err("duplicate_custom_id", f"custom_id {cid!r} appears more than once.", i)
            if url != job.endpoint:
                return err("url_mismatch", f"Line {i} has url {url!r}; the batch's endpoint is {job.endpoint!r}.", i)
            if self.deployments is not None and model not in self.deployments:
                return err("model_not_found", f"Line {i}: deployment {model!r} not found (or not a batch "
                                              f"deployment).", i)
            models.add(model)
            if len(models) > 1:
                return err("model_mismatch", f"Line {i}: model {model!r}; a batch file takes one model "
                                             f"(deployment): {sorted(models)[0]!r}.", i)
            seen.add(cid)
            lines.append(line)
        job.lines = lines
        return []

    def _finish(self, job: FakeJob, status: str) -> None:
        results = list(job.results)
        if self.shuffle:
            self._rng.shuffle(results)
        out, errs = [], []
        for line, code, body in results:
            row = {"id": f"batch_req_{uuid.uuid4().hex[:20]}", "custom_id": line["custom_id"],
                   "response": {"status_code": code, "request_id": uuid.uuid4().hex, "body": body}, "error": None}
            (out if code == 200 else errs).append(json.dumps(row))
        if out or job.style == "openai":
            job.output_file_id = self._store(f"{job.id}_output.jsonl", out) if out else None
        if errs or job.style.startswith("azure"):  # Azure: a successful job still has an (empty) error file
            job.error_file_id = self._store(f"{job.id}_error.jsonl", errs)
        job.status = status

    def _store(self, name: str, rows: list[str]) -> str:
        f = FakeFile(f"file-{uuid.uuid4().hex[:24]}", name, "batch_output",
                     ("\n".join(rows) + ("\n" if rows else "")).encode())
        self.files[f.id] = f
        return f.id
