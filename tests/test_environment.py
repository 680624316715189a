"""The environment is requirements.lock, exactly: the lock is not stale against pyproject.toml, every declared
requirement is satisfied by the locked version, the installed packages are the locked ones, and environment.yml
(which cannot be solved on these machines: no conda channels) installs the same lock.

All offline: no resolver runs here. Staleness is the inputs hash that `make lock` writes into the lock's header.
"""

import importlib.util
import re
import sys
import tomllib
from importlib import metadata

import pytest
import yaml
from conftest import ROOT
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

LOCK = ROOT / "requirements.lock"
# installed but not locked: the workbench itself (editable, from the work tree), and what `pip freeze` leaves
# out too - the installer's own seed packages, when an older venv still has them and the lock does not pin them
EXEMPT = {"prompt-workbench"}
SEEDS = {"pip", "setuptools", "wheel", "distribute"}


def _lock_tool():
    spec = importlib.util.spec_from_file_location("lock_tool", ROOT / "tools" / "lock.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_tool = _lock_tool()


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pins_here() -> dict[str, str]:
    """The lock's pins that apply to this interpreter and platform (the lock is universal)."""
    out: dict[str, str] = {}
    for pin in lock_tool.pins(LOCK):
        if pin.marker is None or Marker(pin.marker).evaluate():
            name = canonicalize_name(pin.name)
            assert name not in out, f"{pin.name} is pinned twice for this platform"
            out[name] = pin.version
    return out


def test_lock_is_not_stale():
    assert LOCK.is_file(), "requirements.lock is missing: run `make lock`"
    recorded = lock_tool.recorded_inputs_sha256(LOCK)
    assert recorded, "requirements.lock has no '# inputs: sha256:' line: generate it with `make lock`"
    assert recorded == lock_tool.inputs_sha256(ROOT / "pyproject.toml"), (
        "requirements.lock is stale: the dependencies in pyproject.toml changed since it was generated. "
        "Run `make lock` and commit both files.")


def test_inputs_hash_follows_the_declarations(tmp_path):
    pyproject = (ROOT / "pyproject.toml").read_text()
    copy = tmp_path / "pyproject.toml"
    copy.write_text(pyproject)
    before = lock_tool.inputs_sha256(copy)
    copy.write_text(pyproject.replace('"pandas>=2.1"', '"pandas>=2.2"'))
    assert lock_tool.inputs_sha256(copy) != before
    copy.write_text(pyproject.replace('description = "', 'description = "Changed: '))
    assert lock_tool.inputs_sha256(copy) == before  # only the dependency declarations count


def _lock_python() -> str:
    m = re.search(r"^LOCK_PYTHON\s*:?=\s*(\S+)", (ROOT / "Makefile").read_text(), re.M)
    assert m, "the Makefile names the lowest Python the lock is made for (LOCK_PYTHON)"
    return m.group(1)


def test_lock_covers_every_python_the_project_allows():
    # the lock is universal from LOCK_PYTHON up: that must be requires-python's lower bound
    assert _project()["requires-python"] == f">={_lock_python()}"
    # and `make lock` locks the extras whose declarations the inputs hash covers
    m = re.search(r"^LOCK_EXTRAS\s*:?=(.*)$", (ROOT / "Makefile").read_text(), re.M)
    assert m and tuple(m.group(1).split()) == lock_tool.LOCKED_EXTRAS


def test_every_pin_is_exact_and_hashed():
    pins = lock_tool.pins(LOCK)
    assert len(pins) > 50
    for pin in pins:
        Version(pin.version)
        assert pin.hashes and all(h.startswith("sha256:") for h in pin.hashes), pin.name


@pytest.mark.parametrize("extra", [None, *lock_tool.LOCKED_EXTRAS])
def test_every_declared_requirement_is_satisfied_by_the_lock(extra):
    project = _project()
    declared = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    by_name: dict[str, list] = {}
    for pin in lock_tool.pins(LOCK):
        by_name.setdefault(canonicalize_name(pin.name), []).append(pin)
    for line in declared:
        req = Requirement(line)
        locked = by_name.get(canonicalize_name(req.name))
        assert locked, f"{req.name} is declared in pyproject.toml but not in requirements.lock: run `make lock`"
        for pin in locked:  # every fork of a universal lock (e.g. one numpy for 3.11, one for 3.12+)
            assert req.specifier.contains(pin.version, prereleases=True), (
                f"requirements.lock pins {pin.name}=={pin.version}"
                f"{f' ; {pin.marker}' if pin.marker else ''}, outside pyproject.toml's {line!r}: run `make lock`")


def test_installed_environment_is_the_lock():
    pins = _pins_here()
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()
                 if d.metadata["Name"]}
    missing = {n: v for n, v in pins.items() if n not in installed}
    wrong = {n: f"{installed[n]} installed, {v} locked" for n, v in pins.items()
             if n in installed and Version(installed[n]) != Version(v)}
    extra = {n: v for n, v in installed.items() if n not in pins and n not in EXEMPT and n not in SEEDS}
    assert not (missing or wrong or extra), (
        f"the environment at {sys.prefix} is not requirements.lock (run `make setup`, or `make clean setup`): "
        f"missing {missing}, different {wrong}, not locked {extra}")
    assert "prompt-workbench" in installed


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = _project()
    deps = env["dependencies"]
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    # the pip section is the lock and nothing else (pip checks its hashes)
    assert pip_section == [f"-r {LOCK.name}"], pip_section
    # then the workbench itself, without resolving anything again: said where conda users read it
    assert "pip install --no-deps -e ." in (ROOT / "environment.yml").read_text()
    # python version satisfies requires-python, and the lock has a pin for it
    python = next(d for d in deps if isinstance(d, str) and re.match(r"python\b", d))
    version = python.split("=", 1)[1]
    assert Version(version) in Requirement(f"python{project['requires-python']}").specifier
    assert Version(version) >= Version(_lock_python())
    # conda supplies tools only: no Python library from both conda and the lock, with possibly different versions
    locked = {canonicalize_name(p.name) for p in lock_tool.pins(LOCK)}
    conda = {canonicalize_name(re.split(r"[<>=! ]", d)[0]) for d in deps if isinstance(d, str)}
    conda.discard("pip")  # conda's pip runs the pip section, which then installs the locked pip
    assert not (locked & conda), f"from both conda and requirements.lock: {locked & conda}"


def test_the_manifest_names_the_lock_of_the_environment():
    import hashlib

    from workbench.runs.manifest import Manifest, environment_lock

    assert environment_lock() == f"sha256:{hashlib.sha256(LOCK.read_bytes()).hexdigest()}"
    assert environment_lock("no-such.lock") is None
    assert "environment_lock" in Manifest.model_fields
