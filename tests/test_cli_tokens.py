"""``workbench tokens``, ``image-tokens`` and ``cost``: stable JSON for scripts, offline with a fresh cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from workbench.cli import main
from workbench.tokens import count_text


def run_json(capsys, *args: str) -> dict:
    assert main([*args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_tokens_json(capsys, tmp_path):
    assert run_json(capsys, "tokens", "--model", "gpt-4o", "hello world") == {
        "model": "gpt-4o", "encoding": "o200k_base", "tokens": 2, "characters": 11}
    out = run_json(capsys, "tokens", "--model", "gpt-3.5-turbo", "hello world")
    assert (out["model"], out["encoding"], out["tokens"]) == ("gpt-35-turbo", "cl100k_base", 2)
    f = tmp_path / "prompt.txt"
    f.write_text("hello world\n" * 10, "utf-8")
    assert (
        run_json(capsys, "tokens", "-m", "gpt-4", "--file", str(f))["tokens"]
        == count_text(f.read_text(), "gpt-4")
        == 30
    )


def test_tokens_human_output_and_stdin(capsys, monkeypatch):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("hello world"))
    assert main(["tokens", "--model", "gpt-4o", "-"]) == 0
    assert capsys.readouterr().out.strip() == "2 tokens (gpt-4o, o200k_base; 11 characters)"


def test_image_tokens_json_from_a_size_and_a_file(capsys, tmp_path):
    out = run_json(capsys, "image-tokens", "--model", "gpt-4o", "--size", "2048x4096", "--detail", "high")
    assert {k: out[k] for k in ("model", "detail", "width", "height", "resized", "tiles", "tokens")} == {
        "model": "gpt-4o",
        "detail": "high",
        "width": 2048,
        "height": 4096,
        "resized": [768, 1536],
        "tiles": 6,
        "tokens": 1105,
    }
    assert (
        run_json(capsys, "image-tokens", "-m", "gpt-4o-mini", "--size", "2048x4096", "--detail", "high")["tokens"]
        == 36835
    )
    assert run_json(capsys, "image-tokens", "-m", "gpt-4o", "--size", "4096x8192", "--detail", "low")["tokens"] == 85
    path = tmp_path / "photo.png"
    Image.new("RGB", (1800, 2400)).save(path)
    out = run_json(capsys, "image-tokens", "--model", "gpt-4.1-mini", str(path), "--detail", "auto")
    assert (out["patches"], out["resized"], out["budgeted_as"], out["tokens"]) == (1452, [1056, 1408], "high", 2353)
    assert "tiles" not in out


def test_image_tokens_human_output_shows_the_arithmetic(capsys):
    assert main(["image-tokens", "--model", "gpt-4o", "--size", "1024x1024", "--detail", "high"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("765 tokens") and "tokens = 85 + 4 x 170 = 765" in out


def test_cost_json(capsys):
    out = run_json(
        capsys,
        "cost",
        "--model",
        "o4-mini",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "500",
        "--cached-tokens",
        "400",
        "--reasoning-tokens",
        "300",
    )
    assert out["usd"] == pytest.approx(0.00297)
    assert out["parts"] == {"input": 0.00066, "cached_input": 0.00011, "output": 0.0022}
    assert out["as_of"] == "2026-08" and out["currency"] == "USD"
    batch = run_json(
        capsys,
        "cost",
        "--model",
        "o4-mini",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "500",
        "--cached-tokens",
        "400",
        "--batch",
    )
    assert batch["usd"] == pytest.approx(0.00297 / 2) and batch["batch"] is True


def test_cost_with_a_price_override(capsys, tmp_path):
    prices = tmp_path / "p.toml"
    prices.write_text('as_of = "2026-12"\n[prices]\n"gpt-4o" = { input = 1.0, output = 2.0 }\n', "utf-8")
    out = run_json(
        capsys,
        "cost",
        "-m",
        "gpt-4o",
        "--input-tokens",
        "1000000",
        "--output-tokens",
        "1000000",
        "--prices",
        str(prices),
    )
    assert out["usd"] == 3.0 and out["as_of"] == "2026-12"


def test_deployment_names_resolve_through_profiles(capsys, tmp_path, monkeypatch):
    (tmp_path / "workbench.toml").write_text(
        '[profiles.work]\nbackend = "azure"\nendpoint = "https://x.openai.azure.com"\n'
        '[profiles.work.deployments]\n"prod-4o" = "gpt-4o"\n"legacy" = "gpt-4"\n',
        "utf-8",
    )
    monkeypatch.chdir(tmp_path)
    assert run_json(capsys, "tokens", "--model", "prod-4o", "hello world")["model"] == "gpt-4o"
    assert run_json(capsys, "tokens", "--model", "legacy", "--profile", "work", "hi")["encoding"] == "cl100k_base"
    assert (
        run_json(capsys, "cost", "--model", "prod-4o", "--input-tokens", "1", "--output-tokens", "0")["model"]
        == "gpt-4o"
    )


@pytest.mark.parametrize(
    "args,message",
    [
        (["tokens", "--model", "gpt4o", "hi"], "Unknown model or deployment 'gpt4o'. Did you mean: gpt-4o"),
        (["image-tokens", "--model", "gpt-35-turbo", "--size", "10x10"], "does not accept images"),
        (["image-tokens", "--model", "gpt-4o", "--size", "big"], "WIDTHxHEIGHT"),
        (["image-tokens", "--model", "gpt-4o"], "Give an image file or --size"),
        (["tokens", "--model", "gpt-4o"], "Give the text to count"),
        (
            ["cost", "--model", "gpt-4o", "--input-tokens", "5", "--output-tokens", "1", "--cached-tokens", "9"],
            "cannot be larger",
        ),
    ],
)
def test_bad_input_exits_1_with_a_message(capsys, args, message):
    assert main(args) == 1  # bad input is 1 (workbench.cli.EXIT_CODES); 2 is argparse's malformed command line
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_corrupt_image_file_is_named(capsys, tmp_path):
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    assert main(["image-tokens", "--model", "gpt-4o", str(bad)]) == 1
    assert "scan.png: not a readable image" in capsys.readouterr().err


# --------------------------------------------------------------------------------- offline, in a fresh process

# Runs the CLI with every way out to the network refused and tiktoken's downloading registry disabled.
OFFLINE = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network disabled for this test")
socket.socket.connect = socket.socket.connect_ex = refuse
socket.create_connection = socket.getaddrinfo = refuse
import tiktoken, tiktoken.registry, tiktoken.load
tiktoken.get_encoding = tiktoken.registry.get_encoding = tiktoken.load.read_file = refuse
from workbench.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def offline(tmp_path):
    cache, tik = tmp_path / "fresh-cache", tmp_path / "tiktoken-cache"
    env = {
        **os.environ,
        "XDG_CACHE_HOME": str(cache),
        "TIKTOKEN_CACHE_DIR": str(tik),
        "DATA_GYM_CACHE_DIR": str(tik),
        "HOME": str(tmp_path / "home"),
    }

    def run(*args: str) -> dict:
        p = subprocess.run(
            [sys.executable, "-c", OFFLINE, *args, "--json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            cwd=tmp_path,
        )
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    yield run
    assert not any(Path(tik).rglob("*")), "something was written to tiktoken's download cache"


def test_tokens_and_image_tokens_work_offline_with_a_fresh_cache(offline):
    assert offline("tokens", "--model", "gpt-4o", "hello world")["tokens"] == 2
    assert offline("tokens", "--model", "gpt-4", "hello world")["tokens"] == 2
    assert offline("image-tokens", "--model", "gpt-4o", "--size", "2048x4096", "--detail", "high")["tokens"] == 1105
    assert offline("cost", "--model", "gpt-4o", "--input-tokens", "1000", "--output-tokens", "0")["usd"] == 0.0025


@pytest.mark.local_model
def test_local_model_tokens_work_offline(offline):
    out = offline("tokens", "--model", "local", "hello world")
    assert out["encoding"] == "gguf" and out["tokens"] == 2


def test_the_entry_point_module_runs(run_cli):
    p = run_cli("tokens", "--model", "gpt-4o", "hello world", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["tokens"] == 2


def test_cost_json_reports_the_input_tokens_given_and_the_uncached_part(run_cli):
    r = run_cli(
        "cost",
        "--model",
        "gpt-4o",
        "--input-tokens",
        "1000",
        "--output-tokens",
        "500",
        "--cached-tokens",
        "200",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    import json

    out = json.loads(r.stdout)
    assert out["input_tokens"] == 1000 and out["uncached_input_tokens"] == 800 and out["cached_tokens"] == 200
    # 800 x $2.50 + 200 x $1.25 + 500 x $10.00, per million
    assert out["usd"] == pytest.approx(0.00725)
