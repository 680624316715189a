"""The token view, image view, charts and comparison table render in a notebook and in a static HTML file."""

from __future__ import annotations

import io
import math
import re
from html.parser import HTMLParser

import pandas as pd
import pytest
from PIL import Image

from workbench.errors import DataError
from workbench.tokens import count_text, encode
from workbench.viz import (
    ImageView,
    TokenView,
    compare_models,
    comparison_html,
    context_chart,
    cost_chart,
    style_comparison,
    tokens_chart,
)
from workbench.viz.image_view import GRID_COLOUR, PAD_COLOUR

TEXT = "Hello  world <b>&</b>\n\tdef f(x):\n        return 'é' 👨‍👩‍👧"


class _Spans(HTMLParser):
    """Collects the token spans (title + visible text) of a token view; fails on unbalanced tags."""

    def __init__(self):
        super().__init__()
        self.tokens: list[tuple[str, str]] = []
        self.stack: list[str] = []
        self._current: list | None = None
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        if tag in ("img", "br", "meta"):
            return
        self.stack.append(tag)
        title = dict(attrs).get("title")
        if tag == "span" and title and title.startswith("id"):
            self._current = [title, "", len(self.stack)]

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"unbalanced </{tag}>"
        if self._current and len(self.stack) == self._current[2]:
            self.tokens.append((self._current[0], self._current[1]))
            self._current = None
        self.stack.pop()

    def handle_data(self, data):
        if self._current is not None:
            self._current[1] += data


def parse(html: str) -> _Spans:
    p = _Spans()
    p.feed(html)
    p.close()
    assert not p.stack
    return p


# ----------------------------------------------------------------------------------------------- token view


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4"])
def test_token_view_shows_every_token_with_its_id(model):
    view = TokenView(TEXT, model)
    html = view.to_html()
    spans = parse(html).tokens
    ids = [int(i) for title, _ in spans for i in re.findall(r"\d+", title)]
    assert ids == encode(TEXT, model) and view.count == count_text(TEXT, model)
    assert f"{view.count} tokens" in html
    shown = "".join(text for _, text in spans)
    # whitespace made visible, and the visible text maps back to the original
    assert shown.replace("·", " ").replace("↵\n", "\n").replace("→", "\t") == TEXT
    assert "<b>&</b>" not in html and "&lt;" in html and "&amp;" in html  # escaped
    assert "<script" not in html and "<style" not in html  # inline styles only


def test_token_view_alternates_colours_and_keeps_split_characters_whole():
    view = TokenView("a b c d e f 👨‍👩‍👧", "gpt-4")
    colours = re.findall(r"background:(#[0-9a-f]{6})", view.to_html())
    assert all(a != b for a, b in zip(colours, colours[1:]))
    assert any(len(ids) > 1 for ids, _ in view.pieces)  # the family emoji spans several cl100k tokens
    assert any(title.startswith("ids ") for title, _ in parse(view.to_html()).tokens)


def test_token_view_cuts_long_texts_but_keeps_the_count():
    view = TokenView(" word" * 3000, "gpt-4o", max_tokens=100)
    html = view.to_html()
    assert len(parse(html).tokens) == 100 and "showing the first 100 of 3,000 tokens" in html


# ----------------------------------------------------------------------------------------------- image view


def test_image_view_draws_the_tile_grid_on_the_resized_image():
    img = Image.new("RGB", (2048, 4096), (255, 255, 255))
    view = ImageView(img, "gpt-4o", "high")
    assert view.result.tokens == 1105
    pic = view.picture()
    scale = 640 / 1536  # 2 x 3 tiles of 512 px = 1024 x 1536, shown at most 640 px tall
    assert pic.size == (round(1024 * scale), 640)
    assert pic.getpixel((round(512 * scale), 100)) == GRID_COLOUR  # the tile boundary
    assert pic.getpixel((100, 100))[:3] == (255, 255, 255)  # the image itself
    assert pic.getpixel((round(900 * scale), 100)) == PAD_COLOUR  # beyond 768 px: billed but empty
    assert Image.open(io.BytesIO(view._repr_png_())).size == pic.size


def test_image_view_patch_grid_and_arithmetic_in_html():
    view = ImageView((1800, 2400), "gpt-4.1-mini")
    pic = view.picture()
    scale = 640 / (44 * 32)
    assert pic.getpixel((round(32 * scale), 50)) == GRID_COLOUR
    html = view.to_html()
    assert html.count('src="data:image/png;base64,') == 1
    assert "33 x 44 = 1452" in html and "budgeted as high" in html
    parse(html)


def test_image_view_low_detail_and_unknown_size():
    low = ImageView(Image.new("RGB", (1024, 2048)), "gpt-4o", "low")
    assert low.result.tokens == 85 and low.picture().size == (256, 512)
    assert ImageView(None, "gpt-4o").result.tokens == 1445


# ----------------------------------------------------------------------------------------------- charts, table


@pytest.fixture
def per_variant():
    return pd.DataFrame({
        "variant": ["v1", "v1", "v2", "v2"], "model": ["gpt-4o", "gpt-4o-mini"] * 2,
        "input_tokens": [120, 120, 300, 300], "output_tokens": [40, 40, 90, 90],
        "usd": [0.0007, 0.00004, 0.00165, 0.0001], "context_window": [128_000] * 4, "as_of": ["2026-08"] * 4,
    })


def test_charts_return_figures_that_render(per_variant):
    from matplotlib.figure import Figure

    for fig in (tokens_chart(per_variant), cost_chart(per_variant), context_chart(per_variant)):
        assert isinstance(fig, Figure)
        assert fig._repr_png_().startswith(b"\x89PNG")
        assert fig.to_html().startswith('<img src="data:image/png;base64,')
    ax = cost_chart(per_variant).axes[0]
    assert "2026-08" in ax.get_title()
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["v1\ngpt-4o", "v1\ngpt-4o-mini", "v2\ngpt-4o", "v2\ngpt-4o-mini"]


def test_context_chart_marks_overflow_red(per_variant):
    df = per_variant.assign(input_tokens=[120, 120, 127_990, 300])
    ax = context_chart(df).axes[0]
    output_bars = ax.containers[1]
    reds = [b.get_facecolor()[:3] for b in output_bars]
    assert reds[2] != reds[0]


def test_charts_say_which_column_is_missing(per_variant):
    with pytest.raises(DataError, match=r"needs the column\(s\) \['input_tokens'\]"):
        tokens_chart(per_variant.drop(columns=["input_tokens"]))


def test_comparison_table_dollars_per_thousand_calls():
    df = compare_models(
        {
            "hello": "Hello there",
            "image": [
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}
            ],
        },
        ["gpt-4o", "gpt-4o-mini", "gpt-4"],
        output_tokens=100,
    )
    row = df[(df.prompt == "hello") & (df.model == "gpt-4o")].iloc[0]
    n = count_text("Hello there", "gpt-4o") + 3 + 1 + 3  # message framing, role "user", reply priming
    assert row.input_tokens == n
    assert row.usd_per_1000_calls == pytest.approx(1000 * (n * 2.5 + 100 * 10.0) / 1e6)
    no_vision = df[(df.prompt == "image") & (df.model == "gpt-4")].iloc[0]
    assert math.isnan(no_vision.usd_per_call) and "does not accept images" in no_vision.note
    html = comparison_html(df)
    assert "Dollars per 1,000 calls at list prices as of 2026-08" in html
    assert style_comparison(df).data is df


# ----------------------------------------------------------------------------------------------- rendering


def test_views_have_rich_reprs_for_jupyter():
    from IPython.core.formatters import DisplayFormatter

    fmt = DisplayFormatter()
    bundle, _ = fmt.format(TokenView("hi there", "gpt-4o"))
    assert "workbench-token-view" in bundle["text/html"]
    bundle, _ = fmt.format(ImageView((1024, 1024), "gpt-4o", "high"))
    assert bundle["image/png"] and "765 tokens" in bundle["text/html"]


def test_static_html_report_is_self_contained(tmp_path, artifacts, per_variant):
    parts = [
        TokenView(TEXT, "gpt-4o").to_html(),
        ImageView((2048, 4096), "gpt-4o", "high").to_html(),
        tokens_chart(per_variant).to_html(),
        comparison_html(compare_models(["Hello"], ["gpt-4o", "gpt-4o-mini"], output_tokens=10)),
    ]
    page = "<!doctype html><html><head><meta charset='utf-8'><title>tokens</title></head><body>" + "".join(parts)
    page += "</body></html>"
    path = artifacts / "token-views.html"
    path.write_text(page, "utf-8")
    text = path.read_text("utf-8")
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # nothing fetched from the network
    assert "<script" not in text
    assert text.count("data:image/png;base64,") == 2
    parsed = parse(text.split("<body>", 1)[1].split("</body>")[0])
    assert {"img", "span", "pre", "table"} <= parsed.tags


@pytest.mark.notebook
def test_views_render_in_an_executed_notebook_and_its_html_export():
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from workbench.viz import TokenView, ImageView\nTokenView('Hello  world', 'gpt-4o')"
        ),
        nbformat.v4.new_code_cell("ImageView((1800, 2400), 'gpt-4.1-mini')"),
    ]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    token_out, image_out = (cell.outputs[0]["data"] for cell in nb.cells)
    assert "workbench-token-view" in token_out["text/html"] and 'title="id 13225"' in token_out["text/html"]
    assert "image/png" in image_out and "1452" in image_out["text/html"]
    body, _ = HTMLExporter().from_notebook_node(nb)
    assert "workbench-token-view" in body and "workbench-image-view" in body
