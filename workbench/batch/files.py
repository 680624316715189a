"""Batch API input files: one request a line, one file per target and deployment, split at the provider's limits,
checked before anything is uploaded.

A line is ``{"custom_id": <cell key>, "method": "POST", "url": <endpoint>, "body": <the chat request>}``. The
``custom_id`` is the run ledger's cell key, so an output line finds its cell whatever order it comes back in, and
the body is exactly what the online path would send (the same :class:`~workbench.providers.PreparedRequest`), so
a merged answer is also the response cache's answer for that request.

Pure: no SDK, no network. :func:`check_file` is the one validation path, for the files the workbench writes and
for a hand-made file (``workbench.batch.check_file(Path("in.jsonl").read_bytes(), BatchLimits.for_style(...))``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import BatchFileInvalid

if TYPE_CHECKING:  # pragma: no cover
    from ..harness.plan import PlannedCell

BOM = b"\xef\xbb\xbf"
MB = 1024 * 1024


@dataclass(frozen=True)
class BatchLimits:
    """How big one input file may be. The providers' limits by default; smaller ones for tests and rehearsals."""

    max_lines: int = 50_000
    max_bytes: int = 200 * MB

    @classmethod
    def for_style(cls, style: str, max_lines: int | None = None, max_bytes: int | None = None) -> BatchLimits:
        """The provider's limits (OpenAI 50,000 requests, Azure 100,000; both 200 MB), each optionally lowered."""
        default = cls(100_000 if style.startswith("azure") else 50_000)
        return cls(max_lines or default.max_lines, max_bytes or default.max_bytes)


def batch_endpoint(identity: dict[str, Any]) -> str:
    """The ``endpoint`` of a batch and the ``url`` of its lines: Azure's deployment-style resource takes
    ``/chat/completions``; OpenAI and Azure's v1 endpoint take ``/v1/chat/completions``."""
    return "/chat/completions" if identity.get("style") == "deployments" else "/v1/chat/completions"


def url_style(identity: dict[str, Any]) -> str:
    """``openai``, ``azure`` (deployment URLs) or ``azure_v1``: which provider rules a file follows."""
    if identity.get("backend") == "azure":
        return "azure_v1" if identity.get("style") == "v1" else "azure"
    return "openai"


@dataclass
class BatchFile:
    """One input file: the lines of one target and deployment, at most one file's worth."""

    target: str
    profile: str
    deployment: str
    endpoint: str
    style: str
    keys: list[str] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)
    size: int = 0

    def content(self) -> bytes:
        return b"".join(self.lines)

    @property
    def name(self) -> str:
        return f"workbench-{self.target}-{self.deployment}".replace("/", "_").replace(":", "_")


def line_for(p: PlannedCell, endpoint: str) -> bytes:
    """A cell's request line (UTF-8 JSON, no BOM, one ``\\n``)."""
    row = {"custom_id": p.cell_key, "method": "POST", "url": endpoint, "body": p.request.body()}
    return (json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


def split_files(cells: Iterable[PlannedCell], limits_for) -> list[BatchFile]:
    """Group cells by target and deployment (one model per file) and cut each group at its limits.

    ``limits_for(style)`` gives the :class:`BatchLimits` of a URL style. A single line bigger than a whole file is
    refused, naming its cell.
    """
    open_files: dict[tuple[str, str], BatchFile] = {}
    done: list[BatchFile] = []
    for p in cells:
        ident = p.provider.identity
        style = url_style(ident)
        endpoint = batch_endpoint(ident)
        limits: BatchLimits = limits_for(style)
        line = line_for(p, endpoint)
        if len(line) > limits.max_bytes:
            raise BatchFileInvalid(
                f"Cell {p.cell.case.id!r} / variant {p.cell.variant.name!r} on target {p.target.label!r}: its request "
                f"line is {len(line):,} bytes, more than a whole batch file may hold ({limits.max_bytes:,}). Shorten "
                f"the prompt, or run this experiment online (without --batch).", "too_large")
        group = (p.target.label, p.request.deployment)
        f = open_files.get(group)
        if f is not None and (len(f.lines) >= limits.max_lines or f.size + len(line) > limits.max_bytes):
            done.append(f)
            f = None
        if f is None:
            f = open_files[group] = BatchFile(p.target.label, p.target.profile, p.request.deployment, endpoint, style)
        f.keys.append(p.cell_key)
        f.lines.append(line)
        f.size += len(line)
    done.extend(open_files.values())
    return done


def check_file(data: bytes, limits: BatchLimits, endpoint: str | None = None, *, name: str = "batch file",
               seen: set[str] | None = None) -> int:
    """Check an input file as the provider will, before it is uploaded; return its line count.

    Refuses (:class:`BatchFileInvalid`, naming the file and line): a UTF-8 byte-order mark, an empty file, more
    lines or bytes than ``limits``, a line that is not a request (``custom_id``, ``method``, ``url``,
    ``body.model``), a ``url`` other than ``endpoint``, a duplicate ``custom_id`` (in this file or in ``seen``:
    the other files of the same submission), more than one model (deployment) in the file.
    """
    if data.startswith(BOM):
        raise BatchFileInvalid(f"{name} starts with a UTF-8 byte-order mark (BOM), which the Batch API rejects: save "
                               f"it as UTF-8 without a BOM.", "invalid_json_line", 1)
    if len(data) > limits.max_bytes:
        raise BatchFileInvalid(f"{name} is {len(data):,} bytes; a batch file may hold at most {limits.max_bytes:,}. "
                               f"Split it.", "file_too_large")
    rows = data.split(b"\n")
    if rows and not rows[-1].strip():
        rows.pop()
    if not rows:
        raise BatchFileInvalid(f"{name} is empty: a batch needs at least one request line.", "empty_file")
    if len(rows) > limits.max_lines:
        raise BatchFileInvalid(f"{name} has {len(rows):,} requests; a batch file may hold at most "
                               f"{limits.max_lines:,}. Split it.", "too_many_tasks")
    ids = seen if seen is not None else set()
    model: str | None = None
    for i, raw in enumerate(rows, 1):
        where = f"{name}, line {i}"
        try:
            line = json.loads(raw)
            cid, method, url, line_model = line["custom_id"], line["method"], line["url"], line["body"]["model"]
        except (ValueError, KeyError, TypeError) as e:
            raise BatchFileInvalid(f"{where}: not a request line ({type(e).__name__}: {e}); each line is "
                                   f'{{"custom_id", "method": "POST", "url", "body": {{"model", ...}}}}.',
                                   "invalid_json_line", i) from None
        if method != "POST":
            raise BatchFileInvalid(f"{where}: method {method!r}; batch lines are POST.", "invalid_request", i)
        if endpoint is not None and url != endpoint:
            raise BatchFileInvalid(f"{where}: url {url!r}, but this batch's endpoint is {endpoint!r}; every line "
                                   f"must use the batch's endpoint.", "url_mismatch", i)
        if cid in ids:
            raise BatchFileInvalid(f"{where}: custom_id {cid!r} appears twice; each request needs its own.",
                                   "duplicate_custom_id", i)
        ids.add(cid)
        if model is None:
            model = line_model
        elif line_model != model:
            raise BatchFileInvalid(f"{where}: model {line_model!r}, but the file's first line uses {model!r}; a batch "
                                   f"file takes one model (on Azure: one deployment). Put each in its own file.",
                                   "model_mismatch", i)
    return len(rows)
