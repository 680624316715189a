"""The cost explorer, driven headless: type, upload an image, pick models and detail; assert on the views."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime

import pytest
from PIL import Image

from workbench.errors import DataError
from workbench.images import image_tokens
from workbench.tokens import count_text
from workbench.widgets import CostExplorer
from workbench.widgets.cost_explorer import explore, image_data_url, prompt_messages
from workbench.widgets.fallback import FALLBACK_CLASS


def png(size=(1024, 700)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


def upload(widget, data: bytes, name: str = "photo.png") -> None:
    widget.upload.value = ({"name": name, "type": "image/png", "size": len(data), "content": memoryview(data),
                            "last_modified": datetime.now(UTC)},)


def shown_count(html: str) -> int:
    return int(re.search(r"<b>([\d,]+) tokens</b>", html).group(1).replace(",", ""))


def test_typing_shows_the_tokens_and_prices_each_model():
    ce = CostExplorer("Hello world", models=["gpt-4o", "gpt-4o-mini"])
    assert shown_count(ce.tokens_out.value) == count_text("Hello world", "gpt-4o")
    assert ce.tokens_out.value.count("workbench-token-view") == 1  # one view per tokenizer, both are o200k
    assert "gpt-4o-mini" in ce.table_out.value and "<table" in ce.table_out.value
    ce.text_area.value = "Hello world, and a much longer prompt about the weather in Lisbon in June."
    assert ce.text == ce.text_area.value
    assert shown_count(ce.tokens_out.value) == count_text(ce.text, "gpt-4o")
    df = ce.exploration.table
    assert list(df["model"]) == ["gpt-4o", "gpt-4o-mini"] and (df["input_tokens"] > 10).all()


def test_one_token_view_per_tokenizer():
    ce = CostExplorer("tokenizers differ", models=["gpt-4o", "gpt-4", "smollm2-135m-instruct"])
    assert ce.tokens_out.value.count("workbench-token-view") == 3
    assert "o200k_base" in ce.tokens_out.value and "cl100k_base" in ce.tokens_out.value
    ce.models = ["gpt-4o"]
    assert ce.tokens_out.value.count("workbench-token-view") == 1


def test_uploading_an_image_shows_its_grid_and_prices_it():
    ce = CostExplorer("What is in this picture?", models=["gpt-4o", "gpt-4.1-mini"])
    assert ce.image_out.value == "" and ce.clear_button.disabled
    upload(ce, png())
    assert ce.image_name == "photo.png" and not ce.clear_button.disabled
    assert ce.image_out.value.count("<img") == 2
    assert "512 px tiles" in ce.image_out.value and "32 px patches" in ce.image_out.value
    ce.models = ["gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "o4-mini"]  # two grids: one picture each
    assert ce.image_out.value.count("<img") == 2
    assert "same grid on gpt-4o-mini" in ce.image_out.value and "same grid on o4-mini" in ce.image_out.value
    ce.models = ["gpt-4o", "gpt-4.1-mini"]
    df = ce.exploration.table
    with_image = df[df["prompt"] == "text + image"].set_index("model")["input_tokens"]
    text_only = df[df["prompt"] == "text"].set_index("model")["input_tokens"]
    expected = image_tokens((1024, 700), "gpt-4o", "auto").tokens
    assert with_image["gpt-4o"] - text_only["gpt-4o"] == expected  # exactly the image's tokens


def test_detail_changes_the_image_cost():
    ce = CostExplorer("", image=png(), models=["gpt-4o"])
    high = int(ce.exploration.table["input_tokens"].iloc[0])
    ce.detail_toggle.value = "low"
    assert ce.detail == "low"
    low = int(ce.exploration.table["input_tokens"].iloc[0])
    assert low < high and "detail low" in ce.image_out.value
    assert low - image_tokens((1024, 700), "gpt-4o", "low").tokens < 10


def test_a_text_model_notes_that_it_takes_no_image(tmp_path):
    path = tmp_path / "small.png"
    path.write_bytes(png((300, 200)))
    ce = CostExplorer("hi", image=path, models=["gpt-4o", "smollm2-135m-instruct"])
    assert ce.image_name == "small.png"
    assert "no image input on smollm2-135m-instruct" in ce.notes_out.value
    assert ce.image_out.value.count("<img") == 1
    ce.clear_button.click()
    assert ce.image is None and ce.image_out.value == "" and "image" not in ce.notes_out.value


def test_output_tokens_feed_the_table():
    ce = CostExplorer("hello", models=["gpt-4o"], output_tokens=0)
    cheap = float(ce.exploration.table["usd_per_call"].iloc[0])
    ce.output_box.value = 1000
    assert ce.output_tokens == 1000
    assert float(ce.exploration.table["usd_per_call"].iloc[0]) > cheap


def test_no_models_no_text():
    ce = CostExplorer("", models=[])
    assert "pick at least one model" in ce.notes_out.value
    assert "Nothing to price" in ce.table_out.value


def test_static_snapshot_has_the_views_and_the_table():
    ce = CostExplorer("snap", image=png((600, 400)), models=["gpt-4o"])
    bundle = ce.static_bundle()
    html = bundle["text/html"]
    assert FALLBACK_CLASS in html and "data:image/png;base64," in html and "workbench-token-view" in html
    assert "<table" in html and "CostExplorer" in bundle["text/plain"]


def test_pure_helpers():
    data = png((40, 30))
    assert image_data_url(data).startswith("data:image/png;base64,")
    msgs = prompt_messages("look", data, "high")
    assert msgs[0]["content"][1]["image_url"]["detail"] == "high"
    assert prompt_messages("plain", None, "auto") == [{"role": "user", "content": "plain"}]
    ex = explore("abc", data, ["gpt-4o"], "low")
    assert ex.table is not None and "<img" in ex.to_html()
    with pytest.raises(DataError):
        image_data_url(b"not an image")
