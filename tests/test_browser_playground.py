"""The playground in a real JupyterLab at a laptop's width, driven by headless Chromium through Playwright.

Starts ``jupyter lab`` on 127.0.0.1 (no token, no network: news, update checks and the extension manager off)
over a temporary copy of ``notebooks/01_playground.ipynb`` (four variants, one ad-hoc input, the embedded local
model), in a 1280 px wide window, and checks what a person would see:

- the four cards fit without sideways scrolling, and no card has a scrollbar of its own;
- typing a prompt and clicking Run streams: every card shows its first tokens before the first call completes
  (the order of events in the page is recorded by a MutationObserver; nothing is timed);
- clicking a grid cell opens its details right below its row; an edit marks the outputs stale;
- a chat message is answered by every variant, side by side.

Screenshots of each stage go to ``test-artifacts/`` (browser-playground-*.png). Waits are generous (CI machines
have 2 cores); nothing asserts on wall-clock time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "01_playground.ipynb"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SERVER_START_S = 180
KERNEL_S = 300  # kernel start and the first cells (imports, the local model's vocabulary)
RUN_S = 900  # a run of the local model on a busy 2-core machine
WIDTH = 1280  # a laptop


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook_copy(dest: Path) -> Path:
    """The playground notebook with its parameters set for the test: one ad-hoc input, no run on execution (so
    the outputs the test sees come from its click on Run), the spec saved next to the copy."""
    nb = json.loads(NOTEBOOK.read_text("utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            source, n_mode = re.subn(r'^mode = "dataset"', 'mode = "input"', source, flags=re.M)
            source, n_run = re.subn(r"^run_now = True", "run_now = False", source, flags=re.M)
            assert n_mode == n_run == 1, "the playground notebook's parameters changed: update this test"
            cell["source"] = source
    path = dest / NOTEBOOK.name
    path.write_text(json.dumps(nb), "utf-8")
    return path


def _lab_env(tmp: Path) -> dict[str, str]:
    config = tmp / "jupyter-config"
    (config / "labconfig").mkdir(parents=True)
    # the announcements plugin would fetch news and ask about it in a toast: neither belongs in a test
    (config / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    return {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
            "JUPYTER_DATA_DIR": str(tmp / "data"),
            "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
            "PYTHONUNBUFFERED": "1"}


def _start_lab(root_dir: Path, port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--port-retries=0", "--IdentityProvider.token=", "--ServerApp.password=",
           f"--ServerApp.root_dir={root_dir}", "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
           f"--LabApp.workspaces_dir={env['JUPYTERLAB_WORKSPACES_DIR']}"]
    return subprocess.Popen(cmd, cwd=root_dir, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def _wait_for_server(proc: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url + "api/status", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"jupyter lab did not answer within {SERVER_START_S}s:\n{log.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the server and the kernels it started (its own session)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=30)


# Records, in page order, when each card first shows streamed text and when each grid cell gets its final answer.
_RECORD_EVENTS = """() => {
  const pg = document.querySelector('.wb-playground');
  window.__wb_events = [];
  const seen = new Set();
  const note = (kind, i) => {
    if (!seen.has(kind + i)) { seen.add(kind + i); window.__wb_events.push([kind, i]); }
  };
  const final = ['wb-pass', 'wb-fail', 'wb-done', 'wb-error', 'wb-filtered', 'wb-flaky'];
  const check = () => {
    pg.querySelectorAll('.wb-variant').forEach((card, i) => {
      if (card.querySelector('.wb-card-output .wb-cursor')) note('first', i);
    });
    pg.querySelectorAll('.wb-cell').forEach((cell, i) => {
      if (final.some(c => cell.classList.contains(c))) note('done', i);
    });
  };
  new MutationObserver(check).observe(pg, {subtree: true, childList: true, attributes: true, characterData: true});
}"""

_LAYOUT = """() => {
  const pg = document.querySelector('.wb-playground');
  const scroller = pg.closest('.jp-WindowedPanel-outer') || pg.closest('.jp-Notebook');
  const box = pg.getBoundingClientRect();
  const cards = [...pg.querySelectorAll('.wb-variant')].map(c => {
    const r = c.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, width: r.width, scroll: c.scrollWidth - c.clientWidth,
            vscroll: c.scrollHeight - c.clientHeight};
  });
  return {page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
          notebook: scroller.scrollWidth - scroller.clientWidth, playground: pg.scrollWidth - pg.clientWidth,
          width: box.width, left: box.left, right: box.right, cards,
          rows: new Set(cards.map(c => Math.round(c.top))).size};
}"""


def run_all_cells(page, url: str, notebook: str) -> None:
    """Open ``notebook`` in JupyterLab, wait for its kernel, then run every cell (as Run > Run All Cells does)."""
    page.set_default_timeout(KERNEL_S * 1000)
    page.goto(url + "lab/tree/" + notebook)
    page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')")
    page.wait_for_function(
        "() => { const w = window.jupyterapp.shell.currentWidget;"
        " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }")
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


def test_playground_in_jupyterlab(tmp_path, artifacts):
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium (make browser)")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium, or make browser); browser test skipped")
    from playwright.sync_api import expect, sync_playwright

    root = tmp_path / "notebooks"
    root.mkdir()
    _notebook_copy(root)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log = tmp_path / "jupyter-lab.log"
    proc = _start_lab(root, port, _lab_env(tmp_path), log)
    shots = {name: artifacts / f"browser-playground-{name}.png" for name in ("layout", "streaming", "details", "chat")}
    page = None
    try:
        _wait_for_server(proc, url, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": WIDTH, "height": 2000})
                run_all_cells(page, url, NOTEBOOK.name)

                playground = page.locator(".wb-playground").first
                expect(playground).to_be_visible(timeout=KERNEL_S * 1000)
                cards = playground.locator(".wb-variant")
                expect(cards).to_have_count(4)
                expect(cards.nth(3).locator(".wb-token-count")).to_contain_text("tokens in", timeout=KERNEL_S * 1000)
                expect(page.locator(".wb-static-fallback").first).to_be_hidden()  # the report snapshot, not shown live

                # four variants fit a laptop's notebook: no sideways scroll anywhere, no scrollbar in a card
                layout = page.evaluate(_LAYOUT)
                assert layout["page"] <= 0 and layout["notebook"] <= 0 and layout["playground"] <= 0, layout
                for card in layout["cards"]:
                    assert card["scroll"] <= 1 and card["vscroll"] <= 1, layout
                    assert layout["left"] - 1 <= card["left"] and card["right"] <= layout["right"] + 1, layout
                assert cards.nth(3).locator(".wb-turns-toggle").inner_text().startswith("few-shot turns (4)")
                playground.screenshot(path=str(shots["layout"]))

                # type a prompt, click Run: every card streams before the first call is complete
                text = playground.locator(".wb-input-text textarea")
                text.click()
                page.keyboard.press("Control+A")
                page.keyboard.type("I loved this film: the acting was superb and the ending moved me.", delay=10)
                page.evaluate(_RECORD_EVENTS)
                status = playground.locator(".wb-status")
                playground.locator("button.wb-run").click()
                expect(playground.locator(".wb-card-output .wb-cursor").first).to_be_attached(timeout=RUN_S * 1000)
                playground.screenshot(path=str(shots["streaming"]))
                expect(status).to_contain_text("done:", timeout=RUN_S * 1000)
                assert "4/4 calls" in status.inner_text() and "0 errors" in status.inner_text()
                events = page.evaluate("() => window.__wb_events")
                firsts = {i for kind, i in events if kind == "first"}
                first_done = next(n for n, (kind, _) in enumerate(events) if kind == "done")
                assert firsts == {0, 1, 2, 3}, events
                assert all(n < first_done for n, (kind, _) in enumerate(events) if kind == "first"), events
                grid = playground.locator(".wb-outputs")
                expect(grid.locator(".wb-cell")).to_have_count(4)
                expect(grid.locator(".wb-score")).to_have_count(4)
                for i in range(4):
                    expect(cards.nth(i).locator(".wb-card-output")).to_contain_text("tok/s")

                # a click on a cell opens its details right there
                grid.locator(".wb-cell").nth(1).click()
                detail = grid.locator(".wb-detail")
                expect(detail).to_contain_text("messages as sent")
                expect(detail).to_contain_text("first token after")
                detail.scroll_into_view_if_needed()
                playground.screenshot(path=str(shots["details"]))

                # an edit marks the outputs as older than the prompts
                user = cards.nth(0).locator(".wb-user textarea")
                user.click()
                page.keyboard.press("Control+End")
                page.keyboard.type(" Answer in one word.", delay=10)
                expect(grid.locator(".wb-stale-banner")).to_contain_text("previous version")

                # chat: one message, answered by every variant side by side
                playground.locator(".wb-chat-toggle").click()
                chat_input = playground.locator(".wb-chat-input textarea")
                expect(chat_input).to_be_visible()
                chat_input.fill("Are you sure? Say why.")
                playground.locator("button.wb-chat-send").click()
                expect(status).to_contain_text("answered", timeout=RUN_S * 1000)
                for i in range(4):
                    thread = cards.nth(i).locator(".wb-chat-thread")
                    expect(thread).to_contain_text("Are you sure? Say why.")
                    expect(thread.locator(".wb-chat-reply.wb-done")).to_have_count(2)  # the run's answer, the reply
                assert "4 answered" in status.inner_text()
                playground.screenshot(path=str(shots["chat"]))
            except Exception:
                if page is not None:
                    page.screenshot(path=str(artifacts / "browser-playground-failure.png"), full_page=True)
                raise
            finally:
                browser.close()
    finally:
        _stop(proc)
        if log.exists():
            shutil.copy(log, artifacts / "browser-playground-lab.log")
    for shot in shots.values():
        assert shot.stat().st_size > 10_000
