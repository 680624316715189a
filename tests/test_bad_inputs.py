"""The battery: bad inputs a new user gives, through every way in, each refused before a request is sent.

Every case asserts four things: the exit code (or the exception, for Python entry points), no traceback, the
located message (the flag, field, file, row or parameter, and what to do), and that nothing was sent - the
fake server's (or FakeBackend's) request log is empty. ``test_the_battery_can_fail`` runs the same project with
good inputs and sees requests arrive, so an empty log means something.

CLI cases run ``workbench`` in a subprocess against a :class:`~workbench.testing.FakeServer` on 127.0.0.1,
reached through a ``fake`` profile in the project's ``workbench.toml`` (the ``project`` fixture, tests/served.py).
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest
from PIL import Image
from served import KEY, animated_gif, huge_png, png

from workbench.testing import FakeBackend


def assert_refused(out, *located: str, code: int = 1) -> None:
    """Exit ``code``, one ``error:`` line first, no traceback, no key, and each ``located`` text in the message."""
    assert out.returncode == code, (out.returncode, out.stdout[-2000:], out.stderr[-2000:])
    err = out.stderr
    assert "Traceback" not in err and "Traceback" not in out.stdout, err
    assert KEY not in err and KEY not in out.stdout
    if code == 1:
        first = [line for line in err.splitlines() if line.strip()][0]
        assert first.startswith("error: "), err
    for text in located:
        assert text in err, f"{text!r} not in:\n{err}"


def spec_with(variant: str = "", top: str = "", targets: str = "[fake]", dataset: str = "cases.csv") -> str:
    return (f"name: battery\ndataset: {dataset}\ntargets: {targets}\n{top}variants:\n  - name: plain\n"
            f"    user: \"Review: {{{{ text }}}}\"\n{textwrap.indent(variant, '    ')}")


# ------------------------------------------------------------------------------------------- CLI: flags

EVAL = ["eval", "spec.yaml", "--quiet"]
CHAT = ["chat", "--profile", "fake"]
FLAGS = [
    (EVAL, ["--repeats", "-1"], ["--repeats -1", "greater than or equal to 1"]),
    (EVAL, ["--repeats", "0"], ["--repeats 0", "greater than or equal to 1"]),
    (EVAL, ["--concurrency", "0"], ["--concurrency 0"]),
    (EVAL, ["--concurrency", "-3"], ["--concurrency -3"]),
    (EVAL, ["--sample", "0"], ["--sample 0"]),
    (EVAL, ["--sample", "-2"], ["--sample -2"]),
    (EVAL, ["--budget", "-1"], ["--budget -1"]),
    (EVAL, ["--target", "nosuch"], ["No profile named 'nosuch'", "Known profiles"]),
    (CHAT, ["-t", "5"], ["bad flag: --temperature 5: expected a number between 0 and 2"]),
    (CHAT, ["--temperature", "-0.5"], ["--temperature -0.5: expected a number between 0 and 2"]),
    (CHAT, ["--max-tokens", "0"], ["bad flag: --max-tokens 0: expected a whole number between 1"]),
    (CHAT, ["--max-tokens", "100000"], ["max_tokens=100,000 is more than gpt-4o-mini returns (16,384 tokens)"]),
    (CHAT, ["--profile", "nope"], ["No profile named 'nope'"]),
    (CHAT, ["--model", "gpt-4o-mnii"], ["Unknown model or deployment 'gpt-4o-mnii'", "Did you mean"]),
]


@pytest.mark.parametrize("command,flags,located", FLAGS, ids=[f"{c[0]} {' '.join(f)}" for c, f, _ in FLAGS])
def test_cli_flag(project, command, flags, located):
    out = project.cli(*command, *flags, *(["hello"] if command is CHAT else []))
    assert_refused(out, *located)
    assert project.backend.requests == []


# -------------------------------------------------------------------------------------------- YAML specs

IMAGE_VARIANT = "images: [\"{{ image }}\"]\n"

SPECS = {
    "param typo": (spec_with("params: {temprature: 0}\n"),
                   ["variants[0].params.temprature: not a chat-completions parameter; did you mean 'temperature'?",
                    "extra_body"]),
    "param range": (spec_with("params: {temperature: 3}\n"),
                    ["variants[0].params.temperature: expected a number between 0 and 2 (got 3)"]),
    "param type": (spec_with("params: {max_tokens: \"ten\"}\n"),
                   ["variants[0].params.max_tokens: expected a whole number"]),
    "stream param": (spec_with("params: {stream: true}\n"), ["variants[0].params.stream", "decides whether to stream"]),
    "n param": (spec_with("params: {n: 3}\n"), ["variants[0].params.n", "repeats"]),
    "extra_body not a mapping": (spec_with("params: {extra_body: 3}\n"), ["variants[0].params.extra_body",
                                                                        "expected a mapping"]),
    "unknown field": (spec_with(top="repeat: 2\n"), ["repeat: unknown field; did you mean 'repeats'?"]),
    "repeats 0 in YAML": (spec_with(top="repeats: 0\n"), ["repeats: Input should be greater than or equal to 1"]),
    "unclosed quote": ("name: battery\ndescription: \"never closed\ndataset: cases.csv\nvariants:\n  - name: a\n"
                       "    user: \"{{ text }}\"\n",
                       ["bad.yaml: not valid YAML at line 2, column 14", "closing quote missing"]),
    "duplicate key": (spec_with() + "variants:\n  - name: other\n",
                      ["'variants' is given twice (first at line 4)"]),
    "not a mapping": ("- name: a\n", ["expected a mapping of fields"]),
    "missing variable": (spec_with().replace("{{ text }}", "{{ txet }}"),
                         ["{{ txet }}", "case 'c1' (row 2 of cases.csv)", "Did you mean {{ text }}?",
                          "The columns are: id, text, expected, image"]),
    "image to a model without vision": (spec_with(IMAGE_VARIANT, targets="[fake-text]"),
                                        ["target 'fake-text'", "case 'c1' (row 2 of cases.csv)",
                                         "gpt-35-turbo does not accept images", "(images: cat.png)"]),
    "json schema to a model without structured outputs": (
        spec_with("response_format: {type: object, properties: {label: {type: string}}}\n", targets="[fake-text]"),
        ["gpt-35-turbo does not support structured outputs"]),
    "ragged CSV: too few fields": (spec_with(dataset="short.csv"),
                                   ["short.csv, row 3: 2 field(s), but the header has 3 (id, text, expected)",
                                    "missing: expected"]),
    "ragged CSV: too many fields": (spec_with(dataset="long.csv"),
                                    ["long.csv, row 2: 4 fields, but the header has 3", "double quotes"]),
    "CSV: unclosed quote": (spec_with(dataset="quote.csv"), ["quote.csv, row 3: cannot parse CSV"]),
    "CSV: repeated column": (spec_with(dataset="dupcol.csv"), ["names column 'text' more than once"]),
    "CSV: duplicate ids": (spec_with(dataset="dupid.csv"), ["dupid.csv, row 3: duplicate case id 'a'"]),
    "CSV: not UTF-8": (spec_with(dataset="latin.csv"), ["latin.csv: not UTF-8 text"]),
    "JSONL: bad line": (spec_with(dataset="bad.jsonl"), ["bad.jsonl, line 2: not valid JSON"]),
    "dataset file missing": (spec_with(dataset="nope.csv"), ["Dataset file", "nope.csv does not exist"]),
}

DATASETS = {
    "short.csv": "id,text,expected\na,fine,positive\nb,no expected\n",
    "long.csv": "id,text,expected\na,great, really,positive\n",
    "quote.csv": 'id,text,expected\na,ok,positive\nb,"never closed,negative\n',
    "dupcol.csv": "id,text,text\na,x,y\n",
    "dupid.csv": "id,text,expected\na,x,positive\na,y,negative\n",
    "bad.jsonl": '{"id": "a", "text": "x"}\n{"id": "b", "text": \n',
}


@pytest.mark.parametrize("name", list(SPECS))
def test_yaml_spec(project, name):
    spec, located = SPECS[name]
    for fname, content in DATASETS.items():
        project.write(fname, content)
    project.write("latin.csv", "id,text\na,caf\xe9\n".encode("latin-1"))
    project.write("bad.yaml", spec)
    out = project.cli("eval", "bad.yaml", "--quiet")
    assert_refused(out, *located)
    assert project.backend.requests == []


IMAGES = {
    "text file named .png": (b"just some text, not an image\n",
                             ["Image 'pic.png' for variant 'plain', case 'c1' (row 2 of cases.csv)",
                              "its content is text"]),
    "damaged PNG": (png(64, 64)[:60], ["'pic.png'", "case 'c1' (row 2 of cases.csv)", "not a readable image"]),
    "animated GIF": (animated_gif(), ["'pic.png'", "animated GIFs are not accepted"]),
    "BMP": (None, ["'pic.png'", "BMP images are not accepted"]),
}


@pytest.mark.parametrize("name", list(IMAGES))
def test_image_file(project, name):
    data, located = IMAGES[name]
    if data is None:
        buf = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buf, format="BMP")
        data = buf.getvalue()
    project.write("pic.png", data)
    project.write("cases.csv", "id,text,image\nc1,look,pic.png\n")
    project.write("img.yaml", spec_with(IMAGE_VARIANT))
    out = project.cli("eval", "img.yaml", "--quiet")
    assert_refused(out, *located)
    assert project.backend.requests == []


def test_image_missing_and_bad_data_url(project):
    project.write("cases.csv", 'id,text,image\nc1,look,gone.png\nc2,look,"data:image/png;base64,@@@"\n')
    project.write("img.yaml", spec_with(IMAGE_VARIANT))
    assert_refused(project.cli("eval", "img.yaml", "--quiet"), "Image 'gone.png' for variant 'plain', case 'c1'",
                   "not found")
    project.write("cases.csv", 'id,text,image\nc2,look,"data:image/png;base64,@@@"\n')
    assert_refused(project.cli("eval", "img.yaml", "--quiet"), "case 'c2' (row 2 of cases.csv)",
                   "base64 payload is invalid")
    assert project.backend.requests == []


# ---------------------------------------------------------------------------------------- workbench.toml

# (where the text goes: "top" of the file, into the "fake" profile, or the "end"; the text; the located message)
CONFIGS = {
    "unknown key": ("top", 'default_profle = "fake"\n',
                    ["workbench.toml: default_profle: unknown field; did you mean 'default_profile'?"]),
    "wrong type": ("fake", 'rpm = "fast"\n',
                   ["workbench.toml: [profiles.fake] rpm: Input should be a valid integer (got 'fast')"]),
    "key at the top level": ("top", 'api_key = "x"\n', ["workbench.toml: api_key is a secret", "api_key_env"]),
    "key under defaults": ("end", '[profiles.fake.defaults]\napi_key = "x"\n',
                           ["[profiles.fake] defaults.api_key is a secret"]),
    "key under a profile": ("fake", 'token = "x"\n', ["[profiles.fake] token is a secret"]),
    "key pasted as the variable's name": ("fake", f'api_key_env = "sk-{"abcdefgh" * 3}"\n',
                                          ["[profiles.fake] api_key_env holds what looks like an API key"]),
    "defaults: parameter typo": ("end", '[profiles.fake.defaults]\ntemprature = 0\n',
                                 ["[profiles.fake] defaults.temprature: not a chat-completions parameter; did you "
                                  "mean 'temperature'?"]),
    "unknown backend": ("end", '[profiles.other]\nbackend = "bedrock"\n',
                        ["[profiles.other] backend: 'bedrock' is not a backend"]),
    "not TOML": ("end", "[profiles.broken\n", ["workbench.toml is not valid TOML"]),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_config_file(project, name):
    where, text, located = CONFIGS[name]
    toml = (project.root / "workbench.toml").read_text()
    if where == "top":
        toml = text + toml
    elif where == "fake":  # a key the profile has already is replaced (TOML refuses a key given twice)
        key = text.split("=", 1)[0].strip()
        head, sep, rest = toml.partition("[profiles.fake]\n")
        kept = "".join(line for line in rest.splitlines(keepends=True) if not line.startswith(key + " "))
        toml = head + sep + text + kept
    else:
        toml += text
    project.write("workbench.toml", toml)
    for command in (["eval", "spec.yaml", "--quiet"], ["chat", "--profile", "fake", "hi"]):
        assert_refused(project.cli(*command), *located)
    assert project.backend.requests == []


# ----------------------------------------------------------------------------------- notebook parameters

NOTEBOOK = str(Path(__file__).resolve().parents[1] / "notebooks" / "03_evaluate.ipynb")
NOTEBOOK_PARAMS = [
    (["-p", "sample_size", "-2"], ["bad notebook parameter: sample_size -2", "greater than or equal to 1"]),
    (["-p", "repeats", "0"], ["bad notebook parameter: repeats 0"]),
    (["-p", "temperature", "5"], ["bad notebook parameter: temperature 5", "between 0 and 2"]),
    (["-p", "sample_size", "many"], ["sample_size many", "valid integer"]),
    (["-p", "sampel_size", "2"], ["has no parameter 'sampel_size'", "sample_size"]),
    (["--sweep", "temperature=0,,0.7"], ["--sweep 'temperature=0,,0.7': value 2 of 3 is empty"]),
    (["--sweep", "temperature=0,0.7,"], ["value 3 of 3 is empty"]),
    (["--sweep", "repeats=1,0"], ["sweep point repeats=0", "nothing was run"]),
    (["-p", "spec", "ragged.yaml"], ["short.csv, row 3: 2 field(s)"]),
]


@pytest.mark.parametrize("args,located", NOTEBOOK_PARAMS, ids=[" ".join(a) for a, _ in NOTEBOOK_PARAMS])
def test_notebook_parameter(project, args, located):
    project.write("short.csv", DATASETS["short.csv"])
    project.write("ragged.yaml", spec_with(dataset="short.csv"))
    out = project.cli("run", NOTEBOOK, "-p", "spec", "spec.yaml", "--reports", "reports", "--no-progress", *args)
    assert_refused(out, *located)
    assert project.backend.requests == []
    assert not list((project.root / "reports").glob("*/*")), "a run folder was created"


def test_notebook_that_is_not_json(project):
    project.write("broken.ipynb", '{"cells": [\n  {"cell_type": "code",\n')
    out = project.cli("run", "broken.ipynb", "--reports", "reports")
    assert_refused(out, "broken.ipynb: not a notebook - not valid JSON (line 3")
    project.write("list.ipynb", "[1, 2]")
    assert_refused(project.cli("run", "list.ipynb"), "list.ipynb: not a notebook", "cells")
    assert project.backend.requests == []


# ------------------------------------------------------------------------------------------- the control


def test_the_battery_can_fail(project):
    """The same project with good inputs sends requests: the empty logs above are the refusals' doing."""
    out = project.cli("eval", "spec.yaml", "--quiet", "--repeats", "1")
    assert out.returncode == 0, out.stderr
    assert len(project.backend.chat_requests) == 2
    out = project.cli("chat", "--profile", "fake", "-t", "0.5", "--max-tokens", "20", "hello")
    assert out.returncode == 0, out.stderr
    assert project.backend.chat_requests[-1].body["temperature"] == 0.5


# ------------------------------------------------------------------------------ Python, notebooks, widgets


def _exp(**changes):
    from workbench import Experiment

    spec = dict(name="py", dataset={"rows": [{"id": "a", "text": "hi", "image": "x.png"}]},
                variants=[{"name": "v", "user": "{{ text }}"}], targets=["fake-openai"])
    spec.update(changes)
    return Experiment(**spec)


def _providers(fake):
    return {"fake-openai": fake.provider("openai")}


PYTHON = {
    "repeats -1": (lambda fake: _exp(repeats=-1), "repeats: Input should be greater than or equal to 1"),
    "replace(sample=0)": (lambda fake: _exp().replace(sample=0), "sample: Input should be greater than or equal"),
    "replace(repeat=2)": (lambda fake: _exp().replace(repeat=2), "repeat: unknown field; did you mean 'repeats'?"),
    "params typo": (lambda fake: _exp(variants=[{"name": "v", "params": {"top_pp": 0.5}}]),
                    "variants[0].params.top_pp: not a chat-completions parameter; did you mean 'top_p'?"),
    "complete(temprature=0)": (
        lambda fake: fake.provider("openai").complete([{"role": "user", "content": "x"}], temprature=0),
        "temprature: not a chat-completions parameter; did you mean 'temperature'?"),
    "image to a text model": (
        lambda fake: __import__("workbench.harness", fromlist=["run"]).run(
            _exp(variants=[{"name": "v", "user": "{{ text }}",
                            "images": ["data:image/png;base64," + __import__("base64").b64encode(png()).decode()]}],
                 targets=["fake-openai:gpt-35-turbo"]), providers=_providers(fake), progress=False),
        "gpt-35-turbo does not accept images"),
    "Dataset.sample(-2)": (lambda fake: __import__("workbench").load_dataset([{"t": 1}]).sample(-2),
                           "sample(-2): give a whole number of cases, 1 or more"),
    "resolve_experiment(sample_size=-2)": (
        lambda fake: __import__("workbench.runs", fromlist=["resolve_experiment"]).resolve_experiment(
            _exp(), sample_size=-2), "bad notebook parameter: sample_size -2"),
}


@pytest.mark.parametrize("name", list(PYTHON))
def test_python_entry_point(name, tmp_path, monkeypatch):
    from workbench.errors import WorkbenchError

    monkeypatch.chdir(tmp_path)
    fake = FakeBackend()
    call, located = PYTHON[name]
    with pytest.raises(WorkbenchError) as e:
        call(fake)
    assert located in str(e.value)
    assert fake.requests == []


def test_playground_refuses_before_sending(tmp_path, monkeypatch):
    """Widgets build the same Experiment and plan it: a bad template or an image for a text model is shown in
    the status line, and nothing is sent."""
    from workbench import Experiment
    from workbench.widgets import Playground

    monkeypatch.chdir(tmp_path)
    (tmp_path / "cat.png").write_bytes(png())
    fake = FakeBackend()
    exp = Experiment(name="pg", dataset={"rows": [{"id": "a", "text": "hi", "image": "cat.png"}]},
                     variants=[{"name": "v", "user": "{{ text }}"}], targets=["fake-openai"], base_dir=tmp_path)
    pg = Playground(exp, providers=_providers(fake), mode="dataset")  # (one-input mode asks for every variable)
    pg.editor("v").user.value = "{{ txet }}"
    pg.run(wait=True)
    assert "{{ txet }}" in pg.status and "Did you mean {{ text }}?" in pg.status, pg.status
    pg.editor("v").user.value = "{{ text }}"
    pg.set_experiment(exp.replace(variants=[exp.variants[0].replace(images=["{{ image }}"])],
                                  targets=["fake-openai:gpt-35-turbo"]))
    pg.run(wait=True)
    assert "gpt-35-turbo does not accept images" in pg.status, pg.status
    assert fake.requests == []


def test_cost_explorer_refuses_a_text_file_as_an_image():
    from workbench.errors import DataError
    from workbench.widgets.cost_explorer import prompt_messages

    with pytest.raises(DataError, match="the uploaded image: not a readable image: its content is text"):
        prompt_messages("describe", b"hello, I am a text file", "auto")


def test_huge_image_is_budgeted_by_the_rule_not_decoded(project):
    """A 20000x20000 PNG is measured from its header (no DecompressionBombError) and priced by the model's rule."""
    project.write("big.png", huge_png())
    out = project.cli("image-tokens", "--model", "gpt-4o", "--detail", "high", "big.png")
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert "20000x20000" in out.stdout and "768x768" in out.stdout and "765 tokens" in out.stdout
    project.write("cases.csv", "id,text,image\nc1,look,big.png\n")
    project.write("big.yaml", spec_with(IMAGE_VARIANT, top="budget_usd: 0.0000001\n"))
    out = project.cli("eval", "big.yaml", "--quiet")
    assert_refused(out, "budget")
    assert "Decompression" not in out.stderr and project.backend.requests == []



def test_the_same_value_is_refused_the_same_way_everywhere(project):
    """One validation path: ``repeats = 0`` from Python, YAML, a flag and a notebook parameter gets one reason,
    each time under the name the user typed."""
    from workbench.errors import SpecError
    from workbench.experiment import load_experiment

    reason = "Input should be greater than or equal to 1 (got 0)"
    with pytest.raises(SpecError) as e:
        load_experiment(project.root / "spec.yaml").replace(repeats=0)
    assert f"repeats: {reason}" in str(e.value)
    project.write("zero.yaml", spec_with(top="repeats: 0\n"))
    assert_refused(project.cli("eval", "zero.yaml"), f"zero.yaml: the experiment spec is not valid: repeats: {reason}")
    assert_refused(project.cli("eval", "spec.yaml", "--repeats", "0"), f"bad flag: --repeats 0: {reason}")
    assert_refused(project.cli("run", NOTEBOOK, "-p", "spec", "spec.yaml", "-p", "repeats", "0"),
                   f"bad notebook parameter: repeats 0: {reason}")
    assert project.backend.requests == []
