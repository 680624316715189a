"""The pytest plugin: a fixture that runs a spec (once a session, through the response cache) and helpers that
assert its gates. Used here by our own suite, and run as a user's suite would be, twice: the second session
sends nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from workbench.errors import GatesFailed, SpecError
from workbench.experiment import Experiment
from workbench.testing import FakeBackend
from workbench.variants import Variant


def sentiment_exp(gates=()) -> Experiment:
    rows = [{"id": f"c{i:02d}", "text": ("I love it" if i % 2 else "I hate it") + f" c{i:02d}",
             "expected": "positive" if i % 2 else "negative"} for i in range(12)]
    return Experiment(name="plugin-demo", dataset=rows, targets=["fake"],
                      scorers=[{"label": {"labels": ["positive", "negative"]}}],
                      variants=[Variant(name="labels", system="Answer positive or negative.", user="{{ text }}"),
                                Variant(name="echo", user="{{ text }}")], gates=list(gates))


def answer(req):
    if not req.system_text:
        return "I cannot say."
    return "positive" if "love" in req.user_text else "negative"


def test_the_fixture_runs_a_spec_and_asserts_its_gates(workbench_eval):
    fake = FakeBackend(answer)
    providers = {"fake": fake.provider()}
    exp = sentiment_exp(gates=["label >= 0.9 for labels"])
    results = workbench_eval(exp, providers=providers)
    assert len(results) == 24 and len(fake.chat_requests) == 24
    assert workbench_eval(exp, providers=providers) is results  # once a session
    report = workbench_eval.assert_gates(results)  # the spec's own gates
    assert report.passed and report.gates[0].checks[0].value == 1.0
    with pytest.raises(GatesFailed, match=r"FAIL  label >= 0.5 for echo\s+echo @ fake: mean 0.00"):
        workbench_eval.assert_gates(results, "label >= 0.5 for echo")
    with pytest.raises(SpecError, match="bad argument: sample 0: Input should be greater than or equal to 1"):
        workbench_eval(exp, sample=0, providers=providers)


INNER_CONFTEST = 'pytest_plugins = ["workbench.pytest_plugin"]\n'
INNER_TEST = '''
from workbench.experiment import Experiment
from workbench.testing import FakeBackend
from workbench.variants import Variant

FAKE = FakeBackend(lambda req: "positive" if "love" in req.user_text else "negative")
ROWS = [{"id": f"c{i}", "text": ("I love it" if i % 2 else "I hate it") + f" c{i}",
         "expected": "positive" if i % 2 else "negative"} for i in range(10)]
EXP = Experiment(name="users-prompts", dataset=ROWS, targets=["fake"],
                 variants=[Variant(name="v", user="{{ text }}")],
                 scorers=[{"label": {"labels": ["positive", "negative"]}}])


def test_the_prompt_is_good(workbench_eval):
    results = workbench_eval(EXP, providers={"fake": FAKE.provider()})
    workbench_eval.assert_gates(results, "label.ci_low >= 0.6", "cost <= $0.01")
    print(f"SENT {len(FAKE.chat_requests)}")


def test_a_stricter_bar_fails_as_a_test_failure(workbench_eval):
    results = workbench_eval(EXP, providers={"fake": FAKE.provider()})
    workbench_eval.assert_gates(results, "label.ci_low >= 0.9")
'''


def test_a_users_suite_reruns_for_free_from_the_cache(tmp_path):
    (tmp_path / "conftest.py").write_text(INNER_CONFTEST)
    (tmp_path / "test_prompts.py").write_text(textwrap.dedent(INNER_TEST))
    cache = tmp_path / "responses.sqlite"

    def session():
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                               "--workbench-cache", str(cache), "test_prompts.py"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)

    first, second = session(), session()
    for out in (first, second):
        assert out.returncode == 1, out.stdout + out.stderr  # one test fails...
        assert "1 failed, 1 passed" in out.stdout and "GatesFailed" in out.stdout  # ...as a failure, not an error
        assert "lower bound of the 95% CI 0.72" in out.stdout and "is below 0.9" in out.stdout
        assert "workbench gates" in out.stdout and "users-prompts: the gate failed" in out.stdout
        assert "pytest_plugin.py" not in out.stdout  # the traceback shows the user's test, not our helpers
    assert "SENT 10" in first.stdout and "SENT 0" in second.stdout  # the rerun paid for nothing
    assert "users-prompts: all 2 gates passed (10 calls, 0 from the cache" in first.stdout
    assert "users-prompts: all 2 gates passed (10 calls, 10 from the cache" in second.stdout
