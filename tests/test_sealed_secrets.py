"""Sealed secrets and safe text: no key in anything the workbench writes or prints, and text we did not write
cannot act on the terminal or fool a report reader.

The keys are made up at run time and are not shaped like any key pattern, so only their registration (the
workbench read them for a profile) can mask them: the tests prove the registry is used, not a lucky regex.
"""

from __future__ import annotations

import sqlite3

import nb_fakes
import pytest
from served import KEY, KEY_ENV

from workbench.secrets import MASK, register_secret, shorten
from workbench.testing import FAKE_API_KEY, FakeBackend, HTTPError, Reply


@pytest.fixture
def served(project):
    """(project folder, the fake's backend, the environment with the profile's key)."""
    project.backend.responder = None  # echo
    return project.root, project.backend, {KEY_ENV: KEY}


def test_a_401_that_echoes_the_key_is_one_masked_error_line(served, run_cli):
    root, backend, env = served
    backend.fail(HTTPError(401, "invalid_api_key", f"Incorrect API key provided: Bearer {KEY}. You gave {KEY}."),
                 times=10)
    out = run_cli("chat", "--profile", "fake", "hello", cwd=str(root), env=env)
    assert out.returncode == 1
    assert KEY not in out.stderr + out.stdout and KEY[:12] not in out.stderr
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the backend refused the credentials"), out.stderr
    assert "HTTP 401" in lines[0] and f"You gave {MASK}" in lines[0]
    assert len(backend.chat_requests) == 1  # sent once (a 401 is not retried), refused by the backend

    debug = run_cli("--debug", "chat", "--profile", "fake", "hello", cwd=str(root), env=env)
    assert "Traceback" in debug.stderr and "AuthenticationError" in debug.stderr  # --debug shows it...
    assert KEY not in debug.stderr and debug.stderr.rstrip().splitlines()[-1].startswith("error: ")  # ...masked


def test_a_key_in_the_dataset_is_refused_before_it_is_sent(served, run_cli):
    root, backend, env = served
    (root / "cases.csv").write_text(f"id,text\na,my key is {KEY}\n")
    (root / "spec.yaml").write_text("name: leak\ndataset: cases.csv\ntargets: [fake]\nvariants:\n"
                                    "  - name: v\n    user: '{{ text }}'\n")
    out = run_cli("eval", "spec.yaml", "--quiet", cwd=str(root), env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "contains an API key the workbench read for a profile" in out.stderr and "case 'a' (row 2" in out.stderr
    assert KEY not in out.stderr and backend.requests == []


def test_a_known_key_in_an_answer_is_masked_in_ledger_cache_and_exports(served, run_cli, tmp_path):
    root, backend, env = served
    backend.responder = lambda req: Reply(text=f"sure, the key is {KEY} - keep it safe")
    (root / "cases.csv").write_text("id,text\na,hello\nb,world\n")
    (root / "spec.yaml").write_text("name: echo\ndataset: cases.csv\ntargets: [fake]\nvariants:\n"
                                    "  - name: v\n    user: '{{ text }}'\n")
    home = tmp_path / "home"
    out = run_cli("eval", "spec.yaml", "--quiet", "--out", str(root / "run"), "--export", "jsonl", "--export", "csv",
                  "--export", "parquet", cwd=str(root), env={**env, "WORKBENCH_HOME": str(home)})
    assert out.returncode == 0, out.stderr
    assert len(backend.chat_requests) == 2
    written = [p for p in [*(root / "run").rglob("*"), *home.rglob("*")] if p.is_file()]
    assert any(p.name == "results.sqlite" for p in written) and any(p.suffix == ".sqlite" for p in home.rglob("*"))
    for p in written:
        assert KEY.encode() not in p.read_bytes(), p
    import pandas as pd

    outputs = list(pd.read_parquet(root / "run" / "results.parquet")["output"])
    assert outputs == [f"sure, the key is {MASK} - keep it safe"] * 2
    with sqlite3.connect(root / "run" / "results.sqlite") as db:
        assert all(MASK in row[0] for row in db.execute("SELECT record FROM cells"))


def test_chat_neutralises_terminal_control_sequences(served, run_cli):
    root, backend, env = served
    backend.responder = lambda req: "ok \x1b[2J\x1b]0;pwned\x07 \u202eliaf\u202c\rover"
    out = run_cli("chat", "--profile", "fake", "hello", cwd=str(root), env=env)
    assert out.returncode == 0, out.stderr
    assert "\x1b" not in out.stdout and "\x07" not in out.stdout and "\u202e" not in out.stdout
    assert "\r" not in out.stdout
    assert "\\x1b[2J" in out.stdout and "\\x1b]0;pwned\\x07" in out.stdout and "\\u202eliaf\\u202c" in out.stdout


def test_terminal_text_is_chunk_local():
    """Streamed text can be made safe chunk by chunk: an escape sequence split across chunks stays neutral."""
    from workbench.safe_text import terminal_text

    text = "a\x1b[31mred\x1b[0m \u202e\r\nz"
    whole = terminal_text(text)
    for cut in range(len(text) + 1):
        assert terminal_text(text[:cut]) + terminal_text(text[cut:]) == whole
    assert "\x1b" not in whole and whole.endswith("\\u202e\nz")


def test_masking_happens_before_truncation():
    register_secret(KEY)
    label = shorten(f"answer: {KEY} and more", 38)  # a results-viewer button label is 38 characters
    assert KEY[:8] not in label and label.startswith(f"answer: {MASK}")
    from workbench.runs.notebook_html import clip
    from workbench.scorers._util import _clip
    from workbench.widgets.fallback import clip as widget_clip

    for cut in (clip, _clip, widget_clip):
        assert KEY[:8] not in cut(f"xx {KEY}", 12)


def test_widgets_show_bidi_and_invisible_characters():
    from workbench.widgets.fallback import esc

    shown = esc("<b>\u202eliaf</b>\u200b")
    assert shown == "&lt;b&gt;\\u202eliaf&lt;/b&gt;\\u200b"
    assert esc("سلام\u200cدنیا 👨\u200d👩") == "سلام\u200cدنیا 👨\u200d👩"  # joiners are text, kept
    register_secret(KEY)
    assert esc(f"run failed: {KEY} refused") == f"run failed: {MASK} refused"  # a status line keeps no key


def test_report_masks_known_keys_and_shows_bidi_controls(tmp_path):
    """A whole notebook-run folder (results, manifest, report, index) from answers that try every trick."""
    from workbench import runs
    from workbench.runs.manifest import NotebookInfo

    exp = runs.resolve_experiment(None, targets=nb_fakes.PROFILE, sample_size=3)
    run_dir = tmp_path / "reports" / exp.name / "r1"
    runs.run_experiment(exp, run_dir, providers="nb_fakes:tricky", progress=False)
    out = runs.finalize_run(run_dir, run_id="r1", experiment=exp.name, notebook=NotebookInfo(path="", name="(none)"),
                            parameters={}, reports_dir=tmp_path / "reports")
    html = out.report.read_text("utf-8")
    assert "\\u202eliaf\\u202c" in html and "\u202e" not in html and "\u200b" not in html
    assert "\x1b" not in html
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(p.name == "index.html" for p in files)
    for p in files:
        assert FAKE_API_KEY.encode() not in p.read_bytes(), p
    assert MASK in html


def test_provider_never_records_a_known_key_from_an_answer():
    fake = FakeBackend(lambda req: f"echo {FAKE_API_KEY}")
    provider = fake.provider("openai")
    result = provider.complete([{"role": "user", "content": "hi"}])
    assert result.text == f"echo {MASK}" and FAKE_API_KEY not in result.model_dump_json()


def test_key_shaped_text_in_an_answer_is_data():
    """Only registered keys are masked in answers: an extraction task's key-shaped answer is kept (honest scores)."""
    shaped = "sk-" + "exampleexampleexample"
    fake = FakeBackend(lambda req: shaped)
    assert fake.provider("openai").complete([{"role": "user", "content": "hi"}]).text == shaped

