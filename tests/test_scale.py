"""Issue #11 without timing: what is imported before the first request, what the command line loads to print a
summary, and results read page by page. (Speed and memory are measured in benchmarks/bench_scale.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import yaml

HEAVY = ("pandas", "scipy", "matplotlib", "numpy", "pyarrow")


def _spec(tmp_path, n=20, scorers=("exact",), profile="fake"):
    rows = [{"id": f"c{i}", "text": f"question {i}", "expected": "yes" if i % 2 else "no"} for i in range(n)]
    (tmp_path / "cases.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": "scale", "dataset": {"path": "cases.jsonl"}, "targets": [profile], "scorers": list(scorers),
            "variants": [{"name": "a", "user": "{{ text }}", "params": {"max_tokens": 4}}]}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _python(code: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=str(cwd))


def test_nothing_heavy_is_imported_before_the_first_request(tmp_path):
    spec = _spec(tmp_path)
    out = _python(f"""
        import json, sys
        from workbench.experiment import load_experiment
        from workbench.harness import run
        from workbench.testing import FakeBackend

        seen = []
        def answer(req):
            if not seen:
                tokens = sys.modules.get("workbench.tokens")
                vocabularies = sorted(tokens._encodings) if tokens else []  # the module is light; its data is not
                seen.append(sorted(m for m in {HEAVY!r} if m in sys.modules) + vocabularies)
            return "yes"

        exp = load_experiment({str(spec)!r})
        run(exp, providers={{"fake": FakeBackend(answer).provider("openai")}}, out="run", cache=False,
            progress=False)
        print(json.dumps(seen[0]))
    """, tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


@pytest.fixture
def fake_server(tmp_path):
    """``python -m workbench.testing`` on a free loopback port, half its answers HTTP 500 (seeded)."""
    proc = subprocess.Popen([sys.executable, "-m", "workbench.testing", "--latency", "0", "--error-rate", "0.5",
                             "--seed", "3"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY "), line
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_eval_lists_its_first_errors_from_the_ledger(tmp_path, fake_server):
    # The end-of-run headline (the run history, #13) reads the results table; the error list does not.
    (tmp_path / "workbench.toml").write_text(
        f'[profiles.fake]\nbackend = "openai"\nbase_url = "{fake_server}"\nauth = "none"\nmodel = "gpt-4o-mini"\n')
    spec = _spec(tmp_path)
    data = yaml.safe_load(spec.read_text())
    spec.write_text(yaml.safe_dump({**data, "max_retries": 0}))
    out = _python(f"""
        from workbench.cli import main

        code = main(["eval", {str(spec)!r}, "--out", "run", "-q"])
        print("EXIT", code)
    """, tmp_path)
    assert "EXIT 4" in out.stdout, out.stdout + out.stderr  # failed cells: "the run failed" and the advice to rerun
    lines = out.stdout.splitlines()
    assert "calls failed (first 5 below). Run the same command again" in out.stdout
    listed = [line for line in lines if line.startswith("  case c") and "InternalServerError" in line]
    assert 1 <= len(listed) <= 5 and all("max_retries = 0" in line for line in listed), out.stdout


def test_the_plan_holds_no_object_per_cell_and_keeps_the_matrix_order():
    from workbench.experiment import Experiment
    from workbench.harness.plan import Planner
    from workbench.testing import FakeBackend
    from workbench.variants import Target, Variant

    exp = Experiment(name="m", dataset=[{"id": f"c{i}", "text": str(i)} for i in range(4)], repeats=3,
                     targets=["fake", "fake:gpt-4o"],
                     variants=[Variant(name="a", user="{{ text }}"),
                               Variant(name="b", user="{{ text }}", target=Target.parse("fake:gpt-4o-mini"))])
    planner = Planner(exp, {"fake": FakeBackend().provider("openai")})
    cells = list(exp.cells())
    assert len(planner) == len(cells) == 4 * (2 + 1) * 3
    assert [planner.matrix_cell(i).key for i in range(len(planner))] == [c.key for c in cells]
    assert not hasattr(planner, "cells")  # cases and the per-case pattern only


def test_summaries_stream_over_sorted_rows_and_refuse_unsorted_ones():
    from workbench.errors import DataError
    from workbench.intervals import clustered_ci, summarize_values

    rows = [(("v",), f"c{i // 3}", (i * 7 % 5) / 4, {"cost_usd": 0.001}) for i in range(30)]
    (row,) = summarize_values(rows, ["variant"])
    want = clustered_ci([r[2] for r in rows], [r[1] for r in rows])
    assert (row["mean"], row["ci_low"], row["ci_high"], row["method"], row["n_cases"]) == tuple(want[:4]) + (10,)
    assert row["cost_usd"] == pytest.approx(0.03)
    with pytest.raises(DataError, match="sorted by case"):
        summarize_values(list(reversed(rows)), ["variant"])
