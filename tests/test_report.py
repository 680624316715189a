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
