"""A pytest plugin: assert on an experiment the way you assert on code.

Opt in from your ``conftest.py`` (or run ``pytest -p workbench.pytest_plugin``)::

    pytest_plugins = ["workbench.pytest_plugin"]

    # test_prompts.py
    def test_the_sentiment_prompt(workbench_eval):
        results = workbench_eval("experiments/sentiment.yaml", sample=20)
        workbench_eval.assert_gates(results, "label.ci_low >= 0.8 for json-schema", "cost <= $0.05")

``workbench_eval(spec, ...)`` runs a spec (a YAML path or an :class:`~workbench.Experiment`) once per test
session, through the response cache: a rerun of the suite answers every finished call from the cache and
costs nothing. ``workbench_eval.assert_gates(results, *gates)`` (or :func:`workbench.gates.assert_gates`)
raises :class:`~workbench.errors.GatesFailed` - an ``AssertionError``, so pytest reports a failed test - with
every check in the message; with no gates given it checks the spec's own ``gates:``. The session ends with one
line per experiment (verdict, cost at list prices, calls answered from the cache).

Options: ``--workbench-cache PATH`` (the response cache; default the shared one, ``$WORKBENCH_CACHE``),
``--workbench-no-cache``, ``--workbench-baseline PATH|RUN_ID|last-on-main`` (what ``>= baseline`` gates compare
with).

Why opt-in rather than a ``pytest11`` entry point: installing the workbench (for notebooks, say) should not
change every pytest session in that environment - its fixtures, options and import time - and a test that may
call a paid model should say so where the suite is configured.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .experiment import Experiment
    from .gates import BaselineInfo, Gate, GateReport
    from .providers import Provider
    from .results import Results


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("workbench", "Prompt Workbench experiments")
    group.addoption("--workbench-cache", metavar="PATH", default=None,
                    help="response cache for workbench_eval (default: the shared cache, $WORKBENCH_CACHE)")
    group.addoption("--workbench-no-cache", action="store_true", default=False,
                    help="workbench_eval sends every call (no response cache)")
    group.addoption("--workbench-baseline", metavar="PATH|RUN_ID|last-on-main", default=None,
                    help="the run that `>= baseline` gates compare with")


class ExperimentRunner:
    """What the ``workbench_eval`` fixture is: call it to run a spec (once per session), then assert gates."""

    def __init__(self, root: Path, cache: bool | str | Path, baseline_ref: str | None):
        self.root = root
        self.cache = cache
        self.baseline_ref = baseline_ref
        self.reports: list[GateReport] = []
        self._runs: dict[tuple[Any, ...], Results] = {}
        self._baselines: dict[str, tuple[Results, BaselineInfo]] = {}

    def __call__(self, spec: str | Path | Experiment, *, sample: int | None = None, repeats: int | None = None,
                 targets: Sequence[str] | None = None, concurrency: int | None = None,
                 budget_usd: float | None = None, providers: Mapping[str, Provider] | None = None) -> Results:
        """Run ``spec`` with these overrides (validated like the spec's own fields) and return its Results.

        The same spec and overrides run once per session; the response cache makes a later session free.
        ``providers`` maps a profile name to a Provider (e.g. ``{"fake": FakeBackend().provider()}``).
        """
        from .experiment import Experiment, apply_overrides, load_experiment
        from .harness import run

        exp = spec if isinstance(spec, Experiment) else load_experiment(spec)
        exp = apply_overrides(exp, {
            "sample": ("sample", sample), "repeats": ("repeats", repeats), "concurrency": ("concurrency", concurrency),
            "targets": ("targets", list(targets) if targets is not None else None),
            "budget_usd": ("budget_usd", budget_usd),
        }, kind="argument")
        key = (exp.name, exp.fingerprint(), id(providers))
        if key not in self._runs:
            out = self.root / exp.name / exp.fingerprint()
            self._runs[key] = run(exp, out=out, cache=self.cache, providers=providers, progress=False)
        return self._runs[key]

    def baseline(self, experiment: str | None = None) -> tuple[Results, BaselineInfo] | None:
        """The ``--workbench-baseline`` run (found once per session), or None when none was given."""
        if not self.baseline_ref:
            return None
        if self.baseline_ref not in self._baselines:
            from .runs.baseline import find_baseline

            self._baselines[self.baseline_ref] = find_baseline(self.baseline_ref, experiment=experiment)
        return self._baselines[self.baseline_ref]

    def assert_gates(self, results: Results, *gates: Gate | str | Mapping[str, Any]) -> GateReport:
        """:func:`workbench.gates.assert_gates` with the session's ``--workbench-baseline``; the report is kept for
        the session's summary line."""
        __tracebackhide__ = True  # pytest shows the test's own line, not this helper
        from .errors import GatesFailed
        from .gates import assert_gates

        found = self.baseline(results.name)
        baseline, info = found if found is not None else (None, None)
        try:
            report = assert_gates(results, *gates, baseline=baseline, baseline_info=info)
        except GatesFailed as e:
            if e.report is not None:
                self.reports.append(e.report)
            raise
        self.reports.append(report)
        return report


@pytest.fixture(scope="session")
def workbench_eval(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ExperimentRunner:
    """Run an experiment spec once per session (cached), and assert its gates: see :mod:`workbench.pytest_plugin`."""
    config = request.config
    cache: bool | str | Path = True
    if config.getoption("--workbench-no-cache"):
        cache = False
    elif config.getoption("--workbench-cache"):
        cache = Path(config.getoption("--workbench-cache")).expanduser()
    runner = ExperimentRunner(tmp_path_factory.mktemp("workbench-runs"), cache,
                              config.getoption("--workbench-baseline"))
    config.stash[_RUNNER] = runner
    return runner


_RUNNER = pytest.StashKey[ExperimentRunner]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    runner = config.stash.get(_RUNNER, None)
    if runner is None or not runner.reports:
        return
    from .gates.evaluate import format_usd

    terminalreporter.section("workbench gates")
    for report in runner.reports:
        cost = format_usd(report.cost_usd) + " at list prices" if report.cost_usd is not None else "cost unknown"
        terminalreporter.write_line(f"{report.experiment}: {report.verdict()} ({report.calls} calls, "
                                    f"{report.cache_hits} from the cache, {cost})")
