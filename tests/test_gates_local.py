"""Gates on the shipped demo with the embedded local model (bare ~0.0, json-schema ~1.0): `workbench eval`'s exit
codes, and the pytest plugin. Both tests share one response cache, so the second sends nothing."""

from __future__ import annotations

import pytest

from workbench.errors import GatesFailed
from workbench.examples import example_path

pytestmark = pytest.mark.local_model


@pytest.fixture
def shared_cache(tmp_path_factory, monkeypatch):
    path = tmp_path_factory.getbasetemp() / "gates-local-responses.sqlite"
    monkeypatch.setenv("WORKBENCH_CACHE", str(path))
    return path


def test_the_demo_passes_one_gate_and_fails_another_with_exit_codes(run_cli, shared_cache, tmp_path):
    passing = run_cli("eval", "--sample", "4", "-q", "--gate", "label >= 0.5 for json-schema",
                      "--out", str(tmp_path / "run"))
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "PASS  label >= 0.5 for json-schema" in passing.stdout
    failing = run_cli("eval", "--sample", "4", "-q", "--gate", "label >= 0.5 for bare",
                      "--out", str(tmp_path / "run"), "--summary-md", str(tmp_path / "pr.md"))
    assert failing.returncode == 3, failing.stdout + failing.stderr
    assert "FAIL  label >= 0.5 for bare" in failing.stdout and "bare @ local: mean 0.00" in failing.stdout
    assert (tmp_path / "pr.md").read_text().startswith("### ❌ sentiment-demo: the gate failed")


def test_the_plugin_on_the_demo(workbench_eval, shared_cache):
    results = workbench_eval(example_path(), sample=4)
    report = workbench_eval.assert_gates(results, "label >= 0.5 for json-schema", "cost <= $0")
    assert report.passed and report.calls == 12
    with pytest.raises(GatesFailed, match="FAIL  label >= 0.5 for bare"):
        workbench_eval.assert_gates(results, "label >= 0.5 for bare")
