"""Prompt history: every variant a playground ran, as numbered versions with a text diff between them.

Pure logic (no widgets): :class:`PromptHistory` records the variants of each run, adding a version of a variant
only when it changed since its last version, and keeps them in a JSON-lines file (one version a line, appended,
so a crash loses nothing and two playgrounds never rewrite each other's lines). A version restores the exact
:class:`~workbench.variants.Variant` it ran.
"""

from __future__ import annotations

import difflib
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import NotFoundError
from ..records import utcnow
from ..variants import Variant


@dataclass(frozen=True)
class PromptVersion:
    """One version of one variant: what it was when a run used it."""

    variant: str
    version: int  # 1, 2, ... per variant name
    at: str  # UTC time of the run
    run: str | None  # the run folder's name, if there was one
    spec: dict[str, Any]  # the variant, as its spec dictionary

    def to_variant(self) -> Variant:
        return Variant(**self.spec)

    def text(self) -> str:
        """The version as a readable text (system, turns, user, parameters, format): what the diff compares."""
        return prompt_text(self.to_variant())

    def label(self) -> str:
        return f"v{self.version} · {self.at[11:19]} UTC" + (f" · {self.run}" if self.run else "")


def prompt_text(v: Variant) -> str:
    lines = []
    if v.system:
        lines += ["[system]", v.system]
    for t in v.turns:
        lines += [f"[{t.role}]", t.content]
    lines += ["[user]", v.user]
    if v.params:
        lines.append("[params] " + json.dumps(v.params, sort_keys=True))
    if v.response_format:
        lines.append("[response_format] " + json.dumps(v.response_format, sort_keys=True))
    if v.target is not None:
        lines.append(f"[target] {v.target.label}")
    return "\n".join(lines) + "\n"


def text_diff(a: str, b: str, a_name: str = "a", b_name: str = "b") -> str:
    """A unified line diff (empty when the texts are the same)."""
    return "".join(difflib.unified_diff(a.splitlines(True), b.splitlines(True), a_name, b_name))


class PromptHistory:
    """Versions of every variant a playground ran, kept in ``path`` (JSON lines) when one is given."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        self._versions: dict[str, list[PromptVersion]] = {}
        self._lock = threading.Lock()
        if self.path is not None and self.path.is_file():
            for line in self.path.read_text("utf-8").splitlines():
                if line.strip():
                    v = PromptVersion(**json.loads(line))
                    self._versions.setdefault(v.variant, []).append(v)

    def record(self, variants: Iterable[Variant], run: str | None = None) -> list[PromptVersion]:
        """Note the variants a run used; returns the versions that are new (changed or first seen)."""
        new = []
        at = utcnow()
        with self._lock:
            for variant in variants:
                spec = variant.model_dump(mode="json")
                versions = self._versions.setdefault(variant.name, [])
                if versions and versions[-1].spec == spec:
                    continue
                v = PromptVersion(variant.name, len(versions) + 1, at, run, spec)
                versions.append(v)
                new.append(v)
            if new and self.path is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8") as f:
                    for v in new:
                        f.write(json.dumps(v.__dict__, ensure_ascii=False, sort_keys=True) + "\n")
        return new

    @property
    def names(self) -> list[str]:
        return list(self._versions)

    def versions(self, name: str) -> list[PromptVersion]:
        return list(self._versions.get(name, []))

    def get(self, name: str, version: int) -> PromptVersion:
        for v in self._versions.get(name, []):
            if v.version == version:
                return v
        have = ", ".join(f"v{v.version}" for v in self._versions.get(name, [])) or "none"
        raise NotFoundError(f"No version {version} of variant {name!r} (versions: {have}).")

    def diff(self, name: str, version: int, against: Variant | int | None = None) -> str:
        """Unified diff from version ``version`` to ``against`` (another version number, a variant - e.g. the
        one being edited - or, by default, the version before it)."""
        old = self.get(name, version)
        if against is None:
            if version <= 1:
                return text_diff("", old.text(), "(nothing)", f"v{version}")
            prev = self.get(name, version - 1)
            return text_diff(prev.text(), old.text(), f"v{version - 1}", f"v{version}")
        if isinstance(against, int):
            return text_diff(old.text(), self.get(name, against).text(), f"v{version}", f"v{against}")
        return text_diff(old.text(), prompt_text(against), f"v{version}", "now")
