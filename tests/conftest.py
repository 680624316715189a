"""Shared fixtures. Every test runs with an isolated config: no user config, no real keys, no profiles
from the developer's environment (in the manner of simonw/llm's autouse user-dir fixture)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# our own suite uses the plugin users opt into (the `workbench_eval` fixture; see workbench/pytest_plugin.py)
pytest_plugins = ["workbench.pytest_plugin"]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"

_ENV_PREFIXES = ("AZURE_OPENAI_", "OPENAI_", "WORKBENCH_", "AZURE_CLIENT_", "AZURE_TENANT_")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch):
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "cache"))
    monkeypatch.setenv("WORKBENCH_HOME", str(home / "workbench"))
    monkeypatch.setenv("WORKBENCH_REPORTS", str(home / "reports"))  # the run history: never the project's reports/
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def fake():
    from workbench.testing import FakeBackend

    return FakeBackend()


@pytest.fixture
def run_cli():
    """Run ``workbench ...`` in a subprocess (the installed entry point's module), returning CompletedProcess."""
    import subprocess

    def _run(*args: str, env: dict | None = None, input: str | None = None, cwd: str | None = None):
        return subprocess.run(
            [sys.executable, "-m", "workbench", *args], capture_output=True, text=True, timeout=300,
            env={**os.environ, **(env or {})}, input=input, cwd=cwd,
        )

    return _run


@pytest.fixture
def project(tmp_path, run_cli):
    """A project folder (workbench.toml, cases.csv, cat.png, spec.yaml) whose ``fake`` profiles reach a
    FakeServer on 127.0.0.1; ``project.backend.requests`` is what it received (see tests/served.py)."""
    from served import Project

    from workbench.testing import FakeBackend, serve_in_background

    backend = FakeBackend(lambda req: "positive")
    with serve_in_background(backend) as server:
        yield Project(tmp_path, backend, server.base_url, run_cli).setup()
