"""Connection profiles: which backend, where, how to authenticate, and which model each deployment is.

Profiles come from TOML files and environment variables; secrets come only from environment variables,
credential providers (Entra ID) or a key file outside the repository - never from the profile file itself.

Lookup order (later wins, profile by profile):
1. built-in profiles: ``local`` (always), ``azure`` and ``openai`` (from their standard environment variables);
2. the user file: ``$XDG_CONFIG_HOME/workbench/config.toml`` (``~/.config/workbench/config.toml``);
3. the project file: ``workbench.toml`` in the current directory or the nearest parent;
4. ``$WORKBENCH_CONFIG`` if set (a path to one file, which then replaces 2 and 3).

See ``workbench.example.toml`` in the repository for every field.
"""

from __future__ import annotations

import os
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from .catalog import LOCAL_MODEL, ModelInfo, resolve
from .errors import ConfigError, UnknownModelError
from .secrets import register_secret

Backend = Literal["local", "azure", "openai"]
Auth = Literal["key", "entra", "none"]

DEFAULT_AZURE_API_VERSION = "2025-04-01-preview"
ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"
PROJECT_FILE = "workbench.toml"

@dataclass
class Profile:
    """Where and how to reach one backend. Holds no secret: keys are looked up when a client is built."""

    name: str
    backend: Backend = "local"
    endpoint: str | None = None  # Azure resource endpoint, e.g. https://RES.openai.azure.com
    base_url: str | None = None  # OpenAI / compatible servers; Azure v1 style
    api_version: str | None = None  # Azure only (not for the v1 endpoint style)
    auth: Auth = "key"
    api_key_env: str | None = None  # name of the environment variable holding the key
    api_key_file: str | None = None  # a file outside the repository holding the key
    model: str | None = None  # default deployment/model for this profile
    deployments: dict[str, str] = field(default_factory=dict)  # Azure deployment -> catalog model
    defaults: dict[str, Any] = field(default_factory=dict)  # default request parameters
    timeout: float = 60.0
    max_concurrency: int | None = None
    rpm: int | None = None  # requests-per-minute quota (harness limiter)
    tpm: int | None = None  # tokens-per-minute quota (harness limiter)
    model_path: str | None = None  # local backend: a GGUF file other than the bundled SmolLM2
    azure_v1: bool = False  # Azure's /openai/v1/ endpoint style (plain OpenAI client)
    batch: bool = False  # the Batch API may be used with every deployment/model of this profile
    batch_deployments: list[str] = field(default_factory=list)  # Azure Global-Batch / Data Zone Batch deployments
    description: str = ""
    source: str = "built-in"  # where the profile was defined (for doctor and error messages)

    def public_dict(self) -> dict[str, Any]:
        """Everything about the profile that is safe to show or store (it never holds a secret)."""
        d = asdict(self)
        d.pop("source", None)
        return d

    @property
    def default_model(self) -> str:
        if self.model:
            return self.model
        if self.backend == "local":
            return LOCAL_MODEL
        if len(self.deployments) == 1:
            return next(iter(self.deployments))
        raise ConfigError(
            f"Profile {self.name!r} ({self.source}) has no default model. Pass model=..., or set "
            f"`model = \"...\"` under [profiles.{self.name}]"
            + (" or the AZURE_OPENAI_DEPLOYMENT environment variable." if self.backend == "azure" else ".")
        )

    def batch_capable(self, deployment: str) -> bool:
        """May ``deployment`` take Batch API jobs? Marked by ``batch = true`` or ``batch_deployments``; OpenAI
        itself (no ``base_url``) always can; a local model or an unmarked compatible server cannot."""
        if self.batch or deployment in self.batch_deployments:
            return True
        return self.backend == "openai" and (self.base_url or "https://api.openai.com/v1").startswith(
            "https://api.openai.com")

    def model_for(self, deployment: str) -> str:
        """The catalog model a deployment (or model name) stands for."""
        return self.deployments.get(deployment, deployment)


@dataclass
class Config:
    profiles: dict[str, Profile]
    default_profile: str = "local"
    files: list[Path] = field(default_factory=list)
    prices_file: Path | None = None

    def profile(self, name: str | None = None) -> Profile:
        name = name or os.environ.get("WORKBENCH_PROFILE") or self.default_profile
        if name not in self.profiles:
            where = ", ".join(str(f) for f in self.files) or "no config file found"
            raise ConfigError(
                f"No profile named {name!r}. Known profiles: {', '.join(sorted(self.profiles))} "
                f"(config: {where}). Define it under [profiles.{name}] in {PROJECT_FILE}."
            )
        return self.profiles[name]


# ---------------------------------------------------------------------------------------------- loading


def _env(name: str) -> str | None:
    v = os.environ.get(name)
    return v.strip() if v and v.strip() else None


def builtin_profiles() -> dict[str, Profile]:
    profiles = {
        "local": Profile(
            name="local",
            backend="local",
            auth="none",
            # a 135M model is only useful greedy, and left unbounded it can ramble to the end of its context
            # (minutes on a CPU): bound it. Variants override both.
            defaults={"temperature": 0.0, "max_tokens": 512},
            max_concurrency=1,
            description="Embedded SmolLM2-135M-Instruct (llama.cpp, in-process, offline)",
        ),
        "azure": Profile(
            name="azure",
            backend="azure",
            endpoint=_env("AZURE_OPENAI_ENDPOINT"),
            api_version=_env("OPENAI_API_VERSION") or _env("AZURE_OPENAI_API_VERSION") or DEFAULT_AZURE_API_VERSION,
            # keyless when no key is in the environment: Entra ID via DefaultAzureCredential
            auth="key" if _env("AZURE_OPENAI_API_KEY") else "entra",
            api_key_env="AZURE_OPENAI_API_KEY",
            model=_env("AZURE_OPENAI_DEPLOYMENT"),
            description="Azure OpenAI from AZURE_OPENAI_* environment variables",
        ),
        "openai": Profile(
            name="openai",
            backend="openai",
            base_url=_env("OPENAI_BASE_URL"),
            api_key_env="OPENAI_API_KEY",
            model=_env("WORKBENCH_OPENAI_MODEL") or "gpt-4o-mini",
            description="OpenAI (or OPENAI_BASE_URL) from OPENAI_* environment variables",
        ),
    }
    return profiles


def find_project_file(start: Path | None = None) -> Path | None:
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        f = d / PROJECT_FILE
        if f.is_file():
            return f
    return None


def user_config_file() -> Path:
    base = _env("XDG_CONFIG_HOME")
    return Path(base) / "workbench" / "config.toml" if base else Path.home() / ".config" / "workbench" / "config.toml"


def config_files() -> list[Path]:
    explicit = _env("WORKBENCH_CONFIG")
    if explicit:
        p = Path(explicit).expanduser()
        if not p.is_file():
            raise ConfigError(f"WORKBENCH_CONFIG points to {p}, which does not exist. Unset it or create the file.")
        return [p]
    files = [user_config_file()]
    proj = find_project_file()
    if proj:
        files.append(proj)
    return [f for f in files if f.is_file()]


def _parse_profile(name: str, raw: Mapping[str, Any], path: Path, base: Profile | None) -> Profile:
    """``raw``: the validated settings the file gives (see :mod:`workbench.config_file`), over ``base``."""
    if base is None and "backend" not in raw:
        raise ConfigError(
            f"{path}: [profiles.{name}] needs a backend: add `backend = \"azure\"`, \"openai\" or \"local\"."
        )
    merged = asdict(base) if base else asdict(Profile(name=name))
    merged.update(raw)
    merged["name"] = name
    merged["source"] = str(path)
    return Profile(**merged)


def load_config(files: list[Path] | None = None) -> Config:
    """Read profiles from the built-ins, the config files and the environment; a file is validated whole
    (unknown keys, wrong types, secrets) before any of it is used."""
    files = config_files() if files is None else files
    profiles = builtin_profiles()
    default = "local"
    prices_file: Path | None = None
    for path in files:
        from .config_file import validate_config_file  # pydantic only when there is a file to read

        try:
            data = tomllib.loads(path.read_text("utf-8"))
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(
                f"{path} is not valid TOML: {e}. Fix the file or point WORKBENCH_CONFIG elsewhere."
            ) from e
        settings = validate_config_file(data, path)
        default = settings.default_profile or default
        if settings.prices_file:
            prices_file = (path.parent / Path(settings.prices_file).expanduser()).resolve()
        for name, raw in settings.profiles.items():
            profiles[name] = _parse_profile(name, raw.model_dump(exclude_unset=True), path, profiles.get(name))
    if _env("WORKBENCH_PRICES"):
        prices_file = Path(_env("WORKBENCH_PRICES")).expanduser()
    return Config(profiles=profiles, default_profile=default, files=files, prices_file=prices_file)


def get_profile(name: str | None = None) -> Profile:
    return load_config().profile(name)


# ---------------------------------------------------------------------------------------------- secrets


def _inside_git_worktree(path: Path) -> bool:
    try:
        out = subprocess.run(
            ["git", "-C", str(path.parent), "rev-parse", "--is-inside-work-tree"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip() == "true"


def read_api_key(profile: Profile) -> str | None:
    """The API key for ``profile``: its key file, else its environment variable. Registered for redaction."""
    if profile.auth != "key":
        return None
    key: str | None = None
    if profile.api_key_file:
        path = Path(profile.api_key_file).expanduser()
        if not path.is_file():
            raise ConfigError(f"Profile {profile.name!r}: api_key_file {path} does not exist.")
        if _inside_git_worktree(path):
            raise ConfigError(
                f"Profile {profile.name!r}: api_key_file {path} is inside a git repository, where it could be "
                f"committed. Move it outside (e.g. ~/.config/workbench/{profile.name}.key)."
            )
        key = path.read_text("utf-8").strip()
    elif profile.api_key_env:
        key = _env(profile.api_key_env)
    if not key:
        var = profile.api_key_env or ("AZURE_OPENAI_API_KEY" if profile.backend == "azure" else "OPENAI_API_KEY")
        extra = (
            ' Or use keyless Entra ID: set `auth = "entra"` in the profile (or leave AZURE_OPENAI_API_KEY unset '
            "for the built-in `azure` profile) and sign in with `az login` or a managed identity."
            if profile.backend == "azure"
            else ""
        )
        raise ConfigError(
            f"Profile {profile.name!r} needs an API key: set the environment variable {var} "
            f"(export {var}=...), or set `api_key_file` in the profile to a file outside the repository.{extra}"
        )
    register_secret(key)
    return key


# ---------------------------------------------------------------------------------------- models by name


def profile_deployments(profile: str | None = None) -> dict[str, str]:
    """Deployment -> model maps from the configured profiles: ``profile``'s, or all (the default profile's win)."""
    cfg = load_config()
    if profile:
        return dict(cfg.profile(profile).deployments)
    merged: dict[str, str] = {}
    for name, prof in cfg.profiles.items():
        if name != cfg.default_profile:
            merged.update(prof.deployments)
    if cfg.default_profile in cfg.profiles:
        merged.update(cfg.profiles[cfg.default_profile].deployments)
    return merged


def resolve_model(name: str | ModelInfo, deployments: Mapping[str, str] | None = None) -> ModelInfo:
    """The catalog model for a name, alias or Azure deployment.

    Without an explicit ``deployments`` map, a name the catalog does not know is looked up in the configured
    profiles' deployments before giving up (with the catalog's close matches).
    """
    if isinstance(name, ModelInfo):
        return name
    try:
        return resolve(name, deployments)
    except UnknownModelError:
        if deployments is not None:
            raise
        mapped = profile_deployments()
        if name not in mapped:
            raise
        return resolve(name, mapped)
