"""Every notebook in notebooks/ runs top to bottom, unedited, through papermill (``workbench run``'s own path).

Parameters only make them smaller (fewer cases); notebooks that evaluate use the embedded local model or the
fake backend (``tests/nb_fakes.py``). Each run also writes its report, so a notebook that breaks the report
fails here too.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

from workbench import runs
from workbench.runs.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TESTS = Path(__file__).resolve().parent
EXPECTED = ["01_playground", "02_tokens_and_costs", "03_evaluate", "04_compare_runs", "05_review"]

# Parameters that make any notebook smaller; each notebook gets the ones it declares.
SMALL = {"sample_size": 3, "n_cases": 3, "max_cases": 3, "repeats": 1}


@pytest.fixture
def reports(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    monkeypatch.setenv("WORKBENCH_REPORTS", str(tmp_path / "reports"))
    return tmp_path / "reports"


def execute(notebook: Path, reports: Path, **params) -> runs.RunOutcome:
    outcome = runs.execute_run(runs.RunSpec(notebook, params, reports, progress=False))
    assert outcome.ok, outcome.failure
    assert outcome.report.is_file() and (outcome.run_dir / "notebook.ipynb").is_file()
    return outcome


def test_the_five_notebooks_are_there():
    assert [p.stem for p in NOTEBOOKS if p.stem in EXPECTED] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebooks_are_saved_clean_with_the_environment_kernel(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: save it without outputs"


@pytest.mark.notebook
@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem not in ("03_evaluate", "04_compare_runs")],
                         ids=lambda p: p.stem)
def test_notebook_runs_unedited(path, reports, tmp_path):
    declared = runs.notebook_parameters(path)
    params = {k: v for k, v in SMALL.items() if k in declared}
    if "spec_path" in declared:  # what a notebook saves goes to the test's folder, not next to the notebook
        params["spec_path"] = str(tmp_path / "saved-spec.yaml")
    out = execute(path, reports, **params)
    executed = nbformat.read(out.run_dir / "notebook.ipynb", as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    # the widgets leave something a static export can show (their HTML snapshot or an image)
    assert any({"text/html", "image/png"} & set(o.get("data", {})) for o in outputs), path.name


@pytest.mark.notebook
@pytest.mark.local_model
def test_03_evaluate_runs_on_the_local_model(reports):
    out = execute(ROOT / "notebooks" / "03_evaluate.ipynb", reports, sample_size=3)
    m = load_manifest(out.run_dir)
    assert m.experiment == "sentiment-demo" and m.totals.calls == 9
    assert m.targets[0].target == "local" and m.targets[0].system_fingerprints[0].startswith("fp_llamacpp")
    assert m.totals.cost_usd == 0  # the embedded model is free; the report still gives the prices' date
    executed = nbformat.read(out.run_dir / "notebook.ipynb", as_version=4)
    images = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 1  # the scores chart (a free model has no cost/quality trade-off to draw)
    text = (out.run_dir / "notebook.ipynb").read_text()
    assert "no cost/quality trade-off to draw" in text and "flaky cases" in text


@pytest.mark.notebook
def test_03_evaluate_runs_on_the_fake_backend_with_repeats(reports):
    out = execute(ROOT / "notebooks" / "03_evaluate.ipynb", reports, sample_size=4, repeats=2,
                  providers="nb_fakes:sentiment", targets="fake-openai")
    m = load_manifest(out.run_dir)
    assert m.totals.calls == 24 and m.totals.cost_usd > 0
    assert "Flaky cases" in out.report.read_text()


@pytest.mark.notebook
def test_04_compare_runs_compares_two_runs(reports):
    evaluate = ROOT / "notebooks" / "03_evaluate.ipynb"
    fake = {"providers": "nb_fakes:sentiment", "targets": "fake-openai"}
    a = execute(evaluate, reports, sample_size=4, seed=1, **fake)
    b = execute(evaluate, reports, sample_size=4, seed=2, temperature=0.9, **fake)
    out = execute(ROOT / "notebooks" / "04_compare_runs.ipynb", reports, run_dirs=[str(a.run_dir), str(b.run_dir)])
    text = (out.run_dir / "notebook.ipynb").read_text()
    assert a.run_id in text and b.run_id in text
    assert "spec.variants[bare].params.temperature" in text  # what changed between the runs
    # another request seed, the same cases: the comparison is paired case by case, with no warning
    assert "all 4 cases, the same in every run" in text and "do not have the same cases" not in text
    assert "on 4 paired cases" in text and "wb-run-history" in text


@pytest.mark.notebook
@pytest.mark.local_model
def test_04_compare_runs_makes_its_own_runs_on_a_fresh_clone(reports):
    out = execute(ROOT / "notebooks" / "04_compare_runs.ipynb", reports, sample_size=3)
    made = [load_manifest(p) for p in reports.rglob("manifest.json") if p.parent != out.run_dir]
    assert len(made) == 2 and {m.experiment for m in made} == {"sentiment-demo"}
    assert sorted(m.parameters.get("temperature") or 0 for m in made) == [0, 0.8]
    assert made[0].dataset.sha256 == made[1].dataset.sha256  # notebook 04's runs share their case set
    assert "do not have the same cases" not in (out.run_dir / "notebook.ipynb").read_text()


@pytest.mark.notebook
def test_03_run_interactively_joins_the_history(reports, tmp_path):
    """Notebook 03 executed as a user does in Jupyter - no `workbench run`, no run_dir - records its run in the
    history: listed by `workbench runs` and the index like any other."""
    import subprocess
    import sys

    import papermill

    from workbench.runs.kernels import isolated_kernel_manager_class

    papermill.execute_notebook(str(ROOT / "notebooks" / "03_evaluate.ipynb"), str(tmp_path / "out.ipynb"),
                               parameters={"sample_size": 3, "providers": "nb_fakes:sentiment",
                                           "targets": "fake-openai"}, progress_bar=False,
                               cwd=str(ROOT / "notebooks"), kernel_manager_class=isolated_kernel_manager_class())
    (run_dir,) = [p.parent for p in reports.glob("*/*/manifest.json")]
    m = load_manifest(run_dir)
    assert m.source == "notebook" and m.status == "complete" and m.totals.calls == 9 and m.metrics
    listing = subprocess.run([sys.executable, "-m", "workbench", "runs"], capture_output=True, text=True,
                             timeout=300)
    assert listing.returncode == 0 and run_dir.name in listing.stdout and "notebook" in listing.stdout
    assert run_dir.name in (reports / "index.html").read_text()
