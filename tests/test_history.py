"""One run history: every run, whatever started it, is a folder under one root with one layout, listed by
``workbench runs``, ``reports/index.html`` and the ``RunHistory`` widget; ``workbench eval`` resumes its own
runs; comparisons say when the case sets differ and use the overlap.

The eval runs through the real CLI against a fake OpenAI-compatible server on 127.0.0.1 (``FakeServer``);
everything else uses the FakeBackend transport.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import nb_fakes
import pytest

from workbench import runs
from workbench.errors import SpecWarning
from workbench.experiment import experiment_from_dict
from workbench.harness import run
from workbench.history import default_run_dir, find_run, history_root, read_identity
from workbench.runs.manifest import load_manifest
from workbench.testing import FakeBackend, FakeServer

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def history(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "reports"
    monkeypatch.setenv("WORKBENCH_REPORTS", str(root))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    return root


@pytest.fixture
def server():
    """The fake backend answering like nb_fakes' sentiment model, over real HTTP on loopback."""
    loop = asyncio.new_event_loop()
    fake = FakeServer(FakeBackend(nb_fakes._sentiment, require_auth=False))
    started = threading.Event()

    def serve():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert started.wait(30)
    yield fake
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})}, cwd=str(TESTS))


def fake_profile(tmp_path: Path, server: FakeServer) -> dict[str, str]:
    config = tmp_path / "workbench.toml"
    config.write_text(f'[profiles.fake]\nbackend = "openai"\nbase_url = "{server.base_url}"\nauth = "none"\n'
                      f'model = "gpt-4o-mini"\n')
    return {"WORKBENCH_CONFIG": str(config)}


def demo(**changes):
    return runs.resolve_experiment(None, targets=nb_fakes.PROFILE, sample_size=4, **changes)


# ============================================================================================ one root


def test_an_eval_a_notebook_a_playground_and_a_python_run_all_join_one_history(history, tmp_path, server):
    # workbench eval, from the shell
    env = fake_profile(tmp_path, server)
    out = cli("eval", "--sample", "4", "--target", "fake", "-q", env=env)
    assert out.returncode == 0, out.stderr
    assert "label (pass rate with 95% CI)" in out.stdout and "paired:" in out.stdout  # the headline
    # a notebook run interactively: what notebook 03's run cell does when no run_dir is injected
    notebook = runs.run_experiment(demo(), providers="nb_fakes:sentiment", progress=False)
    # the playground
    from workbench.widgets import Playground

    pg = Playground(demo(), providers=nb_fakes.sentiment(), target=nb_fakes.PROFILE, k=2, mode="dataset")
    assert pg.run(wait=True) is not None and pg.results is not None
    # workbench.run() from plain Python, no folder given: lands in the history too (adopted when listed)
    python = run(demo(seed=5), providers=nb_fakes.sentiment(), progress=False, cache=False)
    assert python.run_dir.parent.parent == history

    listing = cli("runs", env=env)
    assert listing.returncode == 0, listing.stderr
    found = {load_manifest(p.parent).source: p.parent for p in history.glob("*/*/manifest.json")}
    assert set(found) == {"eval", "notebook", "playground", "python"}
    index = (history / "index.html").read_text()
    for source, run_dir in found.items():
        assert run_dir.name in listing.stdout and run_dir.name in index, source
        assert run_dir.parent.parent == history  # one layout: <root>/<experiment>/<run-id>/
        assert {"manifest.json", "results.sqlite", "experiment.json"} <= {p.name for p in run_dir.iterdir()}
    assert notebook.run_dir == found["notebook"] and pg.results.run_dir == found["playground"]
    m = load_manifest(found["eval"])
    assert m.status == "complete" and m.metrics and m.dataset.n_cases == 4 and m.totals.calls == 12
    assert not (found["eval"] / "report.html").exists()  # a report when asked (--report), not by default


def test_eval_resumes_its_newest_run_of_the_same_spec_and_never_a_notebooks(history):
    exp = demo()
    first = runs.run_experiment(exp, providers="nb_fakes:sentiment", source="eval", resume=True, progress=False)
    again = runs.run_experiment(exp, providers="nb_fakes:sentiment", source="eval", resume=True, progress=False)
    assert again.run_dir == first.run_dir and again.info["resumed"] == len(first)  # nothing re-sent
    assert find_run(exp.name, exp.fingerprint()) == first.run_dir
    other = runs.run_experiment(demo(repeats=2), providers="nb_fakes:sentiment", source="eval", resume=True,
                                progress=False)
    assert other.run_dir != first.run_dir  # another version of the experiment: another run
    # a notebook's run of the same version owns its folder: eval starts its own
    notebook = runs.run_experiment(demo(seed=9), providers="nb_fakes:sentiment", progress=False)
    assert read_identity(notebook.run_dir)["source"] == "notebook"
    assert default_run_dir(exp.name, demo(seed=9).fingerprint()) != notebook.run_dir
    assert history_root() == history


def test_a_run_refused_by_its_budget_is_recorded_as_failed_not_running(history):
    from workbench.errors import BudgetExceeded

    exp = demo().replace(budget_usd=0.0)
    with pytest.raises(BudgetExceeded):
        runs.run_experiment(exp, providers="nb_fakes:sentiment", source="eval", progress=False)
    (run_dir,) = [p.parent for p in history.glob("*/*/manifest.json")]
    m = load_manifest(run_dir)
    assert m.status == "failed" and m.failure.ename == "BudgetExceeded" and m.source == "eval"


# ============================================================================================ seeds


def test_the_request_seed_does_not_change_the_sample():
    a, b = demo(seed=1), demo(seed=2, temperature=0.8)
    assert [c.id for c in a.load_cases()] == [c.id for c in b.load_cases()]
    assert a.load_cases().sha256 == b.load_cases().sha256 and a.fingerprint() != b.fingerprint()
    c = demo(sample_seed=3)
    assert [x.id for x in c.load_cases()] != [x.id for x in a.load_cases()]  # sample_seed does


def test_an_old_spec_that_sampled_with_seed_still_loads_and_says_what_changed(tmp_path):
    spec = demo().to_dict()
    spec.pop("sample_seed")
    spec.update(seed=3, sample=4)
    with pytest.warns(SpecWarning, match="sample_seed: 3"):
        old = experiment_from_dict(spec, base_dir=Path(runs.resolve_experiment(None).base_dir))
    assert old.sample_seed == 0 and old.seed == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        experiment_from_dict({**spec, "sample_seed": 3}, base_dir=old.base_dir)  # explicit: no warning


# ============================================================================================ compare


def _two_runs(history, second: dict) -> tuple[Path, Path]:
    a = runs.run_experiment(demo(), providers="nb_fakes:sentiment", progress=False)
    b = runs.run_experiment(demo(**second), providers="nb_fakes:sentiment", progress=False)
    return a.run_dir, b.run_dir


def test_runs_on_the_same_cases_compare_case_by_case(history):
    a, b = _two_runs(history, {"seed": 1, "temperature": 0.9})
    cmp = runs.compare_runs([a, b])
    assert cmp.warnings == [] and cmp.same_cases and cmp.shared_cases == 4
    assert set(cmp.paired["n_pairs"]) == {4} and set(cmp.paired["n_unpaired"]) == {0}
    assert set(cmp.case_changes["change"]) == {"same"} and len(cmp.case_changes) == 12
    assert list(cmp.scores_wide().columns) == [a.name, b.name]  # the baseline first


def test_comparing_runs_on_different_cases_warns_and_uses_the_overlap(history):
    a, b = _two_runs(history, {"sample_seed": 7})
    cmp = runs.compare_runs([a, b])
    assert len(cmp.warnings) == 1 and "do not have the same cases" in cmp.warnings[0]
    shared = cmp.shared_cases
    assert 0 < shared < 4 and f"{shared} shared cases" in cmp.warnings[0]
    assert set(cmp.paired["n_pairs"]) == {shared}
    assert set(cmp.paired["n_unpaired"]) == {2 * (4 - shared)}  # each run's own cases
    assert set(cmp.scores["cases"]) == {"all", "shared"} and cmp.scores_basis.startswith(f"the {shared} cases")
    wide = cmp.scores_wide()  # side by side on the shared cases, not on two different samples
    assert all(f"n={shared}" in cell for cell in wide.to_numpy().ravel())
    assert len(cmp.case_changes) == 3 * shared


def test_case_changes_say_which_cases_changed_outcome(history, tmp_path):
    from workbench.experiment import Experiment
    from workbench.variants import Variant

    cases = [{"id": "a", "text": "a", "expected": "positive"}, {"id": "b", "text": "b", "expected": "positive"},
             {"id": "c", "text": "c", "expected": "positive"}]
    before = {"a": "positive", "b": "negative", "c": "positive"}
    after = {"a": "negative", "b": "positive", "c": "I'm sorry, but I can't help with that."}

    def one(replies, name):
        exp = Experiment(name="flip", dataset=cases, variants=[Variant(name="v", user="{{ text }}")],
                         targets=["fake"], scorers=[{"label": {"labels": ["positive", "negative"]}}])
        fake = FakeBackend(lambda req: replies[req.user_text])
        return run(exp, providers={"fake": fake.provider("openai")}, out=history / "flip" / name, cache=False,
                   progress=False)

    a, b = one(before, "r1"), one(after, "r2")
    for r in (a, b):
        runs.record_run(r, source="python")
    cmp = runs.compare_runs([a.run_dir, b.run_dir])
    got = {r.case_id: (r.before, r.after, r.change) for r in cmp.case_changes.itertuples()}
    assert got == {"a": ("pass", "fail", "regressed"), "b": ("fail", "pass", "improved"),
                   "c": ("pass", "refused", "regressed")}
    assert cmp.case_changes.iloc[0]["change"] == "regressed"  # regressions first


def test_notebook_04_picks_two_runs_on_the_same_cases(history):
    a, b = _two_runs(history, {"seed": 1})
    c = runs.run_experiment(demo(sample_seed=7), providers="nb_fakes:sentiment", progress=False)  # newest, other cases
    newest_two = runs.latest_runs(history, 2)
    assert len(newest_two) == 2
    (m1, m2) = [load_manifest(d) for d in newest_two]
    assert m1.dataset.sha256 == m2.dataset.sha256  # paired by construction, or fewer runs
    # newest by start time (a run id's time has whole seconds: two ids of one second sort by their random part)
    assert runs.latest_runs(history, 2, same_cases=False)[-1] == c.run_dir


# ============================================================================================ listing


def test_list_filter_and_sort_runs(history):
    a = runs.run_experiment(demo(), providers="nb_fakes:sentiment", progress=False)
    b = runs.run_experiment(demo(seed=3), providers="nb_fakes:sentiment", source="eval", progress=False)
    listed = runs.list_runs(history)
    assert [d for d, _ in listed] == [b.run_dir, a.run_dir]  # newest first
    assert [d for d, _ in runs.filter_runs(listed, source="eval")] == [b.run_dir]
    assert [d for d, _ in runs.filter_runs(listed, query=a.run_dir.name[-6:])] == [a.run_dir]
    assert [d for d, _ in runs.sort_runs(listed, "oldest")] == [a.run_dir, b.run_dir]
    assert len(runs.sort_runs(listed, "best score")) == 2 and len(runs.sort_runs(listed, "cost")) == 2
    with pytest.raises(Exception, match="use one of"):
        runs.sort_runs(listed, "prettiest")


def test_a_run_in_progress_is_listed_before_it_has_a_manifest(history):
    run_dir = history / "sentiment-demo" / "20990101-000000-abcdef"
    from workbench.ledger import RunLedger

    store = RunLedger(run_dir)
    store.set_meta("experiment", {"name": "sentiment-demo"})
    store.set_meta("fingerprint", "f" * 16)
    store.set_meta("status", "running")
    store.close()
    (d, m), = [(d, m) for d, m in runs.list_runs(history) if d == run_dir]
    assert m.status == "running (or interrupted)" and m.source == "python" and m.fingerprint == "f" * 16
    assert runs.adopt_runs(history) == []  # not finished: left alone


# ============================================================================================ the widget


def test_run_history_widget_filters_sorts_opens_and_compares(history):
    from workbench.widgets import RunHistory

    a, b = _two_runs(history, {"sample_seed": 7})
    h = RunHistory(history)
    assert len(h.runs) == 2 and [m.run_id for _, m in h.rows] == [b.name, a.name]
    assert len(h.checkboxes) == 2 and h.compare_button.disabled and h.open_button.disabled
    h.query = a.name
    assert [m.run_id for _, m in h.rows] == [a.name] and h.query_box.value == a.name
    h.query = ""
    h.sort = "oldest"
    assert [m.run_id for _, m in h.rows] == [a.name, b.name] and h.sort_pick.value == "oldest"
    h.checkboxes[a.name].value = True
    assert h.selected == (a.name,) and not h.open_button.disabled
    viewer = h.open_run()
    assert type(viewer).__name__ == "ResultsViewer" and viewer in h.detail.children
    h.checkboxes[b.name].value = True
    assert h.selected == (a.name, b.name) and not h.compare_button.disabled
    h.compare_button.click()
    cmp = h.comparison
    assert cmp is not None and cmp.warnings and [m.run_id for _, m in cmp.runs] == [a.name, b.name]
    html = h.detail.children[0].value
    assert "do not have the same cases" in html and "Paired differences" in html and "Scores" in html
    snapshot = h.static_html()
    assert a.name in snapshot and b.name in snapshot and "do not have the same cases" in snapshot
    with pytest.raises(ValueError, match="use one of"):
        h.sort = "prettiest"


def test_run_history_shows_the_outputs_of_a_changed_case(history):
    from workbench.widgets import RunHistory

    a, b = _two_runs(history, {"seed": 2})
    # make the second run's answer differ on one case: rewrite nothing, just compare with a hostile run
    c = runs.run_experiment(demo(seed=4), providers="nb_fakes:hostile", progress=False)
    h = RunHistory(history)
    cmp = h.compare([a.name, c.run_dir.name])
    changed = cmp.case_changes[cmp.case_changes["change"] != "same"]
    assert len(changed) and len(h.case_pick.options) == len(changed)
    h.case_pick.value = h.case_pick.options[0][1]
    assert "<del" in h.case_diff.value or "<ins" in h.case_diff.value


# ============================================================================================ headline


def test_the_headline_says_scores_verdict_spend_and_where_the_report_is(history):
    res = runs.run_experiment(demo(repeats=2), providers="nb_fakes:sentiment", progress=False, report=True)
    text = runs.headline(res, load_manifest(res.run_dir), report=res.run_dir / "report.html")
    lines = text.splitlines()
    assert lines[0].startswith("sentiment-demo · ") and "24 calls" in lines[0]
    assert "label (pass rate with 95% CI):" in text and "instructed" in text and "%]" in text
    assert "paired: " in text and "beats" in text or "No clear winner" in text
    assert "spent $0.0" in text and "$0.0000 " not in text  # significant digits, never a rounded-away cost
    assert lines[-1] == f"report: {res.run_dir / 'report.html'}"
    assert json.loads((res.run_dir / "manifest.json").read_text())["source"] == "notebook"
