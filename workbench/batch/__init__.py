"""Scale out through the provider's Batch API (OpenAI Batch, Azure Global Batch / Data Zone Batch).

The provider runs the work at half price on its own quota, within 24 hours; the workbench plans the input
files (:mod:`~workbench.batch.files`), submits them, tracks them in the run ledger, merges the answers by
``custom_id`` (the cell key) and prices them (:mod:`~workbench.batch.engine`)::

    results = run(exp, mode="batch", out="runs/nightly")     # submit, poll, merge (a notebook: the same)
    workbench.batch.batch_status("runs/nightly")              # every batch: status and counts
    workbench.batch.resume("runs/nightly")                    # after Ctrl-C, a kernel restart or kill -9
    workbench.batch.cancel("runs/nightly")                    # the finished part is kept

From the shell: ``workbench eval SPEC --batch``, ``workbench batch status|resume|cancel RUN``.
"""

from .engine import (
    DEFAULT_POLL_S,
    BatchJobStatus,
    BatchRun,
    BatchSettings,
    BatchStatus,
    aresume,
    batch_status,
    batch_summary,
    cancel,
    resume,
)
from .files import BatchFile, BatchLimits, check_file, line_for, split_files

__all__ = [
    "BatchFile", "BatchJobStatus", "BatchLimits", "BatchRun", "BatchSettings", "BatchStatus", "DEFAULT_POLL_S",
    "aresume", "batch_status", "batch_summary", "cancel", "check_file", "line_for", "resume", "split_files",
]
