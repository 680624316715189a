"""The schema of a config file (``workbench.toml``, the user's ``config.toml``): what :mod:`workbench.config` reads.

Validated like every spec, by :class:`workbench.schema.Model`: an unknown key is refused with the nearest known
one (``default_profle`` -> did you mean ``default_profile``), a value of the wrong type names the file, the
profile, the key and the type it should be (``rpm = "fast"``), and a profile's ``defaults`` are request
parameters checked by the same rules as a variant's ``params``. Before any of that, :func:`refuse_secrets` walks
the whole file: a key-named entry (``api_key``, ``token``...) or a key-shaped value anywhere - at the top level,
under a profile, inside its ``defaults`` - is refused, so a secret is never kept, shown or sent as a parameter.

Kept apart from :mod:`workbench.config` so that reading the built-in profiles does not load pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator

from .errors import ConfigError, SpecError
from .params import param_problems
from .schema import Model, located_problems
from .secrets import looks_like_secret

# Entry names that hold a secret, wherever they appear (deployment names excepted: they are names).
SECRET_NAMES = ("api_key", "apikey", "api-key", "key", "token", "access_token", "password", "secret",
                "client_secret", "authorization", "bearer")
_NAMES_NOT_SECRETS = ("deployments",)


class ProfileFile(Model):
    """One ``[profiles.NAME]`` table. Every field is optional: a file may change one setting of a profile
    defined earlier (built in, or in the user file)."""

    _spec_noun = "profile"
    model_config = ConfigDict(extra="forbid", strict=True)

    backend: str | None = None
    endpoint: str | None = None
    base_url: str | None = None
    api_version: str | None = None
    auth: Literal["key", "entra", "none"] | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    model: str | None = None
    deployments: dict[str, str] | None = None
    defaults: dict[str, Any] | None = None
    timeout: float | None = Field(None, gt=0)
    max_concurrency: int | None = Field(None, ge=1)
    rpm: int | None = Field(None, ge=1)
    tpm: int | None = Field(None, ge=1)
    model_path: str | None = None
    azure_v1: bool | None = None
    batch: bool | None = None
    batch_deployments: list[str] | None = None
    description: str | None = None

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str | None) -> str | None:
        if v is not None and v not in ("local", "azure", "openai"):
            raise ValueError(f'{v!r} is not a backend: use "local", "azure" or "openai" (OpenAI-compatible '
                             'servers use "openai" with base_url)')
        return v

    @field_validator("defaults")
    @classmethod
    def _defaults(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        problems = param_problems(v or {})
        if problems:
            raise located_problems("defaults", [(name, msg, v[name]) for name, msg in problems])
        return v


class ConfigFile(Model):
    """A whole config file."""

    _spec_noun = "config file"
    model_config = ConfigDict(extra="forbid", strict=True)

    default_profile: str | None = None
    prices_file: str | None = None
    profiles: dict[str, ProfileFile] = Field(default_factory=dict)


def refuse_secrets(data: Any, path: Path, where: tuple[str, ...] = ()) -> None:
    """Raise :class:`ConfigError` for a secret anywhere in ``data`` (a parsed TOML file)."""
    if not isinstance(data, Mapping):
        return
    for key, value in data.items():
        here = (*where, str(key))
        names_are_data = bool(where) and where[-1] in _NAMES_NOT_SECRETS
        if not names_are_data and str(key).lower() in SECRET_NAMES:
            raise ConfigError(f"{path}: {_located(here)} is a secret. Secrets do not belong in config files (they "
                              "end up in git, in reports and - under `defaults` - in every request). Put the key in "
                              "an environment variable and name it with `api_key_env = \"MY_KEY_VAR\"`, or in a file "
                              "outside the repository with `api_key_file = \"~/.keys/x\"`.")
        if isinstance(value, str) and looks_like_secret(value):
            raise ConfigError(f"{path}: {_located(here)} holds what looks like an API key. Secrets do not belong in "
                              "config files: name the environment variable that holds it (`api_key_env = "
                              "\"MY_KEY_VAR\"`) or a key file outside the repository (`api_key_file`).")
        refuse_secrets(value, path, here)


def validate_config_file(data: Mapping[str, Any], path: Path) -> ConfigFile:
    """The file's settings, or a :class:`ConfigError` naming the file, the profile, the key and what is wrong."""
    refuse_secrets(data, path)
    try:
        return ConfigFile.model_validate(data)
    except SpecError as e:
        lines = [f"{_located(tuple(p.split('.')))}: {msg}" for p, msg in e.problems]
        text = f"{path}: {lines[0]}." if len(lines) == 1 else f"{path} has {len(lines)} problems:\n  - " + \
            "\n  - ".join(lines) + "\n"
        raise ConfigError(f"{text} See workbench.example.toml for every setting.") from None


def _located(parts: tuple[str, ...]) -> str:
    """``("profiles", "x", "rpm")`` -> ``[profiles.x] rpm``: the table as the file writes it, then the key."""
    if len(parts) >= 3 and parts[0] == "profiles":
        return f"[profiles.{parts[1]}] {'.'.join(parts[2:])}"
    return ".".join(parts)
