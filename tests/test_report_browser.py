"""report.html and index.html in a real browser (headless Chromium), offline, with hostile model output.

The run's model answers are ``<script>window.__pwned=1</script><img src=x onerror=...>``: the page must show
them as text, run none of them, ask the network for nothing, and log no console error, while its tables and
charts render.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nb_fakes
import pytest

from workbench import runs
from workbench.runs.manifest import NotebookInfo

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (os.path.exists(CHROMIUM) or shutil.which("chromium")) and not os.environ.get("CI"),
                       reason="chromium is not installed (make browser); in CI this test must run"),
]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """One 03_evaluate run whose every model output is an injection attempt (fake backend, 2 repeats)."""
    tmp = tmp_path_factory.mktemp("browser")
    saved = {k: os.environ.get(k) for k in ("PYTHONPATH", "WORKBENCH_HOME", "WORKBENCH_REPORTS")}
    os.environ["PYTHONPATH"] = os.pathsep.join([str(TESTS), saved["PYTHONPATH"] or ""]).rstrip(os.pathsep)
    os.environ["WORKBENCH_HOME"] = str(tmp / "home")
    os.environ["WORKBENCH_REPORTS"] = str(tmp / "reports")
    try:
        out = runs.execute_run(runs.RunSpec(
            ROOT / "notebooks" / "03_evaluate.ipynb",
            {"sample_size": 4, "repeats": 2, "providers": "nb_fakes:hostile", "targets": "fake-openai"},
            tmp / "reports", progress=False))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert out.ok, out.failure
    return out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
                              args=FLAGS)
        yield b
        b.close()


def open_offline(browser, path: Path):
    """Open ``path`` with every non-file request blocked, collecting console errors and outside requests."""
    page = browser.new_page()
    seen = {"console": [], "outside": [], "page_errors": []}
    page.on("console", lambda m: seen["console"].append(m.text) if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: seen["page_errors"].append(str(e)))

    def route(r):
        url = r.request.url
        if url.startswith(("file://", "data:")):
            r.continue_()
        else:
            seen["outside"].append(url)
            r.abort()

    page.route("**/*", route)
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, seen


def test_report_renders_offline_and_runs_nothing_a_model_wrote(browser, hostile_run):
    from nb_fakes import HOSTILE

    page, seen = open_offline(browser, hostile_run.report)
    try:
        assert page.evaluate("window.__pwned") is None, "a script from a model output ran"
        assert page.evaluate("document.scripts.length") == 0
        # the hostile text is there, as text
        outputs = page.locator("#outputs")
        assert page.locator("#outputs table.cases").is_visible()
        assert "<script>window.__pwned=1</script>" in outputs.text_content()
        assert page.locator("#outputs img").count() == 0  # the planted <img onerror> is text, not an element
        # tables and charts render
        for section in ("#experiment", "#scores", "#comparison", "#cost", "#flaky", "#outputs", "#provenance"):
            assert page.locator(section).is_visible(), section
        assert page.locator("#scores table.data").first.is_visible()
        charts = page.locator("img.chart")
        assert charts.count() >= 4  # scores, tokens, cost, cost/quality, flakiness
        assert page.evaluate("[...document.querySelectorAll('img.chart')].every(i => i.complete && i.naturalWidth > 0)")
        # code is hidden by default; the notebook's outputs are shown
        assert page.locator("details.code").count() > 5
        assert page.evaluate("[...document.querySelectorAll('details.code')].every(d => !d.open)")
        assert page.locator("#notebook .widget-static").count() >= 1  # widgets from state or their snapshot
        assert "prices as of" in page.locator("#cost").inner_text()
        assert seen == {"console": [], "outside": [], "page_errors": []}
    finally:
        page.close()
    assert HOSTILE  # (imported from the kernel's fake provider module: the same string)


def test_index_lists_the_run_and_links_to_its_report(browser, hostile_run):
    index = hostile_run.run_dir.parent.parent / "index.html"
    page, seen = open_offline(browser, index)
    try:
        row = page.locator("#runs tbody tr").first
        assert hostile_run.run_id in row.inner_text()
        link = row.locator(f"a[href$='{hostile_run.run_id}/report.html']")
        assert link.count() == 1
        link.click()
        page.wait_for_load_state("load")
        assert page.url.endswith("report.html") and page.locator("#scores").is_visible()
        assert page.evaluate("window.__pwned") is None
        assert seen == {"console": [], "outside": [], "page_errors": []}
    finally:
        page.close()


@pytest.fixture(scope="module")
def honest_run(tmp_path_factory):
    """A run as people see them: refusals, hedges, long rambling answers, JSON, three variants, two repeats."""
    import json

    from workbench.testing import FakeBackend, Reply

    def answer(req):
        text, label = req.user_text, nb_fakes._label(req.user_text)
        if (req.body or {}).get("response_format"):
            return Reply(json.dumps({"label": label}))
        if not req.system_text:  # the bare prompt: a small model rambles, hedges and declines
            if "rude" in text or "late" in text:
                return Reply("I'm sorry, but I can't help with reviews of that kind. As an AI, I cannot judge.")
            return Reply(f"Thanks for sharing! {text} " + "It sounds like a memorable experience, " * 12 +
                         "and overall I would call it positive or negative depending on your view.")
        return Reply("Positive or negative: " + label if "park" in text else label.capitalize())

    tmp = tmp_path_factory.mktemp("honest")
    exp = runs.resolve_experiment(None, targets=nb_fakes.PROFILE, sample_size=10, repeats=2)
    run_dir = tmp / "reports" / exp.name / "r-honest"
    res = runs.run_experiment(exp, run_dir, providers={nb_fakes.PROFILE: FakeBackend(answer).provider("openai")},
                              progress=False)
    return runs.finalize_run(run_dir, run_id="r-honest", experiment=exp.name, results=res, source="python",
                             notebook=NotebookInfo(path="", name="(workbench.run from Python)"),
                             parameters={})


def test_report_is_readable_at_1280_px_and_every_case_can_be_found(browser, honest_run, artifacts):
    page, seen = open_offline(browser, honest_run.report)
    try:
        page.set_viewport_size({"width": 1280, "height": 900})
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # nothing overflows a laptop screen
        scores = page.locator("#scores").inner_text()
        assert "refused" in scores and "ambiguous" in scores and "%" in scores
        rows = page.locator("table.cases tbody tr")
        total = rows.count()
        assert total == 10
        # the filter is radio buttons and CSS: no script, and every case is listed without it
        page.locator("label[for='cf-has-refused']").click()
        visible = page.evaluate("[...document.querySelectorAll('table.cases tbody tr')]"
                                ".filter(r => r.offsetParent !== null).map(r => r.className)")
        assert visible and len(visible) < total and all("has-refused" in c for c in visible)
        page.locator("label[for='cf-all']").click()
        assert page.evaluate("[...document.querySelectorAll('table.cases tbody tr')]"
                             ".every(r => r.offsetParent !== null)")
        # an anchor per case and per output: following a verdict link lands on the output
        first = page.locator("table.cases td.v a").first
        target = first.get_attribute("href")
        first.click()
        assert page.evaluate("location.hash") == target
        assert page.locator(target).is_visible()
        # long outputs are folded, and open on a click
        fold = page.locator("#outputs details.fold").first
        assert fold.count() == 1 and not fold.evaluate("d => d.open")
        fold.locator("summary").click()
        assert fold.evaluate("d => d.open")
        assert page.locator("#latency table").is_visible() and page.locator("#flaky").is_visible()
        assert page.evaluate("document.scripts.length") == 0
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(artifacts / "report-1280.png"), full_page=True)
        page.locator("#outputs").scroll_into_view_if_needed()
        page.screenshot(path=str(artifacts / "report-1280-cases.png"))
        assert seen == {"console": [], "outside": [], "page_errors": []}
    finally:
        page.close()
    assert (artifacts / "report-1280.png").stat().st_size > 50_000
