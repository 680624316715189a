"""The environment lock (requirements.lock): what it was generated from, and reading it back.

``make lock`` runs ``uv pip compile`` on pyproject.toml and then ``python tools/lock.py stamp``, which writes the
hash of the dependency declarations it was generated from into the lock's first line. That hash is what makes a
stale lock detectable offline: ``python tools/lock.py check`` (run by ``make setup``, which only warns) and
tests/test_environment.py (which fails) recompute it from pyproject.toml and compare.

Standard library only: ``make lock`` runs this with the system Python, before any environment exists.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tomllib
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements.lock"
PYPROJECT = ROOT / "pyproject.toml"
# the extras that are locked (the Makefile passes the same list to uv: LOCK_EXTRAS)
LOCKED_EXTRAS = ("test",)

INPUTS_PREFIX = "# inputs: sha256:"
_INPUTS_LINE = re.compile(r"^# inputs: sha256:([0-9a-f]{64})\b")


class Pin(NamedTuple):
    name: str  # as written in the lock (uv writes normalised names)
    version: str
    marker: str | None  # environment marker, e.g. "python_full_version < '3.12'" (the lock is universal)
    hashes: tuple[str, ...]


def lock_inputs(pyproject: Path = PYPROJECT) -> dict:
    """What the lock is generated from: requires-python, the dependencies and the locked extras."""
    project = tomllib.loads(pyproject.read_text("utf-8"))["project"]
    extras = project.get("optional-dependencies", {})
    return {
        "requires-python": project.get("requires-python"),
        "dependencies": [_norm(d) for d in project.get("dependencies", [])],
        "optional-dependencies": {e: [_norm(d) for d in extras.get(e, [])] for e in LOCKED_EXTRAS},
    }


def inputs_sha256(pyproject: Path = PYPROJECT) -> str:
    blob = json.dumps(lock_inputs(pyproject), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def recorded_inputs_sha256(lock: Path = LOCK) -> str | None:
    """The inputs hash written into the lock by ``stamp`` (None if the lock has none)."""
    for line in lock.read_text("utf-8").splitlines():
        m = _INPUTS_LINE.match(line)
        if m:
            return m.group(1)
        if line and not line.startswith("#"):
            break  # the header is over
    return None


def stamp(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> None:
    """Write (or replace) the inputs line at the top of the lock."""
    lines = [ln for ln in lock.read_text("utf-8").splitlines() if not _INPUTS_LINE.match(ln)]
    line = (f"{INPUTS_PREFIX}{inputs_sha256(pyproject)}  (pyproject.toml: requires-python, dependencies, "
            f"extras {','.join(LOCKED_EXTRAS)}; checked by tests/test_environment.py)")
    lock.write_text("\n".join([line, *lines]) + "\n", "utf-8")


def is_stale(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> bool:
    return recorded_inputs_sha256(lock) != inputs_sha256(pyproject)


def pins(lock: Path = LOCK) -> list[Pin]:
    """Every ``name==version [; marker]`` entry of the lock, with its hashes."""
    out: list[Pin] = []
    logical = ""
    for raw in lock.read_text("utf-8").splitlines() + [""]:
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            logical += line[:-1] + " "
            continue
        logical += line
        if logical.strip():
            out.append(_parse(logical.strip()))
        logical = ""
    return out


def _parse(entry: str) -> Pin:
    hashes = tuple(re.findall(r"--hash=(\S+)", entry))
    req = re.sub(r"\s*--hash=\S+", "", entry).strip()
    spec, _, marker = req.partition(";")
    m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*(\S+)", spec.strip())
    if not m:
        raise ValueError(f"requirements.lock: not an exact pin: {entry!r}")
    return Pin(m.group(1), m.group(3), marker.strip() or None, hashes)


def _norm(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement)


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "check"
    if cmd == "stamp":
        stamp()
        print(f"{LOCK.name}: {len(pins())} pinned packages; inputs sha256:{inputs_sha256()[:12]}")
        return 0
    if cmd == "check":
        if not LOCK.is_file():
            print(f"{LOCK.name} is missing: run `make lock`", file=sys.stderr)
            return 1
        if is_stale():
            print(f"{LOCK.name} is stale: the dependencies in pyproject.toml changed since it was generated. "
                  "Run `make lock` and commit both files.", file=sys.stderr)
            return 1
        return 0
    if cmd == "inputs-hash":
        print(inputs_sha256())
        return 0
    print("usage: python tools/lock.py [check|stamp|inputs-hash]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
