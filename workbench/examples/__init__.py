"""Example experiments shipped with the package (the demo runs one of them by default, with no key)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import NotFoundError

EXAMPLES = {"sentiment": "sentiment.yaml", "extraction": "extraction.yaml", "tools": "tools.yaml"}
DEFAULT = "sentiment"


def example_path(name: str = DEFAULT) -> Path:
    """Path of a shipped example experiment (``sentiment``, ``extraction`` or ``tools``)."""
    if name not in EXAMPLES:
        raise NotFoundError(f"No example {name!r}; examples: {', '.join(EXAMPLES)}")
    return Path(str(resources.files(__name__).joinpath(EXAMPLES[name])))


def load_example(name: str = DEFAULT):
    from ..experiment import load_experiment

    return load_experiment(example_path(name))
