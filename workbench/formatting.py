"""Numbers for people: the one way money, token counts, rates, scores and durations are written.

Reports, widgets, the CLI and notebooks all format through these functions, so a cost reads the same
everywhere and is never hidden by rounding (``$0.0000`` for a call that cost $0.00004 is a lie; a free call
is ``$0``). Pure functions of numbers; no pandas, so the CLI can import this at start-up.

- :func:`usd`: three significant digits below a dollar (``$0.000138``), cents above (``$12.35``), ``$0``
  for free, ``–`` for unknown (a model without a price is not free);
- :func:`count`: whole numbers with thousands separators (``978``, ``12,345``) - tokens, calls, cases;
- :func:`percent`: a 0..1 rate as a percentage (``38%``; one decimal below 10%: ``2.5%``);
- :func:`score`: a mean score, as a percentage when it is a pass rate, else two decimals;
- :func:`interval`: ``mean [low, high]`` in the same unit;
- :func:`seconds`: a duration (``0.42 s``, ``12.3 s``, ``4 min 05 s``);
- :func:`p_value`: ``<0.001``, ``0.03``, ``0.41``;
- :func:`plural`: a count with its noun (``1 token``, ``3 calls``);
- :func:`tokens_per_s`: an output rate (``85 tok/s``, ``0.012 tok/s``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

MISSING = "–"  # what an unknown value prints as (an en dash: visibly not a zero)

__all__ = ["MISSING", "is_missing", "usd", "count", "percent", "score", "interval", "seconds", "p_value", "number",
           "is_rate", "summary_row", "SUMMARY_HEADERS", "plural", "tokens_per_s"]


def is_missing(value: Any) -> bool:
    """None, NaN or pandas' NA: a value that is not known (and must not print as 0)."""
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN and pd.NA are not equal to themselves
    except (TypeError, ValueError):  # pd.NA raises on bool()
        return True


def usd(value: Any, *, unknown: str = MISSING) -> str:
    """Dollars with three significant digits however small (as people read prices); ``$0`` for free.

    >>> usd(0.000137976), usd(0.5), usd(12.3456), usd(0), usd(None)
    ('$0.000138', '$0.500', '$12.35', '$0', '–')
    """
    if is_missing(value):
        return unknown
    v = float(value)
    if v == 0:
        return "$0"
    sign = "-" if v < 0 else ""
    v = abs(v)
    if v >= 1:
        return f"{sign}${v:,.2f}"
    digits = 2 - int(math.floor(math.log10(v)))
    text = f"{v:.{digits}f}"
    if float(text) >= 1:  # 0.9996 rounds up to a dollar
        return f"{sign}${float(text):,.2f}"
    return f"{sign}${text}"


def count(value: Any) -> str:
    """A whole number with thousands separators (tokens, calls, cases): ``978.0`` -> ``978``."""
    if is_missing(value):
        return MISSING
    return f"{round(float(value)):,}"


def percent(value: Any) -> str:
    """A 0..1 rate as a percentage: ``0.375`` -> ``38%``; one decimal below 10% (``0.025`` -> ``2.5%``)."""
    if is_missing(value):
        return MISSING
    p = round(float(value) * 100, 1)
    if abs(p) < 10 and not p.is_integer():
        return f"{p:.1f}%"
    return f"{p:.0f}%"


def score(value: Any, *, rate: bool = False) -> str:
    """A mean score: a percentage when it is a pass rate (``rate``), else two decimals."""
    if is_missing(value):
        return MISSING
    return percent(value) if rate else f"{float(value):.2f}"


def interval(mean: Any, low: Any, high: Any, *, rate: bool = False) -> str:
    """``mean [low, high]``: ``38% [21%, 58%]`` for a pass rate, ``0.62 [0.48, 0.75]`` otherwise."""
    if is_missing(mean):
        return MISSING
    if is_missing(low) or is_missing(high):
        return score(mean, rate=rate)
    return f"{score(mean, rate=rate)} [{score(low, rate=rate)}, {score(high, rate=rate)}]"


def seconds(value: Any) -> str:
    """A duration: ``4 ms``, ``0.42 s``, ``12.3 s``, ``4 min 05 s`` (a cached call's 3 ms is not ``0.00 s``)."""
    if is_missing(value):
        return MISSING
    s = float(value)
    if s < 0.1:
        return "<1 ms" if 0 < s < 0.0005 else f"{s * 1000:.0f} ms"
    if s < 10:
        return f"{s:.2f} s"
    if s < 60:
        return f"{s:.1f} s"
    minutes, rest = divmod(round(s), 60)
    return f"{minutes} min {rest:02d} s"


def p_value(p: Any) -> str:
    """A p-value as people quote it: ``<0.001``, ``0.032``, ``0.41``."""
    if is_missing(p):
        return MISSING
    p = float(p)
    return "<0.001" if p < 0.001 else (f"{p:.2g}" if p < 0.1 else f"{p:.2f}")


def number(value: Any, digits: int = 2) -> str:
    """Any other number: integers (and integral floats) as counts, others with ``digits`` decimals."""
    if is_missing(value):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer()):
        return count(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def is_rate(method: Any) -> bool:
    """Whether a summary row's interval is a pass rate's (Wilson): then it reads as a percentage."""
    return isinstance(method, str) and method.startswith("wilson")


SUMMARY_HEADERS = ("variant", "target", "n", "score [95% CI]", "ambiguous", "refused", "errors", "cost")


def summary_row(row: Mapping[str, Any]) -> dict[str, str]:
    """One row of :func:`workbench.stats.summarize` (a mapping) as people read it, keyed by
    :data:`SUMMARY_HEADERS`: the score with its interval (a percentage for pass rates), counts as integers,
    the cost in dollars. Shared by the report, the widgets and the CLI so the numbers read the same."""
    rate = is_rate(row.get("method"))
    return {
        "variant": str(row.get("variant", "")), "target": str(row.get("target", "")),
        "n": count(row.get("n")),
        "score [95% CI]": interval(row.get("mean"), row.get("ci_low"), row.get("ci_high"), rate=rate),
        "ambiguous": count(row.get("n_ambiguous", 0)), "refused": count(row.get("n_refused", 0)),
        "errors": count(row.get("n_errors", 0)), "cost": usd(row.get("cost_usd")),
    }


def plural(n: int, noun: str, plural_form: str | None = None) -> str:
    """A count with its noun: ``1 token``, ``2 tokens``, ``1,024 calls`` (``plural_form`` for irregular ones)."""
    return f"{count(n)} {noun if n == 1 else (plural_form or noun + 's')}"


def tokens_per_s(value: Any) -> str:
    """An output rate: ``85 tok/s``, ``3.5 tok/s``, ``0.012 tok/s`` (two significant digits below ten: a slow
    rate never reads as ``0.0``)."""
    if is_missing(value):
        return MISSING
    v = float(value)
    if v >= 10:
        return f"{v:.0f} tok/s"
    if v <= 0:
        return "0 tok/s"
    digits = max(1, 1 - int(math.floor(math.log10(v))))
    return f"{v:.{digits}f} tok/s"
