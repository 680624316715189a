"""``workbench run`` / ``rerun`` / ``report`` / ``runs``: run folders, manifests, secrets, failures, sweeps, reruns.

Runs that execute a notebook go through papermill and a real kernel (marked ``notebook``); they talk to the
fake backend (``tests/nb_fakes.py``), so they are fast and need no model. The unit tests at the top need no kernel.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from workbench import runs
from workbench.runs.manifest import Failure, Manifest, NotebookInfo, diff_manifests, load_manifest

ROOT = Path(__file__).resolve().parents[1]
EVALUATE = ROOT / "notebooks" / "03_evaluate.ipynb"
TESTS = Path(__file__).resolve().parent
FAKE = ["-p", "providers", "nb_fakes:sentiment", "-p", "targets", "fake-openai"]
PLANTED = "sk-" + "plantedSECRET0123456789abcdefXYZ"  # made up; split so scanners do not flag the file


@pytest.fixture
def kernel_env(monkeypatch, tmp_path):
    """Kernels (separate processes) import tests/nb_fakes.py; reports go to a temporary folder."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    reports = tmp_path / "reports"
    monkeypatch.setenv("WORKBENCH_REPORTS", str(reports))
    return reports


def workbench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd or ROOT, env=dict(os.environ))


def make_notebook(path: Path, *sources: str, params: str = "note = ''") -> Path:
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


# ============================================================================================ no kernel


def test_parameter_values_read_like_papermill_and_json():
    assert runs.parse_value("4") == 4 and runs.parse_value("0.7") == 0.7
    assert runs.parse_value("None") is None and runs.parse_value("true") is True
    assert runs.parse_value('["local", "azure:gpt"]') == ["local", "azure:gpt"]
    assert runs.parse_value("local") == "local"


def test_sweep_grid_is_the_product_of_the_values():
    grid = runs.parse_sweep(["temperature=0,0.7", "seed=1,2"])
    assert grid == {"temperature": [0, 0.7], "seed": [1, 2]}
    assert runs.grid_points(grid) == [{"temperature": 0, "seed": 1}, {"temperature": 0, "seed": 2},
                                      {"temperature": 0.7, "seed": 1}, {"temperature": 0.7, "seed": 2}]
    with pytest.raises(runs.RunError, match="NAME=V1,V2"):
        runs.parse_sweep(["temperature"])


def test_resolve_experiment_applies_overrides_and_keeps_the_dataset_folder():
    exp = runs.resolve_experiment(None, targets="fake-openai", sample_size=5, repeats=2, seed=3, temperature=0.5)
    assert [t.label for t in exp.targets] == ["fake-openai"]
    assert (exp.sample, exp.repeats, exp.seed) == (5, 2, 3)
    assert all(v.params["temperature"] == 0.5 for v in exp.variants)
    assert len(exp.load_cases()) == 5  # the relative dataset path still resolves from the example's folder
    with pytest.raises(Exception, match="no such experiment file"):
        runs.resolve_experiment("nope.yaml")


def test_kernel_manager_uses_ipc_in_a_private_directory_and_this_python():
    km_class = runs.isolated_kernel_manager_class()
    a, b = km_class(kernel_name="python3"), km_class(kernel_name="python3")
    try:
        assert a.transport == b.transport == "ipc"
        assert Path(a.connection_file).parent != Path(b.connection_file).parent
        assert a.kernel_spec.argv[0] == sys.executable
    finally:
        for km in (a, b):
            asyncio.run(km._async_cleanup_resources())
    assert not Path(a.connection_file).parent.exists()


def test_manifest_is_redacted_and_round_trips(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    from workbench.runs.manifest import register_env_secrets

    register_env_secrets()
    m = Manifest(run_id="r1", experiment="e", notebook=NotebookInfo(path="x.ipynb", name="x.ipynb"),
                 parameters={"note": f"key is {PLANTED}", "api_key": "hunter2hunter2"},
                 failure=Failure(ename="ValueError", evalue=f"bad {PLANTED}"))
    path = m.write(tmp_path)
    text = path.read_text()
    assert PLANTED not in text and "hunter2" not in text
    again = load_manifest(tmp_path)
    assert again.run_id == "r1" and again.parameters["api_key"] == "***"


def test_manifest_differences_name_the_fields_that_changed():
    base = dict(experiment="e", notebook=NotebookInfo(path="x", name="x"))
    a = Manifest(
        run_id="a", parameters={"seed": 1}, spec={"variants": [{"name": "v", "params": {"temperature": 0}}]}, **base
    )
    b = Manifest(
        run_id="b", parameters={"seed": 2}, spec={"variants": [{"name": "v", "params": {"temperature": 0.8}}]}, **base
    )
    fields = {row["field"]: row for row in diff_manifests([a, b])}
    assert fields["parameters.seed"] == {"field": "parameters.seed", "a": 1, "b": 2}
    assert "spec.variants[v].params.temperature" in fields
    assert "experiment" not in fields


def test_unknown_parameter_is_refused_before_anything_runs(kernel_env):
    r = workbench("run", str(EVALUATE), "-p", "sampel_size", "3")
    assert r.returncode == 1
    assert "has no parameter 'sampel_size'" in r.stderr and "sample_size" in r.stderr
    assert not kernel_env.exists() or not any(kernel_env.rglob("manifest.json"))


# ============================================================================================ with a kernel


@pytest.mark.notebook
def test_run_folder_holds_notebook_report_results_and_a_complete_manifest(kernel_env, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", PLANTED)  # a secret in the environment of the run and its kernel
    r = workbench("run", str(EVALUATE), "-p", "sample_size", "6", *FAKE, "--no-progress")
    assert r.returncode == 0, r.stderr
    report = Path(r.stdout.strip().splitlines()[-1])  # the last line is the report's path
    run_dir = report.parent
    assert report.name == "report.html" and run_dir.parent.name == "sentiment-demo"
    assert run_dir.parent.parent == kernel_env
    for name in ("notebook.ipynb", "report.html", "results.parquet", "results.jsonl", "manifest.json"):
        assert (run_dir / name).is_file(), name

    m = load_manifest(run_dir)
    assert m.status == "complete" and m.failure is None
    assert m.parameters == {"sample_size": 6, "providers": "nb_fakes:sentiment", "targets": "fake-openai"}
    assert m.spec["name"] == "sentiment-demo" and m.spec["sample"] == 6 and m.spec_sha256 and m.fingerprint
    assert m.dataset.n_cases == 6 and len(m.dataset.sha256) == 64
    assert m.notebook.name == "03_evaluate.ipynb" and len(m.notebook.sha256) == 64
    assert m.packages["papermill"] and m.packages["openai"] and m.python
    assert m.git.commit is None or len(m.git.commit) == 40
    [target] = m.targets
    assert target.target == "fake-openai" and target.model == "gpt-4o-mini"
    assert target.system_fingerprints == ["fp_fake0001"]
    assert target.identity["base_url"].startswith("https://fake-openai")
    assert m.totals.calls == 18 and m.totals.prompt_tokens > 0 and m.totals.cost_usd > 0
    assert m.totals.prices_as_of and m.started_at < m.finished_at
    assert {x.variant for x in m.metrics} == {"bare", "instructed", "json-schema"}

    html = report.read_text()
    assert f"prices as of {m.totals.prices_as_of}" in html
    index = (kernel_env / "index.html").read_text()
    assert m.run_id in index and f"sentiment-demo/{m.run_id}/report.html" in index

    # secrets never appear in anything the run wrote
    for path in kernel_env.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), f"secret leaked into {path}"


@pytest.mark.notebook
def test_secrets_printed_or_passed_as_parameters_are_redacted_everywhere(kernel_env, monkeypatch, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", PLANTED)
    nb = make_notebook(
        tmp_path / "leaky.ipynb",
        "import os\nprint('key:', os.environ['OPENAI_API_KEY'])\nos.environ['OPENAI_API_KEY']",
        "print(note)",
    )
    r = workbench("run", str(nb), "-p", "note", f"my key is {PLANTED}", "--no-progress")
    assert r.returncode == 0, r.stderr
    run_dir = Path(r.stdout.strip().splitlines()[-1]).parent
    assert run_dir.parent.name == "leaky"  # no experiment: the run is filed under the notebook's name
    executed = (run_dir / "notebook.ipynb").read_text()
    assert "key: ***" in executed
    for path in kernel_env.rglob("*"):
        if path.is_file():
            assert PLANTED.encode() not in path.read_bytes(), f"secret leaked into {path}"


@pytest.mark.notebook
def test_a_failed_run_keeps_its_partial_notebook_and_names_the_cell(kernel_env, tmp_path):
    nb = make_notebook(
        tmp_path / "broken.ipynb", "print('before the failure')", "ratio = 1 / 0", "print('never printed')"
    )
    r = workbench("run", str(nb), "--no-progress")
    assert r.returncode == 4  # the run started and failed (bad input would be 1)
    assert "cell 2" in r.stderr and "ZeroDivisionError" in r.stderr and "ratio = 1 / 0" in r.stderr
    [run_dir] = [p.parent for p in kernel_env.rglob("manifest.json")]
    m = load_manifest(run_dir)
    assert m.status == "failed"
    assert m.failure.source_cell_index == 2 and m.failure.ename == "ZeroDivisionError"
    assert m.failure.cell_index == 2 and m.failure.execution_count == 3
    executed = nbformat.read(run_dir / "notebook.ipynb", as_version=4)
    text = json.dumps(executed)
    assert "before the failure" in text and "never printed" in text  # the code is kept...
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not any("never printed" in o.get("text", "") for o in outputs)  # ...but it never ran
    html = (run_dir / "report.html").read_text()
    assert "This run failed" in html and "ZeroDivisionError" in html


@pytest.mark.notebook
def test_a_2x2_sweep_runs_in_parallel_and_lands_in_the_index(kernel_env):
    r = workbench("run", str(EVALUATE), *FAKE, "--sweep", "sample_size=3,4", "--sweep", "seed=1,2", "--jobs", "2")
    why = f"stdout:\n{r.stdout[-2000:]}\nstderr:\n{r.stderr[-4000:]}"
    assert r.returncode == 0, why
    assert "ZMQError" not in r.stderr, why
    lines = r.stdout.strip().splitlines()
    assert lines[-1].endswith("index.html"), why
    manifests = [load_manifest(p) for p in kernel_env.rglob("manifest.json")]
    assert len(manifests) == 4 and all(m.ok for m in manifests), [(m.run_id, m.status, m.failure) for m in manifests]
    points = sorted((m.parameters["sample_size"], m.parameters["seed"]) for m in manifests)
    assert points == [(3, 1), (3, 2), (4, 1), (4, 2)]
    assert len({m.sweep["id"] for m in manifests}) == 1 and sorted(m.sweep["index"] for m in manifests) == [0, 1, 2, 3]
    assert sorted(m.totals.calls for m in manifests) == [9, 9, 12, 12]
    # --jobs 2: the points ran in two worker processes, each with its own kernel
    assert len({m.sweep["worker_pid"] for m in manifests}) == 2, [m.sweep for m in manifests]
    index = (kernel_env / "index.html").read_text()
    assert all(m.run_id in index for m in manifests)


@pytest.mark.notebook
def test_rerun_reproduces_the_results_table_exactly(kernel_env):
    first = workbench("run", str(EVALUATE), "-p", "sample_size", "5", "-p", "repeats", "2", *FAKE, "--no-progress")
    assert first.returncode == 0, first.stderr
    original = Path(first.stdout.strip().splitlines()[-1]).parent
    again = workbench("rerun", str(original / "manifest.json"), "--no-progress")
    assert again.returncode == 0, again.stderr
    assert "reproduced" in again.stderr
    rerun_dir = Path(again.stdout.strip().splitlines()[-1]).parent
    assert rerun_dir != original and rerun_dir.parent == original.parent
    m = load_manifest(rerun_dir)
    assert m.rerun.of_run == original.name and m.rerun.identical is True and m.rerun.differences == []
    assert m.totals.cache_hits == m.totals.calls == 30  # every call answered from the response cache
    a, b = runs.stable_table(original), runs.stable_table(rerun_dir)
    assert len(a) == 30 and a.equals(b)
    assert {"case_id", "variant", "target", "repeat", "output", "score.label", "prompt_tokens"} <= set(a.columns)


@pytest.mark.notebook
def test_report_command_rebuilds_report_and_runs_lists_them(kernel_env):
    r = workbench("run", str(EVALUATE), "-p", "sample_size", "3", *FAKE, "--no-progress")
    assert r.returncode == 0, r.stderr
    report = Path(r.stdout.strip().splitlines()[-1])
    report.unlink()
    (kernel_env / "index.html").unlink()
    rebuilt = workbench("report", str(report.parent))
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert report.is_file() and "Paired comparison" in report.read_text()
    listed = workbench("runs")
    assert listed.returncode == 0, listed.stderr
    assert report.parent.name in listed.stdout and (kernel_env / "index.html").is_file()


@pytest.mark.notebook
def test_workbench_run_shows_each_call_and_ends_with_the_headline(kernel_env):
    """`make demo` is `workbench run`: a bar of the experiment's calls (not only papermill's cells), then what
    was learned - scores with intervals per variant, the paired verdict, the spend - and the report's path."""
    r = workbench("run", str(EVALUATE), "-p", "sample_size", "3", *FAKE)
    assert r.returncode == 0, r.stderr
    assert "sentiment-demo calls" in r.stderr and "9/9" in r.stderr  # 3 cases x 3 variants, call by call
    lines = r.stdout.strip().splitlines()
    assert lines[-1].endswith("report.html")
    text = "\n".join(lines)
    assert "label (pass rate with 95% CI):" in text and "paired:" in text and "spent $" in text
    for variant in ("bare", "instructed", "json-schema"):
        assert any(line.strip().startswith(variant) and "n=3" in line for line in lines), variant
