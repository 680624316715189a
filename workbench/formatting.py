"""Counts, durations and rates as people read them (one place, so the CLI and the widgets say things alike).

Money has its own rule, next to the prices: :func:`workbench.costs.format_usd`.
"""

from __future__ import annotations


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """``1 token``, ``2 tokens``, ``1,024 tokens`` (``plural_form`` for irregular nouns)."""
    return f"{n:,} {noun if n == 1 else (plural_form or noun + 's')}"


def format_seconds(seconds: float | None, unknown: str = "-") -> str:
    """``0.31 s``, ``12.4 s``, ``2 min 05 s``; None is ``unknown``."""
    if seconds is None:
        return unknown
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"


def format_rate(tokens_per_s: float | None, unknown: str = "-") -> str:
    """``42 tok/s`` (``3.5 tok/s`` below ten); None is ``unknown``."""
    if tokens_per_s is None:
        return unknown
    return f"{tokens_per_s:.1f} tok/s" if tokens_per_s < 10 else f"{tokens_per_s:.0f} tok/s"
