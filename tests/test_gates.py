"""Quality gates: the spec and one-line forms, their validation, their verdicts on results (pure functions of
Results), the paired regression test against a baseline, and the JUnit / Markdown outputs for CI."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
import yaml

from workbench.errors import BaselineNotFound, GatesFailed, SpecError
from workbench.experiment import Experiment, load_experiment
from workbench.gates import Gate, assert_gates, evaluate_gates, to_junit, to_markdown
from workbench.harness import run
from workbench.records import CellResult, Score
from workbench.results import Results
from workbench.testing import FakeBackend, ServerError
from workbench.variants import Variant

LABEL = {"label": {"labels": ["positive", "negative"]}}


def rows(n: int, start: int = 0) -> list[dict]:
    return [{"id": f"c{i:03d}", "text": ("I love it " if i % 2 else "I hate it ") + f"c{i:03d}",
             "expected": "positive" if i % 2 else "negative"} for i in range(start, start + n)]


def make_exp(n: int = 30, *, variants=None, gates=(), data=None, **kw) -> Experiment:
    variants = variants or [Variant(name="v", user="{{ text }}")]
    return Experiment(name="gated", dataset=data or rows(n), variants=variants, targets=["fake"], scorers=[LABEL],
                      gates=list(gates), **kw)


def answers(wrong=()):
    """A fake model that labels every review right, except the cases numbered in ``wrong``."""
    wrong = set(wrong)

    def respond(req):
        case = int(req.user_text.split()[-1][1:])
        right = "positive" if "love" in req.user_text else "negative"
        return ({"positive": "negative", "negative": "positive"}[right]) if case in wrong else right

    return respond


def results_of(exp: Experiment, tmp_path, name: str, wrong=(), fake: FakeBackend | None = None) -> Results:
    fake = fake or FakeBackend(answers(wrong))
    return run(exp, providers={"fake": fake.provider()}, out=tmp_path / name, cache=False, progress=False)


# ------------------------------------------------------------------------------------------------ the spec


@pytest.mark.parametrize("line,fields", [
    ("label>=0.9", {"metric": "mean", "scorer": "label", "min": 0.9}),
    ("label.mean >= 90%", {"metric": "mean", "scorer": "label", "min": 0.9}),
    ("label.ci_low >= 0.8 for json-schema", {"metric": "ci_low", "scorer": "label", "min": 0.8,
                                             "variant": "json-schema"}),
    ("label.ci_high <= 0.2 on azure:gpt4o", {"metric": "ci_high", "scorer": "label", "max": 0.2,
                                              "target": "azure:gpt4o"}),
    ("cost <= $0.50", {"metric": "cost", "max": 0.5}),
    ("latency_p95 <= 800ms for my prompt v2 on local", {"metric": "latency_p95", "max": 0.8,
                                                         "variant": "my prompt v2", "target": "local"}),
    ("error_rate <= 2%", {"metric": "error_rate", "max": 0.02}),
    ("label >= baseline", {"metric": "mean", "scorer": "label", "min": "baseline"}),
])
def test_one_line_gates_read_and_round_trip(line, fields):
    gate = Gate.parse(line)
    assert gate.model_dump(exclude_none=True) == fields
    assert Gate.parse(gate.expression) == gate


@pytest.mark.parametrize("line,message", [
    ("label > 0.9", "use >= (at least) or <= (at most)"),
    ("label.median >= 0.5", "did you mean 'mean'"),
    ("latency <= 3", "write latency_p95"),
    ("cost >= 1", "cost can only have a `max`"),
    ("label.ci_low <= 0.3", "ci_low can only have a `min`"),
    ("error_rate <= 5", "between 0 and 1"),
    ("cost <= -1", "cannot be below $0"),
    ("cost <= 50%", "'%' does not fit cost"),
    ("label >= lots", "is not a number"),
    ("label.ci_low >= baseline", "a baseline gate compares mean scores"),
    ("label", "cannot read gate"),
])
def test_a_gate_that_cannot_mean_anything_is_refused_with_what_to_write(line, message):
    with pytest.raises(SpecError, match="the gate is not valid") as e:
        Gate.parse(line)
    assert message in str(e.value)


SPEC = """
name: gated
dataset: {{rows: [{{id: a, text: hi, expected: positive}}, {{id: b, text: ho, expected: negative}}]}}
variants: [{{name: v, user: "{{{{ text }}}}"}}, {{name: w, user: "{{{{ text }}}}!"}}]
scorers: [{{label: {{labels: [positive, negative]}}}}]
gates:
  - label >= 0.5
{gates}
"""


@pytest.mark.parametrize("gate,path,message", [
    ("  - lable.ci_low >= 0.5", "gates[1].scorer", "has no scorer 'lable'; did you mean 'label'?"),
    ("  - label >= 0.5 for vv", "gates[1].variant", "did you mean 'v'?"),
    ("  - label >= 0.5 on azure", "gates[1].target", "(targets: local)"),
    ("  - label.ci_low >= 1", "gates[1].min", "can never pass"),
    ("  - label >= 1.5", "gates[1].min", "scores between 0 and 1"),
    ("  - {scorer: label, min: 0.5, max: 0.9}", "gates[1]", "not both"),
    ("  - {scorer: label}", "gates[1]", "needs a threshold"),
    ("  - {metric: cost, max: 1, scorer: label}", "gates[1]", "remove `scorer`"),
    ("  - {scorer: label, min: 0.5, varient: v}", "gates[1].varient", "did you mean 'variant'"),
])
def test_spec_gates_are_refused_at_load_time_with_the_field_path(tmp_path, gate, path, message):
    spec = tmp_path / "gated.yaml"
    spec.write_text(SPEC.format(gates=gate))
    with pytest.raises(SpecError) as e:
        load_experiment(spec)
    text = str(e.value)
    assert str(spec) in text and f"{path}:" in text and message in text, text


def test_gates_round_trip_through_yaml_and_leave_the_fingerprint_alone(tmp_path):
    exp = make_exp(4, gates=["label.ci_low >= 0.5", {"gate": "cost <= $0.01", "name": "budget"}])
    saved = yaml.safe_load(exp.to_yaml())
    assert saved["gates"] == ["label.ci_low >= 0.5", {"gate": "cost <= $0.01", "name": "budget"}]
    back = load_experiment(exp.save(tmp_path / "e.yaml"))
    assert back.gates == exp.gates and back.gates[1].label == "budget"
    assert exp.fingerprint() == exp.replace(gates=[]).fingerprint()  # same run folder and cache with or without


# ---------------------------------------------------------------------------------------------- verdicts


def test_a_gate_that_passes_and_one_that_fails(tmp_path):
    res = results_of(make_exp(30), tmp_path, "run", wrong={0, 1, 2})  # 27 of 30 right: exactly 0.9
    report = evaluate_gates(res, ["label >= 0.9", "label >= 0.95"])
    passed, failed = report.gates
    assert (passed.status, failed.status, report.status) == ("passed", "failed", "failed")
    assert passed.checks[0].value == pytest.approx(0.9) and passed.checks[0].n == 30
    assert failed.checks[0].detail.startswith("mean 0.90 (95% CI") and "is below 0.95" in failed.checks[0].detail
    assert report.verdict() == "1 of 2 gates failed"
    with pytest.raises(GatesFailed, match="FAIL  label >= 0.95") as e:
        assert_gates(res, "label >= 0.9", "label >= 0.95")
    assert isinstance(e.value, AssertionError) and e.value.report.status == "failed"
    assert assert_gates(res, "label >= 0.9").passed


def test_a_gate_on_the_lower_bound_asks_for_evidence_a_mean_gate_does_not(tmp_path):
    small = results_of(make_exp(10), tmp_path, "small")  # 10 of 10: mean 1.0, but Wilson's lower bound is 0.72
    big = results_of(make_exp(60), tmp_path, "big")  # 60 of 60: the lower bound is 0.94
    gates = ["label >= 0.8", "label.ci_low >= 0.8"]
    assert [g.status for g in evaluate_gates(small, gates).gates] == ["passed", "failed"]
    assert [g.status for g in evaluate_gates(big, gates).gates] == ["passed", "passed"]
    check = evaluate_gates(small, gates).gates[1].checks[0]
    assert check.value == pytest.approx(0.722, abs=1e-3) and "lower bound of the 95% CI 0.72" in check.detail


def test_the_experiment_gates_are_checked_when_none_are_given(tmp_path):
    res = results_of(make_exp(10, gates=["label >= 0.5"]), tmp_path, "run")
    report = evaluate_gates(res)
    assert [g.expression for g in report.gates] == ["label >= 0.5"] and report.passed
    with pytest.raises(SpecError, match=r"gates\[0\].scorer"):
        evaluate_gates(res, ["lable >= 0.5"])  # the one validation path: the experiment's


def test_each_variant_is_checked_unless_the_gate_names_one(tmp_path):
    variants = [Variant(name="good", user="{{ text }}"), Variant(name="bad", system="x", user="{{ text }}")]
    fake = FakeBackend(lambda req: "positive" if req.system_text else answers()(req))
    res = results_of(make_exp(10, variants=variants), tmp_path, "run", fake=fake)
    every = evaluate_gates(res, ["label >= 0.9"]).gates[0]
    assert [(c.variant, c.status) for c in every.checks] == [("good", "passed"), ("bad", "failed")]
    one = evaluate_gates(res, ["label >= 0.9 for good on fake"]).gates[0]
    assert [(c.scope, c.status) for c in one.checks] == [("good @ fake", "passed")]


# -------------------------------------------------------------------------------------------- the baseline


def test_a_regression_against_the_baseline_is_found_by_the_paired_test(tmp_path):
    exp = make_exp(30)
    baseline = results_of(exp, tmp_path, "base")
    worse = results_of(exp, tmp_path, "now", wrong=set(range(10)))  # 10 of 30 cases now wrong
    report = evaluate_gates(worse, ["label >= baseline"], baseline=baseline)
    check = report.gates[0].checks[0]
    assert report.status == "failed" and check.status == "failed"
    p = check.paired
    assert p.method == "mcnemar exact" and p.n_shared == 30 and p.only_this_run == p.only_baseline == 0
    assert p.diff == pytest.approx(-10 / 30) and p.significant and p.p_value == pytest.approx(2 * 0.5 ** 10)
    assert "the baseline beats this run by 33 points" in p.sentence and "Paired on all 30 cases" in p.cases
    assert check.detail.startswith("a significant regression: mean 0.67 vs 1.00 in the baseline, p=0.002")


def test_a_difference_that_is_not_significant_is_not_flagged(tmp_path):
    exp = make_exp(30)
    baseline = results_of(exp, tmp_path, "base")
    slightly = results_of(exp, tmp_path, "now", wrong={3, 7})  # worse on 2 of 30: McNemar p = 0.5
    check = evaluate_gates(slightly, ["label >= baseline"], baseline=baseline).gates[0].checks[0]
    assert check.status == "passed" and check.value < 0  # worse, but not by more than chance allows
    assert not check.paired.significant and check.paired.p_value == pytest.approx(0.5)
    assert check.detail.startswith("no significant regression") and "not significant" in check.paired.sentence
    better = evaluate_gates(baseline, ["label <= baseline"], baseline=slightly).gates[0].checks[0]
    assert better.status == "passed"  # the mirror gate (lower is better) is not flagged either


def test_different_case_sets_are_paired_on_the_shared_cases_and_say_so(tmp_path):
    baseline = results_of(make_exp(data=rows(20)), tmp_path, "base")  # c000..c019
    now = results_of(make_exp(data=rows(25, start=5)), tmp_path, "now", wrong=set(range(10, 30)))  # c005..c029
    check = evaluate_gates(now, ["label >= baseline"], baseline=baseline).gates[0].checks[0]
    p = check.paired
    assert (p.n_shared, p.only_this_run, p.only_baseline) == (15, 10, 5)
    assert "15 cases both runs scored; 10 only in this run and 5 only in the baseline are left out" in p.cases
    assert "on 15 paired cases" in p.sentence and "(the case sets differ)" in check.detail
    assert check.status == "failed"  # c010..c019 got worse: 10 discordant pairs, all one way


def test_nothing_to_compare_is_skipped_and_no_shared_case_fails(tmp_path):
    exp = make_exp(10)
    now = results_of(exp, tmp_path, "now")
    no_baseline = evaluate_gates(now, ["label >= baseline"])
    assert no_baseline.gates[0].status == "skipped" and no_baseline.status == "passed"
    assert "no baseline run was given" in no_baseline.gates[0].checks[0].detail
    other_variant = results_of(make_exp(10, variants=[Variant(name="old", user="{{ text }}")]), tmp_path, "old")
    new = evaluate_gates(now, ["label >= baseline"], baseline=other_variant).gates[0].checks[0]
    assert new.status == "skipped" and "a new variant or target cannot regress" in new.detail
    disjoint = results_of(make_exp(data=rows(10, start=50)), tmp_path, "disjoint")
    none_shared = evaluate_gates(now, ["label >= baseline"], baseline=disjoint)
    assert none_shared.status == "failed" and none_shared.gates[0].checks[0].status == "error"
    assert "no case was scored in both runs" in none_shared.gates[0].checks[0].detail


# ----------------------------------------------------------------------------------------- calls and money


def record(case: str, *, variant="v", outcome="ok", cost=0.001, latency=1.0, passed=True, model="gpt-4o-mini",
           output="positive", **extra) -> CellResult:
    score = Score(scorer="label", value=float(passed), passed=passed, explanation="label 'positive'")
    return CellResult(cell_key=f"{case}-{variant}", experiment="calls", case_id=case, variant=variant, target="fake",
                      profile="fake", deployment=model, model=model, repeat=0, messages=[], outcome=outcome,
                      output=output, cost_usd=None if outcome == "error" else cost, latency_s=latency,
                      scores=[score] if outcome != "error" else [], **extra)


def test_cost_latency_and_error_rate_gates():
    recs = [record(f"c{i}", latency=0.1 * (i + 1)) for i in range(19)]
    recs.append(record("c19", outcome="error", error_type="InternalServerError", error_message="HTTP 500"))
    res = Results(recs)
    report = evaluate_gates(res, ["cost <= $0.02", "cost <= $0.01", "latency_p95 <= 2s", "latency_p95 <= 1.5s",
                                  "error_rate <= 0.05", "error_rate <= 0.01"])
    assert [g.status for g in report.gates] == ["passed", "failed", "passed", "failed", "passed", "failed"]
    cost = report.gates[0].checks[0]
    assert cost.value == pytest.approx(0.019) and cost.scope == "whole run" and cost.n == 20
    assert cost.detail == "$0.0190 at list prices for 20 calls <= $0.0200"
    latency = report.gates[2].checks[0]
    assert latency.value == pytest.approx(1.81) and latency.n == 19  # the failed call has no latency to count
    assert report.gates[4].checks[0].detail == "1 of 20 calls failed (5.0%) <= 0.05"


def test_an_unpriced_model_fails_a_cost_gate_instead_of_counting_as_free():
    res = Results([record("a"), record("b", cost=None, model="my-finetune")])
    check = evaluate_gates(res, ["cost <= $100"]).gates[0].checks[0]
    assert check.status == "error" and "no price for my-finetune" in check.detail
    assert evaluate_gates(res, []).cost_usd is None


def test_judge_calls_count_in_the_cost():
    judged = record("a", cost=0.001)
    judged.scores.append(Score(scorer="judge", value=1.0, passed=True, metadata={"cost_usd": 0.004}))
    assert evaluate_gates(Results([judged]), ["cost <= $0.005"]).gates[0].checks[0].value == pytest.approx(0.005)


def test_a_scorer_with_no_scored_case_cannot_pass():
    res = Results([record("a", outcome="error"), record("b")])
    res.records[1].scores[0] = Score(scorer="label", value=None, passed=None, error="ValueError: boom")
    check = evaluate_gates(res, ["label >= 0"]).gates[0].checks[0]
    assert check.status == "error" and "no case could be scored" in check.detail
    assert not evaluate_gates(res, ["label >= 0"]).passed


# ------------------------------------------------------------------------------------------------- outputs


def test_junit_xml_has_one_test_case_per_gate_and_scope_and_parses(tmp_path):
    exp = make_exp(30)
    baseline = results_of(exp, tmp_path, "base")
    now = results_of(exp, tmp_path, "now", wrong=set(range(10)))
    report = evaluate_gates(now, ["label >= 0.5", "label >= 0.9", "label >= baseline", "cost <= $1",
                                  "label.ci_low >= 0.99 for v"], baseline=baseline)
    root = ET.fromstring(to_junit(report))
    assert root.tag == "testsuites" and root.get("tests") == "5" and root.get("failures") == "3"
    [suite] = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "label >= 0.5 [v @ fake]", "label >= 0.9 [v @ fake]", "label >= baseline [v @ fake]",
        "cost <= $1 [whole run]", "label.ci_low >= 0.99 for v [v @ fake]"]
    assert [c.find("failure") is not None for c in cases] == [False, True, True, False, True]
    assert cases[0].find("system-out").text.startswith("mean 0.67 (95% CI")
    regression = cases[2].find("failure")
    assert "significant regression" in regression.get("message") and "beats this run" in regression.text
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["verdict"] == report.verdict() and props["calls"] == "30" and props["cost"].startswith("$")


def test_junit_can_add_one_case_per_case_and_carries_any_model_output(tmp_path):
    from workbench.secrets import register_secret

    secret = "sk-" + "gatesecret" * 3
    register_secret(secret)
    nasty = f"positive \x1b[31mred\x00 {secret} \ud7ff"

    def respond(req):
        case = int(req.user_text.split()[-1][1:])
        return nasty if case == 1 else ("positive" if case == 0 else answers()(req))

    res = results_of(make_exp(4), tmp_path, "run", fake=FakeBackend(respond))
    report = evaluate_gates(res, ["label >= 0.5"])
    text = to_junit(report, res, cases=True)
    assert secret not in text and "\x1b" not in text and "\x00" not in text
    root = ET.fromstring(text)  # control characters would make this fail
    gates, per_case = root.findall("testsuite")
    assert per_case.get("name") == "gated: cases (label)" and per_case.get("tests") == "4"
    failures = {c.get("name"): c.find("failure") for c in per_case.findall("testcase")}
    assert failures["c000 [v @ fake]"] is not None  # "positive" for a negative review
    assert "expected 'negative'" in failures["c000 [v @ fake]"].get("message")
    assert failures["c002 [v @ fake]"] is None and failures["c003 [v @ fake]"] is None
    assert root.get("tests") == str(1 + 4)


def test_markdown_summary_for_a_pull_request(tmp_path):
    exp = make_exp(30)
    baseline = results_of(exp, tmp_path, "base")
    now = results_of(exp, tmp_path, "now", wrong={1, 2})
    from workbench.gates.evaluate import BaselineInfo

    info = BaselineInfo(ref="last-on-main", chosen_as="last run on main", run_id="r1", branch="main",
                        commit="0123456789abcdef")
    md = to_markdown(evaluate_gates(now, ["label >= 0.9", "label.ci_low >= 0.9", "label >= baseline"],
                                    baseline=baseline, baseline_info=info))
    lines = md.splitlines()
    assert lines[0] == "### ❌ gated: 1 of 3 gates failed"
    table = [ln for ln in lines if ln.startswith("| ✅") or ln.startswith("| ❌")]
    assert len(table) == 3 and table[1].startswith("| ❌ | `label.ci_low >= 0.9` | v @ fake | lower bound")
    assert "**Against the baseline** (last run on main, run r1, commit 0123456789 on main):" in md
    assert "No clear winner: the baseline leads this run by 7 points" in md and "Paired on all 30 cases" in md
    assert "<summary>Scores (mean with 95% confidence interval)</summary>" in md
    assert "| label | v | fake | 30 | 0.93 | 0.79 to 0.98 |" in md
    cost = [ln for ln in lines if ln.startswith("**Cost:**")][0]
    assert "at list prices for 30 calls" in cost and "$0.0000" in cost and "this run spent" in cost


def test_markdown_escapes_table_cells():
    res = Results([record("a", variant="x|y\nz")])
    md = to_markdown(evaluate_gates(res, ["label >= 0.5"]))
    assert "| x\\|y z @ fake |" in md


# ---------------------------------------------------------------------------------------------- baselines


def test_baseline_by_path_run_id_and_results_file(tmp_path):
    from workbench.runs.baseline import find_baseline
    from workbench.runs.finalize import write_run_manifest

    # The spec lives outside any git checkout: run from inside this repository's clean clone of main
    # (as CI is), the run would otherwise count as a clean run on main.
    exp = make_exp(6).replace(base_dir=tmp_path)
    res = results_of(exp, tmp_path / "history" / "gated", "20261201-101010-abcdef")
    write_run_manifest(res, started_at="2026-12-01T10:10:10", finished_at=None, duration_s=None)
    res.to_jsonl(tmp_path / "artifact.jsonl")
    roots = [tmp_path / "history"]
    by_dir, info = find_baseline(str(res.run_dir), roots=roots)
    assert len(by_dir) == 6 and info.chosen_as == "path" and info.run_id == "20261201-101010-abcdef"
    by_file, info = find_baseline(str(tmp_path / "artifact.jsonl"), roots=roots)
    assert len(by_file) == 6 and info.experiment == "gated"
    by_id, info = find_baseline("20261201-1010", roots=roots)  # the start of an id will do
    assert len(by_id) == 6 and info.chosen_as == "run id"
    with pytest.raises(BaselineNotFound, match="no file or folder by that path, and no run with that id"):
        find_baseline("20270101", roots=roots)
    with pytest.raises(BaselineNotFound, match="no finished run of experiment 'gated' on a clean checkout"):
        find_baseline("last-on-main", experiment="gated", roots=roots)


def test_last_on_main_reads_the_branch_from_each_runs_manifest(tmp_path):
    import subprocess

    from workbench.runs.baseline import find_baseline
    from workbench.runs.finalize import write_run_manifest

    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
                            "GIT_COMMITTER_EMAIL": "t@example.invalid", "HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})

    git("init", "-q", "-b", "main")
    exp = make_exp(6).replace(base_dir=repo)
    (repo / "spec.yaml").write_text(exp.to_yaml())
    git("add", ".")
    git("commit", "-q", "-m", "prompts")
    history = tmp_path / "history"
    on_main = results_of(exp, history / "gated", "run-main")
    write_run_manifest(on_main, started_at="2026-12-01T10:00:00", finished_at=None, duration_s=None)
    git("checkout", "-q", "-b", "feature")
    newer = results_of(exp, history / "gated", "run-feature", wrong={1})
    write_run_manifest(newer, started_at="2026-12-01T11:00:00", finished_at=None, duration_s=None)
    found, info = find_baseline("last-on-main", experiment="gated", roots=[history])
    assert info.chosen_as == "last run on main" and info.branch == "main" and info.run_id == "run-main"
    assert [r.output for r in found.records] == [r.output for r in on_main.records]
    feature, info = find_baseline("last-on-feature", experiment="gated", roots=[history])
    assert info.run_id == "run-feature" and len(info.commit) == 40


def test_errors_from_gate_evaluation_without_an_experiment_name_the_gate():
    res = Results([record("a")])
    with pytest.raises(SpecError, match="has no scorer 'labl'; did you mean 'label'"):
        evaluate_gates(res, ["labl >= 0.5"])
    assert math.isclose(evaluate_gates(res, ["label >= 1"]).gates[0].checks[0].value, 1.0)


def test_calls_that_failed_are_left_out_of_a_mean_and_said(tmp_path):
    fake = FakeBackend(answers()).fail(ServerError(500), times=2)
    res = results_of(make_exp(10, max_retries=0), tmp_path, "run", fake=fake)
    check = evaluate_gates(res, ["label >= 0.5"]).gates[0].checks[0]
    assert res.n_errors == 2 and check.n == 8 and "2 unscored calls left out" in check.detail


def test_refusals_count_as_fails_and_the_check_says_so(tmp_path):
    def respond(req):
        case = int(req.user_text.split()[-1][1:])
        return "I'm sorry, but I can't help with that." if case < 3 else answers()(req)

    res = results_of(make_exp(10), tmp_path, "run", fake=FakeBackend(respond))
    check = evaluate_gates(res, ["label >= 0.5"]).gates[0].checks[0]
    assert check.value == pytest.approx(0.7) and "3 refused counted as fails" in check.detail
    root = ET.fromstring(to_junit(evaluate_gates(res, ["label >= 0.5"]), res, cases=True))
    refused = root.find(".//testcase[@name='c000 [v @ fake]']/failure")
    assert refused.get("type") == "case refused" and "evidence:" in refused.text
