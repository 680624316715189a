"""Prompt Workbench: prompt engineering for Azure OpenAI, OpenAI and compatible servers, in Jupyter.

The public API, imported lazily so that ``workbench tokens`` and friends start fast::

    from workbench import Experiment, Variant, load_dataset, run
    exp = Experiment(name="demo", dataset="cases.csv", variants=[Variant(name="v1", user="{{ text }}")],
                     scorers=["exact"])
    results = run(exp)          # embedded local model by default; results.summary(), results.df
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "get_provider": "providers", "Provider": "providers",
    "Profile": "config", "load_config": "config",
    "resolve_model": ("catalog", "resolve"), "load_catalog": "catalog",
    "Completion": "records", "Usage": "records",
    "Case": "datasets", "Dataset": "datasets", "load_dataset": "datasets",
    "Variant": "variants", "Target": "variants", "Turn": "variants", "grid": "variants",
    "Experiment": "experiment", "load_experiment": "experiment",
    "run": "harness", "arun": "harness", "start": "harness", "plan": "harness", "estimate": "harness",
    "Results": "results", "CellResult": "results",
    "ResponseCache": "store", "RunLedger": "ledger", "RunStore": "ledger",
    "load_example": "examples", "example_path": "examples",
    "WorkbenchError": "errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())

# no key in a log line: records of the workbench's, the SDK's and httpx's loggers are masked where they are made
from .secrets import install_log_redaction  # noqa: E402

install_log_redaction()
