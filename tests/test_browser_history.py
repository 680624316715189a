"""The RunHistory widget in a real JupyterLab, driven by headless Chromium through Playwright.

The test process fills a run history (three runs of the demo on the fake backend: two on the same cases, one
of them with refusals and hedges, and one on other cases), starts ``jupyter lab`` on 127.0.0.1 with that
history, runs a notebook cell showing ``RunHistory()``, ticks two runs, clicks Compare, waits for the
comparison (the changed cases and their diff) and saves a screenshot to ``test-artifacts/``. Nothing asserts
on wall-clock time.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nb_fakes
import nbformat
import pytest
from test_browser_playground import (
    CHROMIUM,
    CHROMIUM_ARGS,
    KERNEL_S,
    _free_port,
    _lab_env,
    _start_lab,
    _stop,
    _wait_for_server,
    run_all_cells,
)

from workbench import runs
from workbench.testing import FakeBackend, Reply

pytestmark = pytest.mark.browser


def _moody(req):
    """The demo's fake model, but the bare prompt declines or hedges on some reviews."""
    text = req.user_text
    if not req.system_text and not (req.body or {}).get("response_format"):
        if "rude" in text or "late" in text:
            return Reply("I'm sorry, but I can't help with that.")
        if "park" in text:
            return Reply("Positive or negative: it is hard to say.")
    elif req.system_text and "park" in text and not (req.body or {}).get("response_format"):
        return Reply("Negative")  # the instructed prompt now gets one case wrong
    return nb_fakes._sentiment(req)


def _fill_history(root: Path, monkeypatch) -> list[str]:
    monkeypatch.setenv("WORKBENCH_REPORTS", str(root))
    exp = runs.resolve_experiment(None, targets=nb_fakes.PROFILE, sample_size=8)
    a = runs.run_experiment(exp, providers="nb_fakes:sentiment", progress=False, source="eval")
    b = runs.run_experiment(exp.replace(seed=2), providers={nb_fakes.PROFILE: FakeBackend(_moody).provider("openai")},
                            progress=False)
    c = runs.run_experiment(exp.replace(sample_seed=5), providers="nb_fakes:sentiment", progress=False)
    return [a.run_dir.name, b.run_dir.name, c.run_dir.name]


def test_run_history_in_jupyterlab(tmp_path, artifacts, monkeypatch):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium (make browser)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium, or make browser); browser test skipped")
    from playwright.sync_api import expect, sync_playwright

    history = tmp_path / "reports"
    a, b, _ = _fill_history(history, monkeypatch)
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell("from workbench.widgets import RunHistory\n\nhistory = RunHistory()\n"
                                          "history")]
    nbformat.write(nb, root / "history.ipynb")
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "jupyter-lab.log"
    env = {**_lab_env(tmp_path), "WORKBENCH_REPORTS": str(history)}
    proc = _start_lab(root, port, env, log)
    shot = artifacts / "browser-run-history.png"
    page = None
    try:
        _wait_for_server(proc, url, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                run_all_cells(page, url, "history.ipynb")

                widget = page.locator(".wb-run-history").first
                expect(widget).to_be_visible(timeout=KERNEL_S * 1000)
                table = widget.locator(".wb-run-table")
                expect(table).to_contain_text(a)
                expect(table).to_contain_text("refused")  # the column, and run b's count in it
                boxes = table.locator("input[type=checkbox]")
                expect(boxes).to_have_count(3)
                expect(widget.locator("button.wb-compare")).to_be_disabled()
                # tick run a (the baseline, oldest: the bottom row) then run b, and compare
                boxes.nth(2).check()
                boxes.nth(1).check()
                compare = widget.locator("button.wb-compare")
                expect(compare).to_be_enabled()
                compare.click()
                comparison = widget.locator(".wb-run-comparison")
                expect(comparison).to_be_visible(timeout=120_000)
                expect(comparison).to_contain_text(f"Comparing {a} vs {b}")
                expect(comparison).to_contain_text("Same 8 cases")
                expect(comparison).to_contain_text("regressed")  # instructed on the park review
                expect(comparison).to_contain_text("changed")  # bare: a fail became a refusal
                diff = widget.locator(".wb-run-detail del, .wb-run-detail ins").first
                expect(diff).to_be_visible(timeout=60_000)  # the first changed case's output diff
                assert page.evaluate("document.documentElement.scrollWidth") <= 1280 + 20
                widget.scroll_into_view_if_needed()
                widget.screenshot(path=str(shot))
            except Exception:
                if page is not None:
                    page.screenshot(path=str(artifacts / "browser-run-history-failure.png"))
                raise
            finally:
                browser.close()
    finally:
        _stop(proc)
        if log.exists():
            shutil.copy(log, artifacts / "browser-run-history-lab.log")
    assert shot.stat().st_size > 10_000
    assert json.loads((history / "sentiment-demo" / a / "manifest.json").read_text())["source"] == "eval"
