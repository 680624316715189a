"""What a gate says: :class:`Gate`, its one-line form (``"label.ci_low >= 0.8 for json-schema"``) and its checks.

The same :class:`Gate` comes from an experiment's ``gates:`` list, a ``workbench eval --gate`` flag, a notebook or
the pytest helpers; every one goes through :class:`Gate`'s validation, and the references a gate makes (scorer,
variant, target) are checked against the experiment by :func:`gate_problems` (called by ``Experiment``'s own
validator, so a typo'd scorer or an impossible threshold is refused at load time with its field path).

The one-line grammar (docs/experiment-spec.md, "Gates")::

    SUBJECT OP THRESHOLD [for VARIANT] [on TARGET]

    SUBJECT    SCORER | SCORER.mean | SCORER.ci_low | SCORER.ci_high | cost | latency_p95 | error_rate
    OP         >= (at least) | <= (at most)
    THRESHOLD  a number (0.9, 90%, $0.50, 2.5s, 800ms) or ``baseline`` (no significant regression)

This module is light (no pandas): the experiment spec imports it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from pydantic import ConfigDict, model_validator

from ..schema import Model

Metric = Literal["mean", "ci_low", "ci_high", "cost", "latency_p95", "error_rate"]
SCORE_METRICS = ("mean", "ci_low", "ci_high")
RUN_METRICS = ("cost", "latency_p95", "error_rate")
BASELINE = "baseline"

# the direction each metric can be gated in: (min allowed, max allowed)
_DIRECTIONS: dict[str, tuple[bool, bool]] = {
    "mean": (True, True), "ci_low": (True, False), "ci_high": (False, True),
    "cost": (False, True), "latency_p95": (False, True), "error_rate": (False, True),
}
_WHAT = {
    "mean": "the mean score", "ci_low": "the lower bound of the 95% interval",
    "ci_high": "the upper bound of the 95% interval", "cost": "the cost in USD (list prices)",
    "latency_p95": "the 95th percentile of latency in seconds", "error_rate": "the share of calls that failed",
}
_ALIASES = {"latency.p95": "latency_p95", "p95_latency": "latency_p95", "errors": "error_rate",
            "cost_usd": "cost"}
GRAMMAR = "SUBJECT >= THRESHOLD or SUBJECT <= THRESHOLD, optionally followed by `for VARIANT` and `on TARGET`"
EXAMPLES = "label >= 0.9, label.ci_low >= 0.8 for json-schema, cost <= 0.50, latency_p95 <= 3s, label >= baseline"

_LINE = re.compile(
    r"^\s*(?P<subject>[^<>=!]+?)\s*(?P<op>>=|<=|=>|=<|==|!=|=|>|<)\s*(?P<value>[^\s]+)"
    r"(?:\s+for\s+(?P<variant>.+?))?(?:\s+on\s+(?P<target>\S+))?\s*$"
)


class Gate(Model):
    """One quality gate: a metric of the results, a threshold, and where it applies.

    Build one from its one-line form (``Gate.parse("label.ci_low >= 0.8 for json-schema")``, or just the string
    in a spec's ``gates:`` list) or field by field (``Gate(scorer="label", metric="ci_low", min=0.8)``).
    Without ``variant``/``target`` a score, latency or error-rate gate applies to every variant x target, each
    checked on its own; a cost gate without them caps the whole run.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    _spec_noun = "gate"

    metric: Metric = "mean"
    """What is measured: ``mean``, ``ci_low``, ``ci_high`` (of a scorer), ``cost``, ``latency_p95``, ``error_rate``."""
    scorer: str | None = None
    """The scorer whose scores are gated (score metrics and baseline gates); None for run metrics."""
    min: float | Literal["baseline"] | None = None
    """The value must be at least this; ``"baseline"``: not significantly lower than the baseline run."""
    max: float | Literal["baseline"] | None = None
    """The value must be at most this; ``"baseline"``: not significantly higher than the baseline run."""
    variant: str | None = None
    """Apply to this variant only (default: each variant)."""
    target: str | None = None
    """Apply to this target only, as ``PROFILE`` or ``PROFILE:MODEL`` (default: each target)."""
    name: str | None = None
    """A name for reports and JUnit (default: the one-line form)."""

    @model_validator(mode="before")
    @classmethod
    def _from_line(cls, data: Any) -> Any:
        if isinstance(data, str):
            return parse_line(data)
        if isinstance(data, dict) and "gate" in data:  # {gate: "label >= 0.9", name: accuracy}
            rest = {k: v for k, v in data.items() if k != "gate"}
            return {**parse_line(str(data["gate"])), **rest}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Gate:
        if self.min is None and self.max is None:
            raise ValueError("a gate needs a threshold: `min` (at least) or `max` (at most)")
        if self.min is not None and self.max is not None:
            raise ValueError(f"give one of `min` or `max`, not both (min {self.min}, max {self.max}): write two "
                             "gates for a range")
        lower, upper = _DIRECTIONS[self.metric]
        bound = self.min if self.min is not None else self.max
        if bound == BASELINE:
            if self.metric != "mean":
                raise ValueError(f"a baseline gate compares mean scores (paired): write `{self.scorer or 'SCORER'} "
                                 f">= baseline`, not {self.metric}")
        elif self.min is not None and not lower:
            raise ValueError(f"{self.metric} can only have a `max` (<=): {_WHAT[self.metric]} is gated from above")
        elif self.max is not None and not upper:
            raise ValueError(f"{self.metric} can only have a `min` (>=): {_WHAT[self.metric]} is gated from below")
        if self.metric in SCORE_METRICS and not self.scorer:
            raise ValueError(f"a {self.metric} gate needs a `scorer` (e.g. `label >= 0.9`)")
        if self.metric in RUN_METRICS and self.scorer:
            raise ValueError(f"{self.metric} is a property of the calls, not of a scorer: remove `scorer`")
        if isinstance(bound, float):
            _check_bound(self.metric, bound)
        return self

    # -- reading -------------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, line: str | Gate) -> Gate:
        """A gate from its one-line form; raises :class:`~workbench.errors.SpecError` saying what to write."""
        return line if isinstance(line, Gate) else cls.model_validate(line)

    @property
    def against_baseline(self) -> bool:
        return BASELINE in (self.min, self.max)

    @property
    def op(self) -> str:
        return ">=" if self.min is not None else "<="

    @property
    def threshold(self) -> float | str:
        """The bound: a number, or ``"baseline"``."""
        return self.min if self.min is not None else self.max  # type: ignore[return-value]

    @property
    def subject(self) -> str:
        if self.metric in RUN_METRICS:
            return self.metric
        return self.scorer if self.metric == "mean" else f"{self.scorer}.{self.metric}"  # type: ignore[return-value]

    @property
    def expression(self) -> str:
        """The canonical one-line form; :meth:`parse` reads it back to an equal gate."""
        t = self.threshold
        value = t if isinstance(t, str) else _number(t)
        if isinstance(t, float):
            value = {"cost": f"${value}", "latency_p95": f"{value}s"}.get(self.metric, value)
        scope = (f" for {self.variant}" if self.variant else "") + (f" on {self.target}" if self.target else "")
        return f"{self.subject} {self.op} {value}{scope}"

    @property
    def label(self) -> str:
        return self.name or self.expression

    def spec(self) -> str | dict[str, Any]:
        """The YAML form: the one-line string, or ``{gate: ..., name: ...}`` when it has a name."""
        return {"gate": self.expression, "name": self.name} if self.name else self.expression


def parse_line(text: str) -> dict[str, Any]:
    """``"label.ci_low >= 0.8 for json-schema on local"`` -> the fields of a :class:`Gate` (not yet validated)."""
    m = _LINE.match(text)
    if not m:
        raise ValueError(f"cannot read gate {text!r}: write {GRAMMAR}, e.g. {EXAMPLES}")
    op = m["op"]
    if op not in (">=", "<="):
        raise ValueError(f"gate {text!r}: use >= (at least) or <= (at most); gates include their threshold"
                         + (f", so write {'>=' if '>' in op else '<='}" if op in (">", "<", "=>", "=<") else ""))
    metric, scorer = _subject(m["subject"].strip(), text)
    value = _threshold(m["value"], metric, text)
    fields: dict[str, Any] = {"metric": metric, "scorer": scorer, "min" if op == ">=" else "max": value}
    if m["variant"]:
        fields["variant"] = m["variant"].strip()
    if m["target"]:
        fields["target"] = m["target"].strip()
    return fields


def _subject(subject: str, text: str) -> tuple[str, str | None]:
    subject = _ALIASES.get(subject, subject)
    if subject in RUN_METRICS:
        return subject, None
    if subject == "latency":
        raise ValueError(f"gate {text!r}: latency is gated on its 95th percentile: write latency_p95")
    scorer, dot, stat = subject.rpartition(".")
    if not dot:
        scorer, stat = subject, "mean"
    if stat not in SCORE_METRICS:
        close = difflib.get_close_matches(stat, [*SCORE_METRICS, *RUN_METRICS], n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"gate {text!r}: {stat!r} is not something a gate measures{hint} "
                         f"(a scorer's mean, ci_low or ci_high; or cost, latency_p95, error_rate)")
    if not re.fullmatch(r"[\w.\-]+", scorer):
        raise ValueError(f"gate {text!r}: {scorer!r} is not a scorer name")
    return stat, scorer


def _threshold(raw: str, metric: str, text: str) -> float | str:
    if raw == BASELINE:
        return BASELINE
    value, unit = raw, ""
    for prefix in ("$",):
        if value.startswith(prefix):
            value, unit = value[1:], prefix
    for suffix in ("%", "ms", "s"):
        if value.endswith(suffix) and not unit:
            value, unit = value[: -len(suffix)], suffix
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"gate {text!r}: the threshold {raw!r} is not a number (or `baseline`)") from None
    allowed = {"$": ("cost",), "ms": ("latency_p95",), "s": ("latency_p95",), "%": (*SCORE_METRICS, "error_rate")}
    if unit and metric not in allowed[unit]:
        raise ValueError(f"gate {text!r}: {unit!r} does not fit {metric} ({_WHAT[metric]})")
    return number / 100 if unit == "%" else number / 1000 if unit == "ms" else number


def _check_bound(metric: str, bound: float) -> None:
    """Thresholds no result could ever meet (or that mean nothing) are refused."""
    if not math.isfinite(bound):
        raise ValueError(f"the threshold must be a finite number, got {bound!r}")
    if metric == "error_rate" and not 0 <= bound <= 1:
        raise ValueError(f"error_rate is a share of calls between 0 and 1 (5% is 0.05), got {_number(bound)}")
    if metric == "cost" and bound < 0:
        raise ValueError(f"a cost cannot be below $0, got {_number(bound)}")
    if metric == "latency_p95" and bound <= 0:
        raise ValueError(f"latency_p95 is in seconds and above 0, got {_number(bound)}")


def _number(x: float) -> str:
    return f"{x:g}" if abs(x) >= 1e-4 or x == 0 else repr(x)


# ------------------------------------------------------------------------------------------ references


def bounded_scorers(scorer_specs: Iterable[Any]) -> dict[str, bool]:
    """Scorer name -> whether its scores lie between 0 and 1 (every built-in scorer; not your own functions)."""
    from ..scorers import SCORERS, Scorer, scorer_name
    from ..scorers.python import PythonScorer

    out: dict[str, bool] = {}
    for spec in scorer_specs:
        name = scorer_name(spec)
        if isinstance(spec, Scorer):
            out[name] = not isinstance(spec, PythonScorer)
            continue
        kind = spec if isinstance(spec, str) else (
            str(spec.get("type") or next(iter(spec), "")) if isinstance(spec, dict) else "")
        target = SCORERS.get(kind)
        out[name] = isinstance(target, type) and issubclass(target, Scorer) and not issubclass(target, PythonScorer)
    return out


def gate_problems(gates: Sequence[Gate], *, scorers: dict[str, bool], variants: Sequence[str],
                  targets: Sequence[str], where: str = "gates") -> list[tuple[str, str]]:
    """``(field path, message)`` for each gate that names something the experiment does not have, or asks
    for a value its scorer can never reach. ``scorers`` maps each scorer name to whether it scores in 0..1."""
    problems: list[tuple[str, str]] = []
    for i, gate in enumerate(gates):
        at = f"{where}[{i}]"
        if gate.scorer is not None and gate.scorer not in scorers:
            problems.append((f"{at}.scorer", _unknown("scorer", gate.scorer, list(scorers), gate)))
        if gate.variant is not None and gate.variant not in variants:
            problems.append((f"{at}.variant", _unknown("variant", gate.variant, list(variants), gate)))
        if gate.target is not None and gate.target not in targets:
            problems.append((f"{at}.target", _unknown("target", gate.target, list(targets), gate)))
        bound = gate.threshold
        if gate.metric in SCORE_METRICS and isinstance(bound, float) and scorers.get(gate.scorer or "", False):
            field = "min" if gate.min is not None else "max"
            msg = _impossible(gate, bound)
            if msg:
                problems.append((f"{at}.{field}", msg))
    return problems


def _unknown(what: str, name: str, known: list[str], gate: Gate) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listed = ", ".join(known) or "none"
    return f"gate {gate.expression!r}: the experiment has no {what} {name!r}{hint} ({what}s: {listed})"


def _impossible(gate: Gate, bound: float) -> str | None:
    if not 0 <= bound <= 1:
        return (f"gate {gate.expression!r}: {gate.scorer!r} scores between 0 and 1, so {_number(bound)} "
                f"can never be {'reached' if gate.min is not None else 'the limit'}")
    if gate.metric == "ci_low" and bound >= 1:
        return (f"gate {gate.expression!r} can never pass: the lower bound of a 95% interval stays below 1 with "
                f"any number of cases. For 'every case passes' write `{gate.scorer} >= 1`")
    if gate.metric == "ci_high" and bound <= 0:
        return (f"gate {gate.expression!r} can never pass: the upper bound of a 95% interval stays above 0 with "
                f"any number of cases. For 'no case passes' write `{gate.scorer} <= 0`")
    return None
