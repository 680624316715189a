"""Every numeric override of ``workbench eval`` goes through the experiment's own validation: a bad value exits 1 (bad
input) with one ``error:`` line naming the flag, before anything is planned or sent."""

from __future__ import annotations

import pytest

BAD = [
    ("--repeats", "-1"), ("--repeats", "0"), ("--concurrency", "0"), ("--concurrency", "-3"),
    ("--sample", "0"), ("--sample", "-2"), ("--budget", "-1"),
]


@pytest.mark.parametrize("flag,value", BAD)
def test_bad_numeric_override_names_the_flag(run_cli, flag, value, tmp_path):
    out = run_cli("eval", "--dry-run", f"{flag}={value}", cwd=str(tmp_path))
    assert out.returncode == 1, out
    assert out.stderr.startswith("error:") and "Traceback" not in out.stderr, out.stderr
    assert f"{flag} {value}" in out.stderr, out.stderr


def test_a_refused_override_runs_nothing(run_cli, tmp_path):
    out = run_cli("eval", "--repeats=-1", "--out", str(tmp_path / "run"), cwd=str(tmp_path))
    assert out.returncode == 1 and "--repeats -1" in out.stderr
    assert not (tmp_path / "run").exists()  # refused before the run folder was opened


def test_good_overrides_are_applied(run_cli, tmp_path):
    out = run_cli("eval", "--dry-run", "--sample", "2", "--repeats", "3", cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "18 calls" in out.stdout and "2 cases x 3 variants x 1 target x" in out.stdout and "3 repeats" in out.stdout
