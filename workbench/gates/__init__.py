"""Quality gates: prompts tested like code.

A gate is a claim about a run's results - ``label >= 0.9``, ``label.ci_low >= 0.8 for json-schema``,
``cost <= 0.50``, ``latency_p95 <= 3s``, ``error_rate <= 0.02``, ``label >= baseline`` - written in an
experiment's ``gates:`` list, on the command line (``workbench eval --gate``), or in a test
(:func:`assert_gates`, and the fixtures of :mod:`workbench.pytest_plugin`). Checking them is a pure function
of the results (and a baseline run's results)::

    spec.py      Gate: the one-line form, validation, and the checks against an experiment's scorers/variants
    evaluate.py  evaluate_gates(results, gates, baseline=...) -> GateReport (typed, versioned); assert_gates
    junit.py     to_junit(report): one test case per gate and scope, optionally one per case
    markdown.py  to_markdown(report): a pull-request comment (verdict, table, paired sentences, cost)

Gates on a mean are the classic CI check; gates on the lower bound of the 95% interval (``ci_low``) and the
paired test against a baseline are what keep a gate from flapping on a small eval set: a gate on the interval
passes only when the evidence says so, and a regression is flagged only when the paired test finds one.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .spec import Gate, parse_line

_EXPORTS = {
    "evaluate_gates": "evaluate", "assert_gates": "evaluate", "GateReport": "evaluate", "GateOutcome": "evaluate",
    "GateCheck": "evaluate", "BaselineInfo": "evaluate", "ScoreLine": "evaluate",
    "to_junit": "junit", "to_markdown": "markdown",
}

__all__ = ["Gate", "parse_line", *sorted(_EXPORTS)]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
