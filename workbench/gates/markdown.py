"""A Markdown summary of a gate report, written for a pull-request comment or a CI job summary.

In order: the verdict (one line), the gate table (one row per gate and scope, with what was measured), the
paired sentences against the baseline (with the cases they rest on), the score table (folded), and the cost at
list prices with what this run actually spent. GitHub-flavoured: a table, ``<details>``, emoji for the verdict.
"""

from __future__ import annotations

from ..secrets import redact
from .evaluate import GateReport, format_usd

_MARK = {"passed": "✅", "failed": "❌", "error": "❌", "skipped": "⏭️"}


def _cell(text: object) -> str:
    """Safe inside a table cell: masked, one line, pipes escaped."""
    return redact(str(text)).replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def _code(text: object) -> str:
    return "`" + _cell(text).replace("`", "'") + "`"


def to_markdown(report: GateReport) -> str:
    """The summary as Markdown (see the module docstring)."""
    verdict = "✅" if report.status == "passed" else "❌" if report.status == "failed" else "ℹ️"
    lines = [f"### {verdict} {_cell(report.experiment)}: {report.verdict()}", ""]
    if report.run_status != "complete":
        lines += [f"> The run's status is **{_cell(report.run_status)}** ({report.errors} of {report.calls} calls "
                  "failed): see the run, and run the same command again to retry them.", ""]
    if report.gates:
        lines += ["| | gate | scope | measured |", "|---|---|---|---|"]
        for g in report.gates:
            for c in g.checks:
                lines.append(f"| {_MARK[c.status]} | {_code(g.label)} | {_cell(c.scope)} | {_cell(c.detail)} |")
        lines.append("")
    paired = [(g, c) for g in report.gates for c in g.checks if c.paired is not None and c.paired.sentence]
    if paired or report.baseline:
        where = report.baseline.describe() if report.baseline else "none given"
        lines += [f"**Against the baseline** ({_cell(where)}):", ""]
        for g, c in paired:
            lines.append(f"- {_MARK[c.status]} **{_cell(c.scope)}**, {_cell(g.gate.scorer)}: "
                         f"{_cell(c.paired.sentence)} "
                         f"{_cell(c.paired.cases)}")
        if not paired:
            lines.append("- nothing was compared (see the table)")
        lines.append("")
    if report.scores:
        lines += ["<details><summary>Scores (mean with 95% confidence interval)</summary>", "",
                  "| scorer | variant | target | cases | mean | 95% CI |", "|---|---|---|---:|---:|---|"]
        for s in report.scores:
            mean = "–" if s.mean is None else f"{s.mean:.2f}"
            ci = "–" if s.ci_low is None or s.ci_high is None else f"{s.ci_low:.2f} to {s.ci_high:.2f}"
            unscored = f" (+{s.n_errors} unscored)" if s.n_errors else ""
            lines.append(f"| {_cell(s.scorer)} | {_cell(s.variant)} | {_cell(s.target)} | {s.n}{unscored} | "
                         f"{mean} | {ci} |")
        lines += ["", "</details>", ""]
    lines.append(_cost_line(report))
    return "\n".join(lines) + "\n"


def _cost_line(report: GateReport) -> str:
    if report.cost_usd is None:
        cost = f"unknown (no price for {', '.join(report.unpriced) or 'a model'})"
    else:
        cost = f"{format_usd(report.cost_usd)} at list prices"
    spent = f"; this run spent {format_usd(report.spent_usd)}" if report.spent_usd is not None else ""
    cached = f", {report.cache_hits} answered from the cache" if report.cache_hits else ""
    failed = f", {report.errors} failed" if report.errors else ""
    return f"**Cost:** {_cell(cost)} for {report.calls} calls{failed}{spent}{cached}."


def failure_markdown(experiment: str, message: str, *, bad_input: bool = False) -> str:
    """The summary of a run that failed before its gates could be checked."""
    what = "the input was refused before anything was sent" if bad_input else "the run failed"
    return f"### ❌ {_cell(experiment)}: {what}, no gate was checked\n\n> {_cell(message)}\n"
