"""The model catalog: encodings, limits, capabilities and image-token rules per model family.

The figures live in ``data/models.toml`` (pure data, each source named there); this module only loads them
and answers questions. Azure deployment names are arbitrary, so profiles map each deployment to a catalog
model (see :mod:`workbench.config`); :func:`resolve` accepts either form via ``deployments=``.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Literal

from .errors import UnknownModelError

Capability = Literal[
    "chat", "vision", "reasoning", "structured_output", "tools", "embeddings", "computer_use"
]


@dataclass(frozen=True)
class ImageRule:
    """How a model bills image input: 512 px tiles (base + per tile) or 32 px patches x multiplier."""

    rule: Literal["tile", "patch"]
    base: int = 0
    per_tile: int = 0
    multiplier: float = 1.0


@dataclass(frozen=True)
class ModelInfo:
    name: str
    encoding: str
    context_window: int
    max_output_tokens: int
    capabilities: frozenset[str]
    aliases: tuple[str, ...] = ()
    system_role: Literal["system", "developer", "user"] = "system"
    reasoning_effort: bool = False
    image: ImageRule | None = None
    dimensions: int | None = None
    local: bool = False

    @property
    def is_reasoning(self) -> bool:
        return "reasoning" in self.capabilities

    @property
    def has_vision(self) -> bool:
        return "vision" in self.capabilities

    def supports(self, capability: str) -> bool:
        return capability in self.capabilities


@dataclass(frozen=True)
class Catalog:
    schema_version: int
    catalog_version: str
    models: Mapping[str, ModelInfo]
    _index: Mapping[str, str] = field(repr=False, default_factory=dict)

    def names(self) -> list[str]:
        return list(self.models)

    def get(self, name: str) -> ModelInfo | None:
        key = self._index.get(_norm(name))
        return self.models[key] if key else None

    def resolve(self, name: str, deployments: Mapping[str, str] | None = None) -> ModelInfo:
        """Find a model by catalog name, alias, or an Azure deployment name mapped in ``deployments``.

        Raises :class:`UnknownModelError` listing close matches and how to map a deployment.
        """
        if deployments and name in deployments:
            target = deployments[name]
            info = self.get(target)
            if info is None:
                raise UnknownModelError(
                    f"Deployment {name!r} is mapped to model {target!r}, which is not in the catalog."
                    + _suggest(target, self._all_names())
                )
            return info
        info = self.get(name)
        if info is not None:
            return info
        hint = _suggest(name, self._all_names() + list(deployments or {}))
        raise UnknownModelError(
            f"Unknown model or deployment {name!r}.{hint} If {name!r} is an Azure deployment, map it to "
            f"its model in the profile: [profiles.NAME.deployments] {name} = \"gpt-4o-mini\"."
        )

    def _all_names(self) -> list[str]:
        out = list(self.models)
        for m in self.models.values():
            out.extend(m.aliases)
        return out


def _norm(name: str) -> str:
    return name.strip().lower()


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=4, cutoff=0.5)
    if not close:
        close = [c for c in candidates if _norm(name) in _norm(c)][:4]
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _model_from_toml(name: str, raw: dict) -> ModelInfo:
    image = raw.get("image")
    return ModelInfo(
        name=name,
        encoding=raw["encoding"],
        context_window=int(raw["context_window"]),
        max_output_tokens=int(raw["max_output_tokens"]),
        capabilities=frozenset(raw.get("capabilities", [])),
        aliases=tuple(raw.get("aliases", [])),
        system_role=raw.get("system_role", "system"),
        reasoning_effort=bool(raw.get("reasoning_effort", False)),
        image=ImageRule(**image) if image else None,
        dimensions=raw.get("dimensions"),
        local=bool(raw.get("local", False)),
    )


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """The catalog shipped with the package (cached: it is read once per process)."""
    text = resources.files("workbench").joinpath("data/models.toml").read_text("utf-8")
    raw = tomllib.loads(text)
    models = {name: _model_from_toml(name, spec) for name, spec in raw["models"].items()}
    index: dict[str, str] = {}
    for name, info in models.items():
        for alias in (name, *info.aliases):
            index[_norm(alias)] = name
    return Catalog(raw["schema_version"], raw["catalog_version"], models, index)


def resolve(name: str, deployments: Mapping[str, str] | None = None) -> ModelInfo:
    """Shortcut for ``load_catalog().resolve(...)``."""
    return load_catalog().resolve(name, deployments)


LOCAL_MODEL = "smollm2-135m-instruct"
