"""The Review widget in a real JupyterLab, reviewed with the keyboard through headless Chromium (Playwright).

A run of the fake backend is made in the test process; a one-cell notebook opens it in the Review widget. The test
clicks into the widget's shortcut box once, then reviews three calls with keys only - ``p`` (pass), ``f`` (fail),
``4`` (a value on the experiment's 1..5 scale) - waiting for the progress line after each, and checks the run
folder: three reviews by the notebook's reviewer, in that order. Screenshots go to ``test-artifacts/``.
Waits are generous (2-core CI machines); nothing asserts on wall-clock time.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from review_fakes import run_once
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

from workbench.review import ReviewStore

pytestmark = pytest.mark.browser

REVIEWER = "browser-test"
STEP_S = 120  # one key: the kernel saves the review and redraws the widget


def _notebook(dest: Path, run_dir: Path) -> Path:
    source = ("from workbench.widgets import Review\n\n"
              f"review = Review({str(run_dir)!r}, reviewer={REVIEWER!r}, show='all')\nreview")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "review", "metadata": {}, "outputs": [],
                     "source": source}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path = dest / "review.ipynb"
    path.write_text(json.dumps(nb), "utf-8")
    return path


def test_three_cells_reviewed_with_the_keyboard_in_jupyterlab(tmp_path, artifacts):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium (make browser)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium, or make browser); browser test skipped")
    from playwright.sync_api import expect, sync_playwright

    results = run_once(tmp_path / "run")
    root = tmp_path / "notebooks"
    root.mkdir()
    nb = _notebook(root, results.run_dir)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "jupyter-lab.log"
    proc = _start_lab(root, port, _lab_env(tmp_path), log)
    page = None
    try:
        _wait_for_server(proc, url, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1300, "height": 1700})
                run_all_cells(page, url, nb.name)

                widget = page.locator(".wb-review").first
                expect(widget).to_be_visible(timeout=KERNEL_S * 1000)
                progress = widget.locator(".wb-review-progress")
                expect(progress).to_contain_text("0 of 16 reviewed", timeout=KERNEL_S * 1000)
                expect(widget.locator(".wb-review-detail")).to_contain_text("messages as sent")
                page.screenshot(path=str(artifacts / "browser-review-start.png"), full_page=True)

                keys = widget.locator(".wb-review-keys input")
                keys.click()  # the one mouse action: put the cursor in the shortcut box
                for n, key in enumerate(["p", "f", "4"], 1):
                    page.keyboard.press(key)
                    expect(progress).to_contain_text(f"{n} of 16 reviewed", timeout=STEP_S * 1000)
                    expect(widget.locator(".wb-review-status")).to_contain_text("saved:", timeout=STEP_S * 1000)
                    expect(keys).to_have_value("", timeout=STEP_S * 1000)  # the key was consumed, not typed
                expect(keys).to_be_focused()  # the cursor stayed in the shortcut box throughout
                widget.screenshot(path=str(artifacts / "browser-review.png"))
            except Exception:
                if page is not None:
                    page.screenshot(path=str(artifacts / "browser-review-failure.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        _stop(proc)
        if log.exists():
            shutil.copy(log, artifacts / "browser-review-lab.log")
    mine = ReviewStore(results.run_dir).reviews(reviewer=REVIEWER)
    assert [(r.verdict, r.value) for r in mine] == [("pass", None), ("fail", None), (None, 4.0)]
    assert mine[2].label == "pass"  # 4 on the experiment's 1..5 scale passes at pass_at 4
    # the first three calls of the queue (dataset order, then variant, target, repeat), one after the other
    assert [r.cell for r in mine] == [("c1", "careful", "fake", 0), ("c1", "careful", "fake", 1),
                                      ("c1", "terse", "fake", 0)]
    assert (artifacts / "browser-review.png").stat().st_size > 10_000
