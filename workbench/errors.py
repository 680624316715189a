"""Every exception the workbench raises, in one place. All derive from :class:`WorkbenchError`.

Messages follow one rule: say what happened, where (file, row, field, flag, cell, setting) and what to do next.
Catch :class:`WorkbenchError` to handle any workbench failure; the CLI turns one into a single ``error:`` line
and exit code 2 for bad input (:class:`DataError` and below, :class:`UnknownModelError`), 1 for the rest
(``workbench.cli.EXIT_CODES``). The tree::

    WorkbenchError
    ├── ConfigError                 a profile, setting or credential is missing or invalid
    │   └── PreflightFailed         a target has no credentials or does not answer (before the first request)
    ├── UnknownModelError           (also KeyError) a model or deployment is not in the catalog
    ├── BackendError                a backend could not be reached or answered something unusable
    │   ├── LocalModelError         the embedded model is not installed or cannot load
    │   └── LocalRequestRejected    the embedded model's server refused a request (becomes an HTTP 4xx)
    ├── DataError                   (also ValueError) bad input: a dataset row, template, image, spec field
    │   ├── SpecError               a spec/record failed validation; names every field (from pydantic)
    │   ├── NotFoundError           (also KeyError) no example, variant, scorer or cell by that name
    │   │   └── BaselineNotFound    no baseline run by that path, run id or branch in the run history
    │   ├── LedgerError             a run folder's ledger (results.sqlite) is damaged or from a newer workbench
    │   ├── RequestChanged          a re-run would send finished cells differently (endpoint, api-version, body)
    │   ├── BatchFileInvalid        a Batch API input file breaks a rule (duplicate custom_id, BOM, size, model)
    │   ├── VocabularyError         a shipped tokenizer vocabulary is missing or corrupt
    │   └── ScoringError            a cell cannot be scored as configured (e.g. no expected value)
    │       └── JudgeParseError     the judge answered, but no grade could be read from its reply
    ├── PriceUnknown                (also LookupError) no price for a model: never counted as free
    ├── BudgetExceeded              a run would cost, or has cost, more than its budget allows
    ├── HarnessError                the matrix of calls could not start or go on
    │   ├── RunCancelled            the run was cancelled (cancel event, widget Stop)
    │   ├── CellFailed              one cell gave up: retries or rate-limit patience used up (names limits)
    │   └── BatchFailed             a Batch API job could not be submitted, tracked or read back
    ├── GatesFailed                 (also AssertionError) a quality gate did not pass (``assert_gates``)
    └── RunError                    ``workbench run`` / ``rerun`` / ``report`` (notebook runs)
        └── NotebookFailed          a notebook cell raised; the partial notebook and report are kept

Warnings live here too: :class:`WorkbenchWarning` (a ``UserWarning``); :class:`ParameterWarning`, raised when
a request parameter is dropped or rewritten for the target model (``max_tokens`` -> ``max_completion_tokens``);
:class:`SpecWarning`, when a spec means something different than when it was written; and :class:`CacheCorrupt`,
when a damaged response cache is moved aside and a fresh one started.

Two private classes are control flow, never shown to a user: :class:`CellStopped` (a worker stops before
sending because the run is stopping) and :class:`ScoreFailed` (a scorer returns a failing score early).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path


class WorkbenchError(Exception):
    """Base class: catch this to handle any workbench failure."""


# ------------------------------------------------------------------------------------------ configuration


class ConfigError(WorkbenchError):
    """A profile, setting or credential is missing or invalid."""


class UnknownModelError(WorkbenchError, KeyError):
    """A model or deployment name is not in the catalog."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


# ----------------------------------------------------------------------------------------------- backends


class BackendError(WorkbenchError):
    """A backend could not be reached or answered something unusable."""


class LocalModelError(BackendError):
    """The embedded local model is not installed or could not be loaded."""


class LocalRequestRejected(BackendError):
    """The embedded model's in-process server refused a request; its transport answers with this HTTP error."""

    def __init__(self, status: int, code: str, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


# ------------------------------------------------------------------------------------------------- inputs


class DataError(WorkbenchError, ValueError):
    """Bad input data: a dataset row, a template, an image, a spec field."""


class SpecError(DataError):
    """A spec or record failed validation. ``problems`` lists ``(field path, message)`` pairs; the message
    names each field the way the user wrote it (``variants[1].params.temperature``)."""

    def __init__(self, message: str, problems: list[tuple[str, str]] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])


class NotFoundError(DataError, KeyError):
    """No example, variant, scorer or cell by that name; the message lists the ones there are."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class BaselineNotFound(NotFoundError):
    """``--baseline`` names no run folder, results file, run id, or run on that branch in the run history."""


class VocabularyError(DataError):
    """A shipped tokenizer vocabulary is missing, unreadable or fails its sha256 check."""


class ScoringError(DataError):
    """The cell cannot be scored as configured (e.g. the case has no expected value)."""


class JudgeParseError(ScoringError):
    """The judge model answered, but no grade could be read from its reply."""


# -------------------------------------------------------------------------------------------------- money


class PriceUnknown(WorkbenchError, LookupError):
    """The price table has no entry for a model: an unpriced model is never counted as free."""


class BudgetExceeded(WorkbenchError):
    """A run would cost, or has cost, more than its budget allows."""


# ------------------------------------------------------------------------------------------------ harness


class HarnessError(WorkbenchError):
    """The matrix of calls could not start or go on."""


class RunCancelled(HarnessError):
    """The run was cancelled before it finished; finished cells are kept."""


class CellStopped(HarnessError):
    """Control flow: a worker stops before sending a cell because the run is stopping (never shown)."""


class LedgerError(DataError):
    """A run folder's ledger (``results.sqlite``) cannot be used: damaged, or written by a newer workbench. Found
    before anything is sent; the message names the file and how to recover."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path


class RequestChanged(DataError):
    """A re-run into a run folder would send finished cells with a different request (endpoint, api-version,
    deployment or body) than the one their stored answers came from. ``changes`` lists what differs."""

    def __init__(self, message: str, changes: list[str] | None = None, cells: int = 0):
        super().__init__(message)
        self.changes, self.cells = list(changes or []), cells


class PreflightFailed(ConfigError):
    """A target cannot be used: no credentials, or its endpoint does not answer. Raised before the first
    request of a run; ``profile`` is the profile's name."""

    def __init__(self, message: str, profile: str | None = None):
        super().__init__(message)
        self.profile = profile


class CellFailed(HarnessError):
    """One cell gave up after its retries (5xx, timeouts, connection errors: ``max_retries``) or after waiting
    on 429s longer than ``rate_limit_patience_s``. The message names the limit, the attempts and the target;
    ``__cause__`` is the last error, whose type the cell's record keeps as ``error_type``."""

    def __init__(self, message: str, rate_limited: int = 0):
        super().__init__(message)
        self.rate_limited = rate_limited


class BatchFileInvalid(DataError):
    """A Batch API input file breaks one of the provider's rules: a duplicate ``custom_id``, more than one model
    (deployment) in a file, a UTF-8 byte-order mark, too many lines or bytes, a line that is not a request.
    Raised before the file is uploaded; the message names the file, the line and what to do."""

    def __init__(self, message: str, code: str = "invalid_request", line: int | None = None):
        super().__init__(message)
        self.code, self.line = code, line


class BatchFailed(HarnessError):
    """A Batch API job could not be submitted, tracked or read back (the provider refused the upload or the job,
    or a run folder's batches cannot be resumed). Cells already merged are kept; the message says what to do."""


# ------------------------------------------------------------------------------------------------- gates


class GatesFailed(WorkbenchError, AssertionError):
    """A quality gate did not pass. An ``AssertionError`` too, so pytest shows a failed test (not an error);
    ``report`` is the :class:`~workbench.gates.GateReport` with every check. ``workbench eval`` exits 3."""

    def __init__(self, message: str, report: Any = None):
        super().__init__(message)
        self.report = report


# ----------------------------------------------------------------------------------------------- scorers


class ScoreFailed(WorkbenchError):
    """Control flow inside a scorer: return a failing score (value 0) with this explanation (never shown)."""

    def __init__(self, explanation: str, answer: str | None = None, *, verdict: str = "fail",
                 evidence: str | None = None, span: tuple[int, int] | None = None, **metadata: Any):
        super().__init__(explanation)
        self.explanation, self.answer, self.metadata = explanation, answer, metadata
        self.verdict, self.evidence, self.span = verdict, evidence, span


# -------------------------------------------------------------------------------------------- notebook runs


class RunError(WorkbenchError):
    """Base class of the errors of ``workbench run`` / ``rerun`` / ``report``."""


class NotebookFailed(RunError):
    """A cell of the notebook raised; the partial notebook, manifest and report are in ``run_dir``."""

    def __init__(self, message: str, failure: Any, run_dir: Path):
        super().__init__(message)
        self.failure = failure  # a workbench.runs.manifest.Failure
        self.run_dir = run_dir

    @property
    def cell_index(self) -> int | None:
        return self.failure.cell_index


# ------------------------------------------------------------------------------------------------ warnings


class WorkbenchWarning(UserWarning):
    """Base class of the workbench's warnings (filter them with ``warnings.simplefilter(..., WorkbenchWarning)``)."""


class ParameterWarning(WorkbenchWarning):
    """A request parameter was dropped or rewritten for the target model."""


class SpecWarning(WorkbenchWarning):
    """A spec means something different than it did when it was written (e.g. ``seed`` no longer samples)."""


class CacheCorrupt(WorkbenchWarning):
    """The response cache file was damaged: it was moved aside (the message names where) and a fresh one started."""
