"""Agreement between two raters - a scorer and a person, or two people: the confusion matrix, accuracy and
Cohen's kappa with its confidence interval, and the items they disagree on.

Pure functions over plain data (labels keyed by item), no widgets and no pandas; ``to_frame()`` builds a table
on request. :mod:`workbench.review` feeds them human reviews and scores of a run.

Formulas (``n`` items, ``p_ij`` the share of items rater A put in class ``i`` and rater B in class ``j``,
``p_i.`` / ``p_.j`` the row / column shares):

- observed agreement ``p_o = sum_i p_ii`` (the accuracy of B against A), with a **Wilson** interval;
- chance agreement ``p_e = sum_i p_i. * p_.i``;
- **Cohen's kappa** ``k = (p_o - p_e) / (1 - p_e)`` (Cohen 1960, "A coefficient of agreement for nominal
  scales", Educational and Psychological Measurement 20(1)); undefined (NaN) when ``p_e = 1`` - both raters
  used one and the same class for every item, so agreement beyond chance cannot be measured;
- its large-sample variance, **Fleiss, Cohen & Everitt (1969)**, "Large sample standard errors of kappa and
  weighted kappa", Psychological Bulletin 72(5), 323-327 (also Fleiss, Levin & Paik, *Statistical Methods for
  Rates and Proportions*, 3rd ed., ch. 18)::

      var(k) = [ sum_i p_ii (1 - (p_i. + p_.i)(1 - k))^2
                 + (1 - k)^2 sum_{i != j} p_ij (p_.i + p_j.)^2
                 - (k - p_e (1 - k))^2 ] / (n (1 - p_e)^2)

  and the Wald interval ``k +- z * sqrt(var)``, clipped to [-1, 1]. With few items (say under 30) it is rough:
  the report says how many items it rests on.
"""

from __future__ import annotations

import html
import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from .errors import DataError

__all__ = ["Confusion", "Kappa", "Agreement", "Disagreement", "confusion_matrix", "cohen_kappa", "agreement"]

KAPPA_METHOD = "Cohen's kappa; SE of Fleiss, Cohen & Everitt (1969), Wald interval"


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


@dataclass(frozen=True)
class Confusion:
    """Counts of items by rater A's label (rows) and rater B's label (columns)."""

    labels: tuple[str, ...]
    counts: tuple[tuple[int, ...], ...]
    a: str = "a"
    b: str = "b"

    @property
    def n(self) -> int:
        return sum(map(sum, self.counts))

    @property
    def agreed(self) -> int:
        return sum(self.counts[i][i] for i in range(len(self.labels)))

    def count(self, a_label: str, b_label: str) -> int:
        return self.counts[self.labels.index(a_label)][self.labels.index(b_label)]

    def to_frame(self):
        """The matrix as a DataFrame: rows rater A, columns rater B."""
        import pandas as pd

        return pd.DataFrame(list(self.counts), index=pd.Index(self.labels, name=f"{self.a} \\ {self.b}"),
                            columns=list(self.labels))

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(b)}</th>" for b in self.labels)
        rows = "".join(
            f"<tr><th>{html.escape(a)}</th>" + "".join(
                f'<td style="text-align:right;{"font-weight:bold" if i == j else ""}">{c}</td>'
                for j, c in enumerate(row)) + "</tr>"
            for i, (a, row) in enumerate(zip(self.labels, self.counts)))
        return (f'<table class="wb-confusion"><thead><tr><th>{html.escape(self.a)} \\ {html.escape(self.b)}</th>'
                f"{head}</tr></thead><tbody>{rows}</tbody></table>")


@dataclass(frozen=True)
class Kappa:
    """Cohen's kappa with its standard error and interval (see the module docstring for the formulas)."""

    value: float
    se: float
    low: float
    high: float
    p_observed: float
    p_expected: float
    n: int
    confidence: float = 0.95
    method: str = KAPPA_METHOD

    @property
    def defined(self) -> bool:
        return not math.isnan(self.value)

    def describe(self) -> str:
        """``kappa 0.40 [0.15, 0.65] (95%, n=50)``; says why when kappa is undefined."""
        if not self.defined:
            return (f"kappa undefined (n={self.n}): both raters gave every item the same single label, so "
                    f"agreement beyond chance cannot be measured")
        return (f"kappa {self.value:.2f} [{self.low:.2f}, {self.high:.2f}] ({self.confidence:.0%}, n={self.n})")


@dataclass(frozen=True)
class Disagreement:
    """One item the raters labelled differently."""

    key: Hashable
    a: str
    b: str


@dataclass(frozen=True)
class Agreement:
    """How far rater B agrees with rater A on the items both rated."""

    a: str
    b: str
    confusion: Confusion
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    kappa: Kappa
    disagreements: tuple[Disagreement, ...]
    only_a: int = 0  # items rater A labelled and B did not (unscored, a scorer error): not in the figures
    only_b: int = 0

    @property
    def n(self) -> int:
        return self.confusion.n

    def summary(self) -> str:
        """One sentence a reader can check."""
        if not self.n:
            return f"{self.b} and {self.a} have no item in common: nothing to compare."
        acc = (f"{self.b} agrees with {self.a} on {self.confusion.agreed} of {self.n} items "
               f"({self.accuracy:.0%} [{self.accuracy_low:.0%}, {self.accuracy_high:.0%}])")
        left = [f"{k} labelled only by {who}" for who, k in ((self.a, self.only_a), (self.b, self.only_b)) if k]
        return acc + "; " + self.kappa.describe() + (f"; not compared: {', '.join(left)}" if left else "") + "."

    def __repr__(self) -> str:
        return f"<Agreement {self.b} vs {self.a}: {self.summary()}>"

    def as_dict(self) -> dict[str, Any]:
        k = self.kappa
        return {"a": self.a, "b": self.b, "n": self.n, "labels": list(self.confusion.labels),
                "confusion": [list(r) for r in self.confusion.counts], "accuracy": self.accuracy,
                "accuracy_ci": [self.accuracy_low, self.accuracy_high], "kappa": None if not k.defined else k.value,
                "kappa_se": None if not k.defined else k.se,
                "kappa_ci": None if not k.defined else [k.low, k.high], "p_expected": k.p_expected,
                "confidence": k.confidence, "method": k.method, "disagreements": len(self.disagreements),
                "only_a": self.only_a, "only_b": self.only_b}

    def _repr_html_(self) -> str:
        return (f'<div class="wb-agreement" style="font:13px system-ui,sans-serif"><p>{html.escape(self.summary())}'
                f"</p>{self.confusion.html()}</div>")


def _label_order(seen: Sequence[str], labels: Sequence[str] | None) -> tuple[str, ...]:
    if labels is None:
        preferred = [x for x in ("pass", "fail") if x in seen]
        return tuple(preferred + sorted(set(seen) - set(preferred), key=str))
    unknown = sorted(set(seen) - set(labels), key=str)
    if unknown:
        raise DataError(f"labels {unknown} are not among the given labels {list(labels)}")
    return tuple(labels)


def confusion_matrix(a: Sequence[str], b: Sequence[str], *, labels: Sequence[str] | None = None,
                     names: tuple[str, str] = ("a", "b")) -> Confusion:
    """The confusion matrix of two equally long label sequences (item ``i`` is ``a[i]`` vs ``b[i]``)."""
    if len(a) != len(b):
        raise DataError(f"confusion_matrix needs label lists of the same length, got {len(a)} and {len(b)}")
    order = _label_order([*map(str, a), *map(str, b)], labels)
    index = {label: i for i, label in enumerate(order)}
    counts = [[0] * len(order) for _ in order]
    for x, y in zip(a, b):
        counts[index[str(x)]][index[str(y)]] += 1
    return Confusion(order, tuple(tuple(r) for r in counts), *names)


def cohen_kappa(table: Confusion | Sequence[Sequence[int]], confidence: float = 0.95) -> Kappa:
    """Cohen's kappa of a square table of counts (rows rater A, columns rater B), with the Fleiss-Cohen-Everitt
    standard error and a Wald interval clipped to [-1, 1]."""
    counts = [list(r) for r in (table.counts if isinstance(table, Confusion) else table)]
    k = len(counts)
    if any(len(r) != k for r in counts) or any(c < 0 for r in counts for c in r):
        raise DataError("cohen_kappa needs a square table of non-negative counts")
    z = _z(confidence)
    n = sum(map(sum, counts))
    if n == 0:
        return Kappa(math.nan, math.nan, math.nan, math.nan, math.nan, math.nan, 0, confidence)
    p = [[c / n for c in r] for r in counts]
    rows = [sum(r) for r in p]
    cols = [sum(p[i][j] for i in range(k)) for j in range(k)]
    p_o = sum(p[i][i] for i in range(k))
    p_e = sum(rows[i] * cols[i] for i in range(k))
    if math.isclose(p_e, 1.0):
        return Kappa(math.nan, math.nan, math.nan, math.nan, p_o, p_e, n, confidence)
    kappa = (p_o - p_e) / (1 - p_e)
    diag = sum(p[i][i] * (1 - (rows[i] + cols[i]) * (1 - kappa)) ** 2 for i in range(k))
    off = (1 - kappa) ** 2 * sum(p[i][j] * (cols[i] + rows[j]) ** 2 for i in range(k) for j in range(k) if i != j)
    var = (diag + off - (kappa - p_e * (1 - kappa)) ** 2) / (n * (1 - p_e) ** 2)
    se = math.sqrt(max(var, 0.0))
    return Kappa(kappa, se, max(-1.0, kappa - z * se), min(1.0, kappa + z * se), p_o, p_e, n, confidence)


def agreement(a: Mapping[Hashable, str], b: Mapping[Hashable, str], *, names: tuple[str, str] = ("a", "b"),
              labels: Sequence[str] | None = None, confidence: float = 0.95) -> Agreement:
    """Agreement of rater B with rater A over the items both labelled (the keys they share).

    ``a`` and ``b`` map an item (a cell key, a case id) to its label; an item only one of them labelled is
    counted in ``only_a`` / ``only_b``, never guessed. Disagreements come in ``a``'s item order.
    """
    from .stats import wilson_ci

    shared = [key for key in a if key in b]
    xs, ys = [str(a[key]) for key in shared], [str(b[key]) for key in shared]
    table = confusion_matrix(xs, ys, labels=labels, names=names)
    n = table.n
    low, high = wilson_ci(table.agreed, n, confidence) if n else (math.nan, math.nan)
    return Agreement(
        a=names[0], b=names[1], confusion=table, accuracy=table.agreed / n if n else math.nan,
        accuracy_low=low, accuracy_high=high, kappa=cohen_kappa(table, confidence),
        disagreements=tuple(Disagreement(key, x, y) for key, x, y in zip(shared, xs, ys) if x != y),
        only_a=sum(1 for key in a if key not in b), only_b=sum(1 for key in b if key not in a),
    )
