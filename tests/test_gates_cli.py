"""``workbench eval`` as a CI step: gates from the spec and ``--gate``, ``--baseline``, JUnit and Markdown files,
and exit codes that tell a failed gate (3) from a failed run (1) and bad input (2). The model is a fake served
over loopback HTTP, so each command is a real process talking to a real socket."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import xml.etree.ElementTree as ET

import pytest

from workbench.testing import FakeBackend, FakeServer, ServerError

SPEC = """\
name: cli-gates
dataset:
  rows:
{rows}
variants:
  - name: v
    system: "{system}"
    user: "{{{{ text }}}}"
targets: [fake]
scorers: [{{label: {{labels: [positive, negative]}}}}]
max_retries: 0
gates:
  - label >= 0.8
"""


class Model:
    """The fake's behaviour, changed between commands: which cases it gets wrong."""

    def __init__(self):
        self.wrong: set[int] = set()

    def __call__(self, req):
        case = int(req.user_text.split()[-1][1:])
        right = "positive" if "love" in req.user_text else "negative"
        return {"positive": "negative", "negative": "positive"}[right] if case in self.wrong else right


@pytest.fixture
def served(tmp_path, monkeypatch):
    """A FakeServer on 127.0.0.1 in a background loop, and a workbench.toml whose profile `fake` points at it."""
    model = Model()
    backend = FakeBackend(model, require_auth=False)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = FakeServer(backend)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
    config = tmp_path / "workbench.toml"
    config.write_text(f'[profiles.fake]\nbackend = "openai"\nbase_url = "{server.base_url}"\nauth = "none"\n'
                      'model = "gpt-4o-mini"\n')
    monkeypatch.setenv("WORKBENCH_CONFIG", str(config))
    yield backend, model
    asyncio.run_coroutine_threadsafe(server.close(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def write_spec(path, n=30, system="Classify."):
    rows = "\n".join(f"    - {{id: c{i:03d}, text: 'I {'love' if i % 2 else 'hate'} it c{i:03d}', "
                     f"expected: {'positive' if i % 2 else 'negative'}}}" for i in range(n))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(SPEC.format(rows=rows, system=system))
    return path


def test_a_gate_that_passes_exits_0_and_one_that_fails_exits_3(served, run_cli, tmp_path):
    backend, model = served
    spec = write_spec(tmp_path / "spec.yaml")
    model.wrong = {0, 1, 2, 3, 4, 5}  # 24 of 30: mean 0.8
    ok = run_cli("eval", str(spec), "-q", "--out", str(tmp_path / "run"), "--junit", str(tmp_path / "ok.xml"))
    assert ok.returncode == 0, ok.stderr
    assert "cli-gates: the gate passed" in ok.stdout and "PASS  label >= 0.8" in ok.stdout
    sent = len(backend.chat_requests)
    assert sent == 30
    bad = run_cli("eval", str(spec), "-q", "--out", str(tmp_path / "run"), "--gate", "label.ci_low >= 0.8",
                  "--junit", str(tmp_path / "bad.xml"), "--summary-md", str(tmp_path / "pr.md"))
    assert bad.returncode == 3, bad.stderr
    assert "1 of 2 gates failed" in bad.stdout and "FAIL  label.ci_low >= 0.8" in bad.stdout
    assert len(backend.chat_requests) == sent  # the same spec resumes its run folder: nothing is sent again
    root = ET.parse(tmp_path / "bad.xml").getroot()
    assert root.get("tests") == "2" and root.get("failures") == "1"
    assert (tmp_path / "pr.md").read_text().startswith("### ❌ cli-gates: 1 of 2 gates failed")
    saved = json.loads((tmp_path / "run" / "gates.json").read_text())
    assert saved["schema_version"] == 1 and saved["status"] == "failed" and len(saved["gates"]) == 2


def test_bad_input_exits_2_before_anything_is_sent(served, run_cli, tmp_path):
    backend, _ = served
    spec = write_spec(tmp_path / "spec.yaml")
    typo = run_cli("eval", str(spec), "--gate", "lable >= 0.9", "--out", str(tmp_path / "run"))
    assert typo.returncode == 1 and typo.stderr.startswith("error: bad flag: --gate")
    assert "has no scorer 'lable'; did you mean 'label'?" in typo.stderr and "Traceback" not in typo.stderr
    grammar = run_cli("eval", str(spec), "--gate", "label > 0.9")
    assert grammar.returncode == 1 and "use >= (at least) or <= (at most)" in grammar.stderr
    missing = run_cli("eval", str(spec), "--baseline", "no-such-run", "--out", str(tmp_path / "run"))
    assert missing.returncode == 1 and "--baseline no-such-run: no file or folder by that path" in missing.stderr
    in_spec = write_spec(tmp_path / "bad" / "spec.yaml")
    in_spec.write_text(in_spec.read_text() + "  - label.ci_low >= 1\n")
    impossible = run_cli("eval", str(in_spec))
    assert impossible.returncode == 1 and "gates[1].min" in impossible.stderr and "can never pass" in impossible.stderr
    broken = write_spec(tmp_path / "broken" / "spec.yaml")
    broken.write_text(broken.read_text().replace("{{ text }}", "{{ txt }}"))
    refused = run_cli("eval", str(broken), "--junit", str(tmp_path / "refused.xml"))
    assert refused.returncode == 1 and "txt" in refused.stderr
    [error] = ET.parse(tmp_path / "refused.xml").getroot().iter("error")  # CI's reporter says why
    assert error.get("type") == "bad input" and "txt" in error.get("message")
    dry = run_cli("eval", str(spec), "--dry-run", "--gate", "cost <= $1", "--junit", str(tmp_path / "j.xml"))
    assert dry.returncode == 0 and "gate: label >= 0.8\ngate: cost <= $1" in dry.stdout
    assert backend.chat_requests == [] and not (tmp_path / "run").exists()


def test_a_run_with_failed_calls_exits_4_unless_an_error_rate_gate_allows_them(served, run_cli, tmp_path):
    backend, _ = served
    backend.fail(ServerError(500), times=2)
    spec = write_spec(tmp_path / "spec.yaml", n=20)
    failed = run_cli("eval", str(spec), "-q", "--out", str(tmp_path / "run"), "--junit", str(tmp_path / "j.xml"))
    assert failed.returncode == 4, failed.stderr
    assert "2 calls failed" in failed.stdout
    ET.parse(tmp_path / "j.xml")  # CI still gets its report
    backend.fail(ServerError(500), times=2)
    tolerated = run_cli("eval", str(spec), "-q", "--no-cache", "--out", str(tmp_path / "run2"),
                        "--gate", "error_rate <= 0.1")
    assert tolerated.returncode == 0, tolerated.stdout + tolerated.stderr
    assert "2 of 20 calls failed (10.0%) <= 0.1" in tolerated.stdout
    backend.fail(ServerError(500), times=3)
    too_many = run_cli("eval", str(spec), "-q", "--no-cache", "--out", str(tmp_path / "run3"),
                       "--gate", "error_rate <= 0.1")
    assert too_many.returncode == 3 and "FAIL  error_rate <= 0.1" in too_many.stdout


def test_a_regression_against_the_last_run_on_main(served, run_cli, tmp_path):
    """The CI story: main's job runs the spec (its manifest records the branch); a pull request changes the
    prompt, which gets 10 of 30 cases wrong, and `--baseline last-on-main` fails it by the paired test."""
    backend, model = served
    repo = tmp_path / "repo"
    spec = write_spec(repo / "prompts" / "spec.yaml", system="Classify.")
    env = {"GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.invalid", "GIT_COMMITTER_NAME": "ci",
           "GIT_COMMITTER_EMAIL": "ci@example.invalid"}

    def git(*args):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, env={**env, "PATH": "/usr/bin:/bin"})

    git("init", "-q", "-b", "main")
    git("add", ".")
    git("commit", "-q", "-m", "the prompt")
    main_run = run_cli("eval", str(spec), "-q", cwd=str(repo))
    assert main_run.returncode == 0, main_run.stderr
    git("checkout", "-q", "-b", "shorter-prompt")
    write_spec(spec, system="Label it.")
    git("commit", "-q", "-am", "a shorter prompt")
    model.wrong = set(range(10))
    pr = run_cli("eval", str(spec), "-q", "--baseline", "last-on-main", "--summary-md", str(tmp_path / "pr.md"),
                 "--junit", str(tmp_path / "pr.xml"), cwd=str(repo))
    assert pr.returncode == 3, pr.stdout + pr.stderr
    assert "FAIL  label >= baseline" in pr.stdout and "a significant regression" in pr.stdout
    md = (tmp_path / "pr.md").read_text()
    assert "**Against the baseline** (last run on main, run " in md and "on main):" in md
    assert "the baseline beats this run by 33 points" in md and "Paired on all 30 cases" in md
    case = ET.parse(tmp_path / "pr.xml").getroot().find(".//testcase[@name='label >= baseline [v @ fake]']")
    assert case.find("failure") is not None
    model.wrong = {0, 1}  # a version only 2 cases worse: not significant, not flagged
    write_spec(spec, system="Label it, please.")
    close = run_cli("eval", str(spec), "-q", "--baseline", "last-on-main", cwd=str(repo))
    assert close.returncode == 0, close.stdout + close.stderr
    assert "no significant regression" in close.stdout and "not significant" in close.stdout


def test_eval_help_documents_gates_and_exit_codes(run_cli):
    out = run_cli("eval", "--help")
    assert out.returncode == 0
    for text in ("--gate GATE", "--baseline PATH|RUN_ID|last-on-main", "--junit FILE", "--summary-md FILE",
                 "label.ci_low >= 0.8", "exit codes:", "3    a quality gate failed", "1    refused: bad input",
                 "4    the run failed"):
        assert text in out.stdout, text
