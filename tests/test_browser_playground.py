"""The playground in a real JupyterLab, driven by headless Chromium through Playwright.

Starts ``jupyter lab`` on 127.0.0.1 (no token, no network: news, update checks and the extension manager off)
over a temporary copy of ``notebooks/01_playground.ipynb``, runs every cell, types into a variant's user template
and waits for its token count to change, clicks Run (the embedded local model), waits for the outputs and their
scores, and saves a screenshot to ``test-artifacts/``. Waits are generous (CI machines have 2 cores); nothing
asserts on wall-clock time.
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _notebook_copy(dest: Path) -> Path:
    """The playground notebook with its parameters set for the test: two cases, no run on execution (so the
    outputs the test sees come from its click on Run)."""
    nb = json.loads(NOTEBOOK.read_text("utf-8"))
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"])
            source, n_k = re.subn(r"^n_cases = \d+", "n_cases = 2", source, flags=re.M)
            source, n_run = re.subn(r"^run_now = True", "run_now = False", source, flags=re.M)
            assert n_k == n_run == 1, "the playground notebook's parameters changed: update this test"
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
    shot = artifacts / "browser-playground.png"
    page = None
    try:
        _wait_for_server(proc, url, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1800})
                page.set_default_timeout(KERNEL_S * 1000)
                page.goto(url + "lab/tree/" + NOTEBOOK.name)
                page.wait_for_function("() => window.jupyterapp && document.querySelector('.jp-Notebook')")
                # wait for the kernel, then run every cell (the same command as Run > Run All Cells)
                page.wait_for_function(
                    "() => { const w = window.jupyterapp.shell.currentWidget;"
                    " const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;"
                    " return k && k.status === 'idle'; }")
                page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")

                playground = page.locator(".wb-playground").first
                expect(playground).to_be_visible(timeout=KERNEL_S * 1000)
                card = playground.locator(".wb-variant").nth(1)  # "instructed"
                count = card.locator(".wb-token-count")
                expect(count).to_contain_text("tokens in", timeout=KERNEL_S * 1000)
                before = count.inner_text()
                expect(page.locator(".wb-static-fallback").first).to_be_hidden()  # the report snapshot, not shown live

                user = card.locator(".wb-user textarea")
                user.click()
                page.keyboard.press("Control+End")
                page.keyboard.type(" Think about every word, then answer.", delay=20)
                expect(count).not_to_have_text(before, timeout=KERNEL_S * 1000)
                after = count.inner_text()
                n_before, n_after = (int(t.split(" tokens")[0].replace(",", "")) for t in (before, after))
                assert n_after > n_before

                status = playground.locator(".wb-status")
                playground.locator("button.wb-run").click()
                expect(playground.locator("button.wb-cancel")).to_be_enabled(timeout=60_000)  # running, not blocked
                expect(status).to_contain_text("done:", timeout=RUN_S * 1000)
                assert "6/6 calls" in status.inner_text()
                grid = playground.locator(".wb-outputs")
                expect(grid.locator("td.wb-cell")).to_have_count(6)
                expect(grid.locator(".wb-score")).to_have_count(6)
                assert "label" in grid.locator(".wb-score").first.inner_text()
                expect(playground.locator(".wb-summary")).to_contain_text("confidence interval")

                grid.scroll_into_view_if_needed()
                playground.screenshot(path=str(shot))
            except Exception:
                if page is not None:
                    page.screenshot(path=str(artifacts / "browser-playground-failure.png"))
                raise
            finally:
                browser.close()
    finally:
        _stop(proc)
        if log.exists():
            shutil.copy(log, artifacts / "browser-playground-lab.log")
    assert shot.stat().st_size > 10_000
