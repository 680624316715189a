"""The CLI speaks one language: a short flag means one thing in every command, every flag says what it does,
counts agree with their nouns, money is never rounded away, and ``doctor`` tells "not configured" from "failing"."""

from __future__ import annotations

import argparse
import json
import socket

import pytest

from workbench.cli import build_parser
from workbench.formatting import plural, seconds, tokens_per_s, usd


def _commands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_each_short_flag_means_one_thing_in_every_command():
    meanings: dict[str, set[str]] = {}
    for _name, cmd in _commands(build_parser()):
        for action in cmd._actions:
            shorts = [o for o in action.option_strings if len(o) == 2]
            longs = [o for o in action.option_strings if o.startswith("--")]
            for short in shorts:
                meanings.setdefault(short, set()).update(longs or [short])
    clashes = {s: m for s, m in meanings.items() if len(m) > 1}
    assert not clashes, f"short flags with two meanings: {clashes}"
    assert meanings["-p"] == {"--parameter"} and meanings["-P"] == {"--profile"} and meanings["-m"] == {"--model"}


def test_every_flag_and_argument_has_help_text():
    missing = [f"{name} {a.dest}" for name, cmd in _commands(build_parser()) for a in cmd._actions
               if not isinstance(a, argparse._HelpAction) and not a.help]
    assert not missing, f"no help text: {missing}"


def test_money_keeps_small_costs_visible():
    assert usd(0.0000342) == "$0.0000342" and usd(3e-9) == "$0.00000000300"  # the CLI's one money format
    assert usd(0) == "$0" and usd(None) == "–"


def test_counts_agree_with_their_nouns():
    assert plural(1, "token") == "1 token" and plural(0, "token") == "0 tokens"
    assert plural(1024, "call") == "1,024 calls"
    assert plural(2, "repeat") == "2 repeats" and plural(2, "child", "children") == "2 children"
    assert seconds(0.314) == "0.31 s" and seconds(125) == "2 min 05 s"
    assert tokens_per_s(3.46) == "3.5 tok/s" and tokens_per_s(84.6) == "85 tok/s" and tokens_per_s(None) == "–"
    assert tokens_per_s(0.0123) == "0.012 tok/s"  # a slow rate is not 0.0


def test_tokens_counts_for_the_default_profiles_model_without_a_model_flag(run_cli):
    r = run_cli("tokens", "hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("1 token (smollm2-135m-instruct") and "5 characters" in r.stdout
    r = run_cli("tokens", "hello world", "-m", "gpt-4o")
    assert r.stdout.strip() == "2 tokens (gpt-4o, o200k_base; 11 characters)"


def test_cost_shows_every_part_in_dollars_people_can_read(run_cli):
    r = run_cli("cost", "-m", "gpt-4o-mini", "--input-tokens", "1", "--output-tokens", "1")
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert "$0.0000 " not in first and "(1 token)" in first and "$0.000000750" in first  # $0.15 + $0.60 per 1M


def test_eval_dry_run_names_every_number(run_cli):
    r = run_cli("eval", "--dry-run", "--sample", "1", "--repeats", "1")
    assert r.returncode == 0, r.stderr
    assert "1 case x 3 variants x 1 target x 1 repeat" in r.stdout and "estimated cost:" in r.stdout


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


def test_doctor_tells_not_configured_from_failing_and_fails_only_on_failures(run_cli, tmp_path):
    r = run_cli("doctor")
    assert r.returncode == 0, r.stdout + r.stderr  # azure and openai are only not configured here
    assert "not configured: Profile 'azure' needs an Azure endpoint" in r.stdout and "FAIL" not in r.stdout
    assert "[ok  ] local" in r.stdout

    (tmp_path / "workbench.toml").write_text(
        f'[profiles.dead]\nbackend = "openai"\nbase_url = "http://127.0.0.1:{_dead_port()}/v1"\nauth = "none"\n')
    r = run_cli("doctor", "--json", cwd=str(tmp_path))
    report = json.loads(r.stdout)
    assert r.returncode == 1
    assert report["profiles"]["dead"]["status"] == "failing" and report["profiles"]["dead"]["ok"] is False
    assert report["profiles"]["azure"]["status"] == "not configured" and report["profiles"]["azure"]["ok"] is None
    r = run_cli("doctor", "-P", "dead", "--offline", cwd=str(tmp_path))
    assert r.returncode == 0 and "not checked" in r.stdout


@pytest.mark.parametrize("argv", [["chat", "-p", "local", "hi"], ["tokens", "-p", "local", "hi"]])
def test_the_old_short_profile_flag_is_refused_with_usage(run_cli, argv):
    r = run_cli(*argv)
    assert r.returncode == 2 and "-p" in r.stderr
