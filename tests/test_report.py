"""The report and the index as pure functions: no kernel, no browser (those are test_runs / test_report_browser)."""

from __future__ import annotations

import re

import nb_fakes
import pytest
from markupsafe import escape

from workbench import runs
from workbench.runs.manifest import Failure, Manifest, NotebookInfo, load_manifest
from workbench.runs.report import CSP, NotebookRenderer, build_index, build_report, sanitize_html


@pytest.fixture
def hostile_run(tmp_path):
    """A finished run folder (manifest, results) whose every model output is an injection attempt."""
    exp = runs.resolve_experiment(None, targets=nb_fakes.PROFILE, sample_size=4, repeats=2)
    run_dir = tmp_path / "reports" / exp.name / "r1"
    runs.run_experiment(exp, run_dir, providers="nb_fakes:hostile", progress=False)
    out = runs.finalize_run(run_dir, run_id="r1", experiment=exp.name,
                            notebook=NotebookInfo(path="", name="(none)"), parameters={"sample_size": 4})
    return out


def test_report_shows_every_section_and_escapes_model_output(hostile_run):
    html = hostile_run.report.read_text()
    assert f'content="{escape(CSP)}"' in html  # (the browser test checks that the policy is enforced)
    assert "<script" not in html.lower() and not re.search(r"<[^>]*\bon\w+=", html)  # not as markup...
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html  # ...but as text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # nothing fetched, nothing linked outside
    for section in ("experiment", "scores", "comparison", "cost", "flaky", "outputs", "provenance"):
        assert f'id="{section}"' in html, section
    assert html.count('src="data:image/png;base64,') >= 4  # scores, tokens, cost, cost/quality, flakiness
    m = load_manifest(hostile_run.run_dir)
    assert f"prices as of {m.totals.prices_as_of}" in html
    assert "fp_fake0001" in html  # targets with their system fingerprints, in the provenance


def test_a_failed_run_without_results_still_reports(tmp_path):
    m = Manifest(run_id="r2", experiment="e", status="failed", notebook=NotebookInfo(path="n.ipynb", name="n.ipynb"),
                 spec={"name": "e", "variants": []},
                 failure=Failure(cell_index=4, source_cell_index=3, execution_count=3, ename="KeyError",
                                 evalue="'text'", source="df['text']"))
    nb = {"cells": [{"cell_type": "code", "source": "df['text']", "execution_count": 3, "metadata": {},
                     "outputs": [{"output_type": "error", "ename": "KeyError", "evalue": "'text'",
                                  "traceback": ["\x1b[31mKeyError\x1b[0m: 'text'"]}]}], "metadata": {}}
    html = build_report(None, m, nb)
    assert "This run failed" in html and "cell 3 (In [3])" in html and "KeyError" in html
    assert "\x1b" not in html  # ANSI colours stripped from tracebacks


def test_sanitizer_keeps_tables_and_drops_anything_active():
    dirty = ('<style>.x{}</style><table class="dataframe"><tr><td onclick="x()">1</td></tr></table>'
             '<script>alert(1)</script><img src="https://evil.test/x.png"><img src=x onerror=alert(1)>'
             '<a href="javascript:alert(1)">link</a><iframe src="https://evil.test"></iframe>'
             '<img src="data:image/png;base64,iVBORw0KGgo=" alt="ok">')
    clean = str(sanitize_html(dirty))
    assert '<table class="dataframe">' in clean and "<td>1</td>" in clean
    for bad in ("<script", "alert(1)", "onclick", "onerror", "evil.test", "javascript:", "<iframe", ".x{}"):
        assert bad not in clean, bad
    assert 'src="data:image/png;base64,iVBORw0KGgo="' in clean


def test_widgets_are_drawn_from_the_state_papermill_saved():
    state = {
        "box": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_desc", "IPY_MODEL_bar", "IPY_MODEL_out"]}},
        "desc": {"model_name": "HTMLModel", "state": {"value": "demo: <b>100%</b><script>x()</script>"}},
        "bar": {"model_name": "FloatProgressModel", "state": {"value": 12, "max": 12}},
        "out": {"model_name": "OutputModel", "state": {"outputs": [{"output_type": "stream", "name": "stdout",
                                                                      "text": "done <img src=x onerror=y>"}]}},
    }
    nb = {
        "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}},
        "cells": [
            {
                "cell_type": "code",
                "source": "bar",
                "execution_count": 1,
                "metadata": {},
                "outputs": [
                    {
                        "output_type": "display_data",
                        "data": {
                            "text/plain": "HBox()",
                            "application/vnd.jupyter.widget-view+json": {"model_id": "box", "version_major": 2},
                        },
                    }
                ],
            }
        ],
    }
    html = str(NotebookRenderer(nb).render())
    assert '<progress value="12" max="12"></progress>' in html
    assert "demo: <b>100%</b>" in html and "x()" not in html
    assert "done &lt;img src=x onerror=y&gt;" in html
    assert '<details class="code">' in html and '<details class="code" open' not in html  # code folded


def test_index_links_every_run(hostile_run):
    m = load_manifest(hostile_run.run_dir)
    html = build_index([("sentiment-demo/r1", m)])
    assert 'href="sentiment-demo/r1/report.html"' in html and 'href="sentiment-demo/r1/manifest.json"' in html
    assert "bare: " in html and "<script" not in html.lower()
    assert (hostile_run.run_dir.parent.parent / "index.html").is_file()


@pytest.fixture
def honest_run(tmp_path):
    """A run on a free model whose answers include a refusal, a hedge, a long ramble and plain labels."""
    from workbench.experiment import Experiment
    from workbench.testing import FakeBackend, Reply
    from workbench.variants import Variant

    replies = {"refuse": "I'm sorry, but I can't help with that request.", "hedge": "Positive or Negative: positive",
               "ramble": "Well, " + "the review goes on and on about many things " * 20 + "so: positive",
               "plain": "negative"}
    cases = [{"id": k, "text": k, "expected": "positive"} for k in replies]
    exp = Experiment(name="honest", dataset=cases, targets=["free"],
                     variants=[Variant(name="terse", user="{{ text }}"),
                               Variant(name="polite", user="Please: {{ text }}")],
                     scorers=[{"label": {"labels": ["positive", "negative"]}}])
    fake = FakeBackend(lambda req: Reply(replies[req.user_text.removeprefix("Please: ")], model="smollm2"))
    run_dir = tmp_path / "reports" / "honest" / "r1"
    res = runs.run_experiment(exp, run_dir, providers={"free": fake.provider("openai")}, progress=False)
    for r in res.records:  # as the embedded model: free
        r.cost_usd = 0.0
    return runs.finalize_run(run_dir, run_id="r1", experiment="honest", notebook=NotebookInfo(path="", name="(none)"),
                             parameters={}, results=res, source="python")


def test_refused_and_ambiguous_answers_fail_and_are_shown_as_such(honest_run):
    html = honest_run.report.read_text()
    scores = html[html.index('id="scores"'):html.index('id="comparison"')]
    assert "25% [" in scores  # one pass in four, as a percentage
    assert '1 refused</a>' in scores and '1 ambiguous</a>' in scores and '2 failed</a>' not in scores
    assert 'href="#variant-terse-refused"' in scores  # the count links to those cases
    cases = html[html.index('id="outputs"'):html.index('id="provenance"')]
    assert 'id="variant-terse-refused"' in cases and 'id="variant-terse-ambiguous"' in cases
    assert '<tr id="case-refuse" class="' in cases and "has-refused" in cases  # an anchor per case, filterable
    assert 'id="cf-has-refused"' in cases and 'id="cf-has-ambiguous"' in cases  # the CSS-only filter
    assert "<mark>I&#39;m sorry, but I can&#39;t</mark>" in cases  # the evidence, marked in the output
    assert '<details class="fold">' in cases  # the long ramble is folded...
    fold = cases[cases.index('<details class="fold">'):]
    assert "<mark>positive</mark>" in fold[:fold.index("</summary>")]  # ...and still shows the label it ends with


def test_each_table_once_numbers_for_people_and_no_empty_sections(honest_run):
    html = honest_run.report.read_text()
    main = html[:html.index('id="provenance"')]
    assert main.count('<table class="data scores">') == 1  # one scorer: one score table, nowhere else
    assert html.count('id="comparison"') == 1 and "<b>free</b>" in html
    assert 'alt="cost per variant"' not in html and 'alt="cost against quality"' not in html  # a free model
    assert 'id="flaky"' not in html  # one repeat: no flaky section (the scores section says why)
    assert "flakiness is not measured" in html
    assert 'id="latency"' in html and "p95" in html and "output tokens/s" in html
    assert not re.search(r"\b\d+\.0\b(?!\d)", re.sub(r"<[^>]+>|data:image[^\"]+", "", main).replace("2.0", ""))
    assert "$0.0000" not in html and "0.137976" not in html


def test_a_report_comparison_says_when_cases_were_left_out():
    import pandas as pd  # noqa: F401 - the results frame is pandas

    from workbench.records import CellResult, Score
    from workbench.results import Results
    from workbench.runs.report import comparisons

    def cell(case, variant, passed):
        return CellResult(cell_key=f"{case}{variant}", experiment="e", case_id=case, variant=variant, target="t",
                          profile="p", deployment="d", model="m", repeat=0, messages=[],
                          scores=[Score(scorer="s", value=float(passed), passed=passed,
                                        verdict="pass" if passed else "fail")])

    res = Results([cell("a", "x", True), cell("b", "x", False), cell("a", "y", True)])
    (row,) = comparisons(res)
    assert row["pairs"] == 1 and row["unpaired"] == 1
