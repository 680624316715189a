"""Image tokens: the published worked examples hold exactly; sizes come from files, bytes and data URLs."""

from __future__ import annotations

import base64
import io
import math

import pytest
from PIL import Image

from workbench.catalog import load_catalog
from workbench.errors import DataError
from workbench.images import (
    image_size,
    image_tokens,
    iter_image_parts,
    message_image_tokens,
    parse_size,
    patch_tokens,
    tile_tokens,
)
from workbench.tokens import count_messages


def png_bytes(w: int, h: int, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (200, 30, 30)).save(buf, format=fmt)
    return buf.getvalue()


def data_url(w: int, h: int, fmt: str = "PNG") -> str:
    return f"data:image/{fmt.lower()};base64," + base64.b64encode(png_bytes(w, h, fmt)).decode()


# ------------------------------------------------------------------------------------ worked examples (facts §6)


@pytest.mark.parametrize("model,size,detail,tokens,resized,tiles", [
    ("gpt-4o", (2048, 4096), "high", 1105, (768, 1536), 6),
    ("gpt-4o-mini", (2048, 4096), "high", 36835, (768, 1536), 6),
    ("gpt-4o", (4096, 8192), "low", 85, (256, 512), 0),
    ("gpt-4o", (1024, 1024), "high", 765, (768, 768), 4),
    ("gpt-4o", (512, 512), "high", 255, (512, 512), 1),
    ("gpt-4.1", (2048, 4096), "high", 1105, (768, 1536), 6),
    ("o1", (1024, 1024), "high", 75 + 4 * 150, (768, 768), 4),
    ("computer-use-preview", (1024, 1024), "low", 65, (512, 512), 0),
])
def test_tile_rule_worked_examples(model, size, detail, tokens, resized, tiles):
    r = image_tokens(size, model, detail)
    assert (r.tokens, r.resized, r.tiles, r.rule) == (tokens, resized, tiles, "tile")
    assert f"= {tokens}" in r.arithmetic


@pytest.mark.parametrize("model,size,patches,resized,multiplier", [
    ("gpt-4.1-mini", (1024, 1024), 1024, (1024, 1024), 1.62),
    ("gpt-4.1-mini", (1800, 2400), 1452, (1056, 1408), 1.62),
    ("gpt-4.1-nano", (1800, 2400), 1452, (1056, 1408), 2.46),
    ("o4-mini", (1024, 1024), 1024, (1024, 1024), 1.72),
])
def test_patch_rule_worked_examples(model, size, patches, resized, multiplier):
    r = image_tokens(size, model, "high")
    assert (r.patches, r.resized, r.rule) == (patches, resized, "patch")
    assert r.tokens == math.ceil(patches * multiplier)
    assert r.grid == ((33, 44) if patches == 1452 else (32, 32))


def test_patch_rule_never_exceeds_the_cap_and_detail_does_not_matter():
    for w, h in [(4000, 3000), (10000, 100), (33, 9000), (1537 * 32, 32), (3000, 3001)]:
        r = image_tokens((w, h), "gpt-4.1-mini", "low")
        assert r.patches <= 1536 and r.tokens == math.ceil(r.patches * 1.62)
        assert image_tokens((w, h), "gpt-4.1-mini", "high").tokens == r.tokens


def test_high_detail_resizing_rules():
    assert image_tokens((1920, 1080), "gpt-4o", "high").resized == (1366, 768)  # shortest side to 768
    assert image_tokens((300, 200), "gpt-4o", "high").resized == (300, 200)  # never scaled up
    assert image_tokens((5000, 500), "gpt-4o", "high").resized == (2048, 205)  # fit 2048 first, short side < 768
    assert image_tokens((5000, 500), "gpt-4o", "high").tiles == 4


def test_auto_is_budgeted_as_high_and_says_so():
    auto = image_tokens((2048, 4096), "gpt-4o")
    assert auto.detail == "auto" and auto.budgeted_as == "high" and auto.tokens == 1105
    assert "auto is budgeted as high" in auto.arithmetic


def test_every_vision_model_in_the_catalog_has_a_rule():
    for info in load_catalog().models.values():
        if info.has_vision:
            r = image_tokens((1024, 1024), info.name, "high")
            assert r.tokens > 0 and r.rule == info.image.rule


def test_non_vision_model_refuses_images_by_name():
    with pytest.raises(DataError, match="gpt-35-turbo does not accept images.*gpt-4o"):
        image_tokens((100, 100), "gpt-3.5-turbo")
    with pytest.raises(DataError, match="detail='medium'"):
        image_tokens((100, 100), "gpt-4o", "medium")


def test_pure_rule_functions():
    rule = load_catalog().get("gpt-4o").image
    assert tile_tokens(2048, 4096, rule, "high")[1:3] == (1105, (2, 3))
    assert patch_tokens(1800, 2400, load_catalog().get("gpt-4.1-nano").image)[1:3] == (math.ceil(1452 * 2.46), 1452)


# ------------------------------------------------------------------------------------------------- reading sizes


def test_image_size_from_file_bytes_pil_and_data_url(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(png_bytes(640, 480))
    assert image_size(path) == (640, 480)
    assert image_size(str(path)) == (640, 480)
    assert image_size(f"file://{path}") == (640, 480)
    assert image_size(png_bytes(33, 17, "JPEG")) == (33, 17)
    assert image_size(Image.new("RGB", (5, 6))) == (5, 6)
    assert image_size(data_url(800, 600, "WEBP")) == (800, 600)
    assert image_tokens(path, "gpt-4o", "high").tokens == 85 + 2 * 170  # 640x480: 2 x 1 tiles, no resize


def test_corrupt_and_unsupported_images_are_named(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(png_bytes(64, 64)[:40])
    with pytest.raises(DataError, match="broken.png: not a readable image"):
        image_size(broken)
    text = tmp_path / "notes.png"
    text.write_text("hello")
    with pytest.raises(DataError, match="notes.png: not a readable image"):
        image_tokens(text, "gpt-4o")
    bmp = tmp_path / "old.bmp"
    Image.new("RGB", (4, 4)).save(bmp)
    with pytest.raises(DataError, match="old.bmp: BMP images are not accepted"):
        image_size(bmp)
    with pytest.raises(DataError, match="missing.png: cannot read"):
        image_size(tmp_path / "missing.png")
    with pytest.raises(DataError, match="base64 payload is invalid"):
        image_size("data:image/png;base64,@@@not-base64@@@")


def test_animated_gif_is_refused():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ("red", "green", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    with pytest.raises(DataError, match="animated GIF"):
        image_size(buf.getvalue())


def test_parse_size():
    assert parse_size("2048x4096") == (2048, 4096)
    for bad in ("2048", "0x5", "axb", "-1x4"):
        with pytest.raises(DataError, match="WIDTHxHEIGHT"):
            parse_size(bad)


# ------------------------------------------------------------------------------------------------ in messages


def vision_messages(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(png_bytes(2048, 4096, "JPEG"))
    return [
        {"role": "system", "content": "Describe images."},
        {"role": "user", "content": [
            {"type": "text", "text": "What are these?"},
            {"type": "image_url", "image_url": {"url": data_url(1024, 1024), "detail": "high"}},
            {"type": "image_url", "image_url": {"url": str(path)}},  # no detail: auto, budgeted as high
            {"type": "image_url", "image_url": {"url": data_url(4096, 8192, "JPEG"), "detail": "low"}},
        ]},
    ]


def test_images_in_messages_are_found_and_counted(tmp_path):
    messages = vision_messages(tmp_path)
    parts = list(iter_image_parts(messages))
    assert [p.where for p in parts] == ["messages[1].content[1]", "messages[1].content[2]", "messages[1].content[3]"]
    assert [p.detail for p in parts] == ["high", None, "low"]
    assert [r.tokens for r in message_image_tokens(messages, "gpt-4o")] == [765, 1105, 85]
    counted = count_messages(messages, "gpt-4o")
    assert counted.images == 765 + 1105 + 85
    assert counted.total == counted.text + counted.images + counted.overhead
    assert any("auto" in n for n in counted.notes)
    # detail_default applies only where a part sets none
    assert count_messages(messages, "gpt-4o", detail_default="low").images == 765 + 85 + 85


def test_images_in_messages_for_patch_and_text_models(tmp_path):
    messages = vision_messages(tmp_path)
    # 1024x1024: 1024 patches; 2048x4096 and 4096x8192 (same shape, any detail): shrunk to 864x1728 = 27 x 54 patches
    assert [r.patches for r in message_image_tokens(messages, "gpt-4.1-mini")] == [1024, 1458, 1458]
    assert count_messages(messages, "gpt-4.1-mini").images == math.ceil(1024 * 1.62) + 2 * math.ceil(1458 * 1.62)
    with pytest.raises(DataError, match=r"messages\[1\].content\[1\].*gpt-4 does not accept images"):
        count_messages(messages, "gpt-4")


def test_remote_image_urls_are_budgeted_at_the_worst_case():
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/x.png"}}]}]
    (r,) = message_image_tokens(messages, "gpt-4o")
    assert r.tokens == 85 + 8 * 170 and not r.size_known  # 768x2048: 2 x 4 tiles, the most the rule allows
    assert message_image_tokens(messages, "gpt-4.1-nano")[0].tokens == math.ceil(1536 * 2.46)
    assert any("remote" in n for n in count_messages(messages, "gpt-4o").notes)


def test_corrupt_image_in_a_message_names_its_place():
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}
    messages = [{"role": "user", "content": [part]}]
    with pytest.raises(DataError, match=r"messages\[0\].content\[0\].*not a readable image"):
        count_messages(messages, "gpt-4o")
