"""environment.yml cannot be solved on these machines (no conda channels), so check it stays consistent."""

import re
import tomllib

import yaml
from conftest import ROOT


def test_environment_yml_installs_the_package_from_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = env["dependencies"]
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert any(re.fullmatch(r"-e \.(\[[\w,]+\])?", line) for line in pip_section), pip_section
    # python version satisfies requires-python
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    minimum = project["requires-python"].removeprefix(">=")
    assert tuple(map(int, python.split("=")[1].split("."))) >= tuple(map(int, minimum.split(".")))
    # conda supplies tools only: no Python library listed twice with possibly different versions
    names = {re.split(r"[<>=!\[ ]", d)[0].lower() for d in project["dependencies"]}
    conda = {re.split(r"[<>=!]", d)[0].lower() for d in deps if isinstance(d, str)}
    assert not (names & conda), f"declared in both files: {names & conda}"
    # the pip extras named in environment.yml exist
    for line in pip_section:
        for extra in re.findall(r"\[([\w,]+)\]", line):
            for e in extra.split(","):
                assert e in project.get("optional-dependencies", {}), e
