import json

import pytest


@pytest.mark.local_model
def test_chat_prints_a_real_answer_from_the_local_model(run_cli):
    r = run_cli("chat", "--profile", "local", "What is the capital of France? Answer in one word.")
    assert r.returncode == 0, r.stderr
    assert "paris" in r.stdout.lower()
    assert "tokens: prompt" in r.stderr


def test_chat_with_missing_setting_exits_1_and_says_what_to_set(run_cli):
    r = run_cli("chat", "--profile", "azure", "hi")
    assert r.returncode == 1
    assert "AZURE_OPENAI_ENDPOINT" in r.stderr and "Traceback" not in r.stderr


def test_doctor_json_reports_every_profile(run_cli):
    r = run_cli("doctor", "--json", "--offline")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["profiles"]["local"]["ok"] is True
    assert report["profiles"]["azure"]["ok"] is None


def test_unknown_profile(run_cli):
    r = run_cli("chat", "--profile", "nope", "hi")
    assert r.returncode == 1 and "No profile named 'nope'" in r.stderr


@pytest.mark.local_model
def test_several_processes_use_the_local_model_at_once():
    """Each process owns its in-process model: no shared port or file, so parallel notebooks are safe."""
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-m", "workbench", "chat", "--max-tokens", "8", f"Count to {i}."],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert out.strip() and "tokens: prompt" in err


@pytest.mark.local_model
def test_chat_streams_the_reply_to_stdout_as_it_is_generated():
    """The reply reaches stdout in pieces while the model is still generating, not in one write at the end."""
    import os
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "workbench", "chat", "--profile", "local", "--max-tokens", "40",
                             "Tell me a story about a lighthouse keeper."],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reads: list[tuple[bytes, bool]] = []  # (bytes, was the process still running when they arrived)
    while True:
        data = os.read(proc.stdout.fileno(), 65536)
        if not data:
            break
        reads.append((data, proc.poll() is None))
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 0, err
    text_reads = [d for d, _ in reads if d.strip()]
    assert len(text_reads) >= 2, f"the reply came in one write: {reads!r}"
    assert reads[0][1], "the first piece arrived only after the process had ended"
    assert b"".join(d for d, _ in reads).strip() and "first token" in err and "tokens/s" in err
