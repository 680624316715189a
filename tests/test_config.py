import subprocess
from pathlib import Path

import pytest

from workbench.config import load_config, read_api_key
from workbench.errors import ConfigError
from workbench.providers import Provider


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_builtin_profiles_default_to_local():
    cfg = load_config([])
    assert cfg.default_profile == "local"
    assert cfg.profile().backend == "local"
    assert {"local", "azure", "openai"} <= set(cfg.profiles)


def test_azure_profile_from_environment(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    monkeypatch.setenv("OPENAI_API_VERSION", "2024-10-21")
    p = load_config([]).profile("azure")
    assert p.endpoint == "https://res.openai.azure.com" and p.api_version == "2024-10-21"
    assert p.auth == "entra"  # no key in the environment: keyless
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k" * 32)
    assert load_config([]).profile("azure").auth == "key"


def test_profiles_from_toml(tmp_path):
    f = write(tmp_path / "workbench.toml", """
default_profile = "prod"
[profiles.prod]
backend = "azure"
endpoint = "https://prod.openai.azure.com"
api_version = "2025-04-01-preview"
auth = "entra"
model = "chat"
[profiles.prod.deployments]
chat = "gpt-4o-mini"
reasoner = "o4-mini"
""")
    cfg = load_config([f])
    p = cfg.profile()
    assert p.name == "prod" and p.deployments["reasoner"] == "o4-mini" and p.source == str(f)
    assert Provider(p, token_provider=lambda: "t").model_info("reasoner").name == "o4-mini"


def test_project_file_is_found_from_cwd(tmp_path, monkeypatch):
    write(
        tmp_path / "workbench.toml",
        '[profiles.mine]\nbackend = "openai"\nbase_url = "http://127.0.0.1:9/v1"\nauth = "none"\n',
    )
    sub = tmp_path / "a" / "b"
    sub.mkdir(parents=True)
    monkeypatch.chdir(sub)
    assert load_config().profile("mine").base_url == "http://127.0.0.1:9/v1"


def test_secret_in_config_file_is_refused(tmp_path):
    f = write(tmp_path / "w.toml", '[profiles.x]\nbackend = "openai"\napi_key = "sk-abc"\n')
    with pytest.raises(ConfigError, match="Secrets do not belong in config files"):
        load_config([f])


def test_unknown_field_and_backend_are_named(tmp_path):
    with pytest.raises(ConfigError, match=r"a.toml: \[profiles.x\] endpont: unknown field; did you mean 'endpoint'"):
        load_config([write(tmp_path / "a.toml", '[profiles.x]\nbackend = "openai"\nendpont = "x"\n')])
    with pytest.raises(ConfigError, match=r"\[profiles.x\] backend: 'bedrock' is not a backend"):
        load_config([write(tmp_path / "b.toml", '[profiles.x]\nbackend = "bedrock"\n')])


def test_invalid_toml_names_the_file(tmp_path):
    f = write(tmp_path / "bad.toml", "[profiles.x\n")
    with pytest.raises(ConfigError, match="bad.toml is not valid TOML"):
        load_config([f])


def test_missing_endpoint_names_the_setting():
    with pytest.raises(ConfigError, match="AZURE_OPENAI_ENDPOINT"):
        _ = Provider("azure").client


def test_missing_key_names_the_variable(monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://res.openai.azure.com")
    p = load_config([]).profile("openai")
    with pytest.raises(ConfigError, match="set the environment variable OPENAI_API_KEY"):
        read_api_key(p)


def test_missing_profile_lists_known_ones():
    with pytest.raises(ConfigError, match="No profile named 'nope'. Known profiles: azure, local, openai"):
        load_config([]).profile("nope")


def test_key_file_outside_repo_is_read_and_registered(tmp_path):
    from workbench.secrets import redact

    key = tmp_path / "azure.key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    f = write(tmp_path / "w.toml", f'[profiles.k]\nbackend = "openai"\napi_key_file = "{key}"\n')
    assert read_api_key(load_config([f]).profile("k")) == "0123456789abcdef0123456789abcdef"
    assert "0123456789abcdef" not in redact("header was 0123456789abcdef0123456789abcdef")


def test_key_file_inside_a_git_repo_is_refused(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    key = repo / "secret.key"
    key.write_text("abc123abc123")
    f = write(tmp_path / "w.toml", f'[profiles.k]\nbackend = "openai"\napi_key_file = "{key}"\n')
    with pytest.raises(ConfigError, match="inside a git repository"):
        read_api_key(load_config([f]).profile("k"))


def test_workbench_config_env_must_exist(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="WORKBENCH_CONFIG points to"):
        load_config()
