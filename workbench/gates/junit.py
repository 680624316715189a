"""JUnit XML for CI test reporters: one test case per gate and scope, and optionally one per case.

The file follows the common JUnit schema that GitHub, GitLab, Jenkins and Azure DevOps read: a
``<testsuites>`` root, a ``<testsuite>`` of gates (``<failure>`` for a gate that failed, ``<error>`` for one that
could not be measured, ``<skipped>`` for a baseline gate with nothing to compare), and with ``cases=True`` a
``<testsuite>`` per scorer with one test case per case x variant x target (repeats folded into one: it passes
when every repeat passed). Per-case failures are information: the exit code follows the gates, since a gate such
as ``label >= 0.9`` allows a failing case in ten.

Text from the model is masked for secrets and stripped of the characters XML 1.0 cannot carry.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import defaultdict
from typing import TYPE_CHECKING, Any

from ..errors import DataError
from ..secrets import redact
from .evaluate import GateReport, format_usd

if TYPE_CHECKING:  # pragma: no cover
    from ..records import CellResult
    from ..results import Results

_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
OUTPUT_CHARS = 600  # of a model's output in a failed case's text: enough to see what it said


def _text(value: Any, limit: int | None = None) -> str:
    text = redact(str(value))  # mask first, then cut: a cut never leaves half a key behind
    text = _NOT_XML.sub("\ufffd", text)
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


def _suite(parent: ET.Element, name: str, report: GateReport) -> ET.Element:
    return ET.SubElement(parent, "testsuite", name=_text(name), timestamp=report.created_at[:19])


def _count(suite: ET.Element) -> dict[str, int]:
    cases = suite.findall("testcase")
    counts = {"tests": len(cases), "failures": sum(c.find("failure") is not None for c in cases),
              "errors": sum(c.find("error") is not None for c in cases),
              "skipped": sum(c.find("skipped") is not None for c in cases)}
    for k, v in counts.items():
        suite.set(k, str(v))
    suite.set("time", f"{sum(float(c.get('time', 0)) for c in cases):.3f}")
    return counts


def to_junit(report: GateReport, results: Results | None = None, *, cases: bool = False) -> str:
    """The report as a JUnit XML document; ``cases=True`` (needs ``results``) adds one test case per case."""
    root = ET.Element("testsuites", name=_text(f"workbench {report.experiment}"))
    gates = _suite(root, f"{report.experiment}: gates", report)
    _properties(gates, report)
    for outcome in report.gates:
        for check in outcome.checks:
            case = ET.SubElement(gates, "testcase", classname=_text(f"{report.experiment}.gates"),
                                 name=_text(f"{outcome.label} [{check.scope}]"), time="0")
            body = _text(check.detail + (f"\n{check.paired.sentence}" if check.paired and check.paired.sentence
                                         and check.paired.sentence not in check.detail else ""))
            if check.status == "failed":
                ET.SubElement(case, "failure", message=_text(check.detail, 500), type="gate failed").text = body
            elif check.status == "error":
                ET.SubElement(case, "error", message=_text(check.detail, 500), type="not measured").text = body
            elif check.status == "skipped":
                ET.SubElement(case, "skipped", message=_text(check.detail, 500))
            else:
                ET.SubElement(case, "system-out").text = body
    if cases:
        if results is None:
            raise DataError("to_junit(cases=True) needs the results the report was made from")
        for scorer in results.scorers:
            _case_suite(root, report, results.records, scorer)
    totals = defaultdict(int)
    for suite in root.findall("testsuite"):
        for k, v in _count(suite).items():
            totals[k] += v
    for k in ("tests", "failures", "errors", "skipped"):
        root.set(k, str(totals[k]))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _properties(suite: ET.Element, report: GateReport) -> None:
    props = ET.SubElement(suite, "properties")
    values = {"verdict": report.verdict(), "run_status": report.run_status, "run_dir": report.run_dir,
              "calls": report.calls, "failed_calls": report.errors,
              "cost_usd": report.cost_usd if report.cost_usd is not None else "unknown",
              "cost": format_usd(report.cost_usd),
              "baseline": report.baseline.describe() if report.baseline else None}
    for name, value in values.items():
        if value is not None:
            ET.SubElement(props, "property", name=name, value=_text(value))


def _case_suite(root: ET.Element, report: GateReport, records: list[CellResult], scorer: str) -> None:
    suite = _suite(root, f"{report.experiment}: cases ({scorer})", report)
    groups: dict[tuple[str, str, str], list[CellResult]] = defaultdict(list)
    for r in records:
        groups[(r.variant, r.target, r.case_id)].append(r)
    for (variant, target, case_id), rows in groups.items():
        rows.sort(key=lambda r: r.repeat)
        latency = sum(r.latency_s or 0.0 for r in rows)
        case = ET.SubElement(suite, "testcase", classname=_text(f"{report.experiment}.{scorer}"),
                             name=_text(f"{case_id} [{variant} @ {target}]"), time=f"{latency:.3f}")
        _case_verdict(case, rows, scorer)


def _case_verdict(case: ET.Element, rows: list[CellResult], scorer: str) -> None:
    scores = [next((s for s in r.scores if s.scorer == scorer), None) for r in rows]
    failed_calls = [r for r in rows if r.outcome == "error"]
    scored = [(r, s) for r, s in zip(rows, scores) if s is not None and s.passed is not None]
    if not scored:
        why = failed_calls[0].error_message if failed_calls else next((s.error for s in scores if s and s.error),
                                                                      "no score")
        ET.SubElement(case, "error", message=_text(f"could not be scored: {why}", 500),
                      type="not scored").text = _text(why)
        return
    bad = [(r, s) for r, s in scored if not s.passed]
    if not bad:
        return
    r, s = bad[0]
    n = len(scored)
    head = (f"failed {len(bad)} of {n} repeats: " if n > 1 else "") + (s.explanation or f"score {s.value}")
    lines = [head]
    if s.answer is not None:
        lines.append(f"answer: {s.answer}")
    if s.evidence is not None:
        lines.append(f"evidence: {s.evidence}")
    lines.append(f"output: {r.output}")
    ET.SubElement(case, "failure", message=_text(head, 500), type=f"case {s.outcome}").text = _text(
        "\n".join(lines), OUTPUT_CHARS)


def failure_junit(experiment: str, message: str, *, bad_input: bool = False) -> str:
    """A JUnit document for a run that failed before its gates could be checked (one test case, in error), so a
    CI reporter shows why instead of a missing file."""
    root = ET.Element("testsuites", name=_text(f"workbench {experiment}"), tests="1", failures="0", errors="1",
                      skipped="0")
    suite = ET.SubElement(root, "testsuite", name=_text(f"{experiment}: gates"), tests="1", failures="0",
                          errors="1", skipped="0", time="0")
    case = ET.SubElement(suite, "testcase", classname=_text(f"{experiment}.gates"), name="the run", time="0")
    kind = "bad input" if bad_input else "run failed"
    ET.SubElement(case, "error", message=_text(message, 500), type=kind).text = _text(message)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
