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
