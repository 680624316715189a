"""Fine-tuning data from a run: the cells people approved (or corrected, or the cases' expected answers) as
chat-format JSONL for OpenAI / Azure OpenAI fine-tuning, checked, split and priced before anything is uploaded::

    select.py    --where terms (human=approved, exact=pass, variant=...), validated once for every entry point
    examples.py  cells -> {"messages": [...]} examples (tool calls kept), the seeded train/validation split by case
    validate.py  the format rules (roles, empty content, tool calls, per-example token limit), with codes
    estimate.py  tokens (tiktoken, the cookbook's method) and training cost per base model (dated prices)
    export.py    finetune_data (look) and export_finetune_data (write train.jsonl, validation.jsonl, finetune.json)

``workbench finetune-data RUN --where human=approved --out DIR`` is :func:`export_finetune_data`.
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "finetune_data": "export", "export_finetune_data": "export", "FinetuneData": "export",
    "parse_where": "select", "build_examples": "examples", "split_examples": "examples",
    "validate_examples": "validate", "validate_jsonl": "validate", "Problem": "validate",
    "estimate_training": "estimate", "estimate_all": "estimate", "TrainingEstimate": "estimate",
    "example_tokens": "estimate", "default_epochs": "estimate",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
