import base64

import pytest

from workbench.datasets import load_dataset
from workbench.errors import DataError, SpecError
from workbench.variants import Target, Turn, Variant, check_variables, grid, normalize_response_format

DS = load_dataset([{"id": "c1", "text": "great", "lang": "en"}, {"id": "c2", "text": "bad"}])


def test_render_system_few_shot_and_user():
    v = Variant(name="fs", system="Classify ({{ lang }}).", turns=[Turn(role="user", content="nice"),
                Turn(role="assistant", content="positive")], user="{{ text }}")
    msgs = v.render(DS[0])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0]["content"] == "Classify (en)." and msgs[-1]["content"] == "great"


def test_missing_variable_names_variant_field_variable_and_case():
    v = Variant(name="fs", system="Classify ({{ lang }}).", user="{{ text }}")
    with pytest.raises(DataError) as e:
        v.render(DS[1])
    msg = str(e.value)
    assert "Variant 'fs'" in msg and "system" in msg and "{{ lang }}" in msg and "case 'c2'" in msg
    assert "The columns are: id, text" in msg


def test_check_variables_lists_every_gap_before_a_run():
    v1 = Variant(name="a", user="{{ text }} {{ lang }}")
    v2 = Variant(name="b", user="{{ question }}")
    problems = check_variables([v1, v2], DS.cases, "cases.csv")
    assert any(p.startswith("variant 'a' uses {{ lang }}, missing for case 'c2' (row 2 of cases.csv). The columns are")
               for p in problems)
    assert sum("question" in p for p in problems) == 2


def test_template_syntax_error_is_a_spec_error():
    with pytest.raises(SpecError, match="template syntax error"):
        Variant(name="x", user="{{ text")


def test_param_types_checked_early():
    with pytest.raises(SpecError, match=r"params.temperature: expected a number between 0 and 2 \(got 3\)"):
        Variant(name="x", params={"temperature": 3})
    with pytest.raises(SpecError, match="max_tokens"):
        Variant(name="x", params={"max_tokens": "ten"})


def test_response_format_shorthands():
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    assert normalize_response_format("json") == {"type": "json_object"}
    assert normalize_response_format("text") is None
    full = normalize_response_format({"json_schema": schema})
    assert full["type"] == "json_schema" and full["json_schema"]["schema"] == schema
    assert normalize_response_format(schema) == full
    with pytest.raises(ValueError):
        normalize_response_format("yaml")
    assert Variant(name="j", response_format="json").wants_json


def test_local_image_becomes_data_url(tmp_path):
    from PIL import Image

    png = tmp_path / "pic.png"
    Image.new("RGB", (8, 8)).save(png)
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")  # a PNG signature, then nothing an image has
    v = Variant(name="img", user="What is in {{ name }}?", images=["{{ file }}"], image_detail="low")
    msgs = v.render({"name": "the picture", "file": "pic.png"}, base_dir=tmp_path)
    parts = msgs[0]["content"]
    assert parts[0] == {"type": "text", "text": "What is in the picture?"}
    url = parts[1]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",")[1]).startswith(b"\x89PNG")
    assert parts[1]["image_url"]["detail"] == "low"
    with pytest.raises(DataError, match="not found"):
        v.render({"name": "x", "file": "missing.png"}, base_dir=tmp_path)
    with pytest.raises(DataError, match=r"Image 'fake.png' for variant 'img'.*not a readable image"):
        v.render({"name": "x", "file": "fake.png"}, base_dir=tmp_path)


def test_grid_expands_parameters():
    v = Variant(name="v", params={"max_tokens": 5})
    out = grid(v, temperature=[0, 0.7], top_p=[1])
    assert [x.name for x in out] == ["v[temperature=0,top_p=1]", "v[temperature=0.7,top_p=1]"]
    assert out[1].params == {"max_tokens": 5, "temperature": 0.7, "top_p": 1}


def test_target_parse():
    assert Target.parse("azure:gpt4o-prod") == Target(profile="azure", model="gpt4o-prod")
    assert Target.parse("local").label == "local"
    assert Target.parse({"profile": "openai", "model": "gpt-4o"}).label == "openai:gpt-4o"
