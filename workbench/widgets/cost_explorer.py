"""The cost explorer: paste text or upload an image, pick models and detail, see what it costs.

::

    CostExplorer("Summarise this contract ...", image="photo.png", models=["gpt-4o", "gpt-4o-mini", "o4-mini"])

Shows, from the tokens/costs core (:mod:`workbench.viz`): the token view of the text for each tokenizer among
the chosen models, the image as each vision model sees it with its tile or patch grid, and the cost comparison
table. :func:`explore` computes all of it without widgets.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ipywidgets as widgets
from traitlets import Int, Unicode

from ..catalog import load_catalog
from ..errors import DataError, WorkbenchError
from .fallback import StaticFallback, esc, hide_snapshots_widget

DEFAULT_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1-mini", "o4-mini")
DETAILS = ("auto", "low", "high")
def chat_models() -> list[str]:
    """Catalog models that take chat messages (the choices of the model picker)."""
    return [m.name for m in load_catalog().models.values() if m.supports("chat")]


def image_data_url(data: bytes) -> str:
    """A ``data:`` URL for uploaded image bytes (checked, the format read from the bytes, not from a file name)."""
    from ..images import data_url

    return data_url(data, "the uploaded image")


def prompt_messages(text: str, image: bytes | None, detail: str) -> list[dict[str, Any]]:
    """One user message: the text, and the image as a content part at ``detail``."""
    if image is None:
        return [{"role": "user", "content": text}]
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    parts.append({"type": "image_url", "image_url": {"url": image_data_url(image), "detail": detail}})
    return [{"role": "user", "content": parts}]


@dataclass
class Exploration:
    """What the explorer shows, as HTML fragments and the comparison table."""

    tokens_html: str = ""
    image_html: str = ""
    tools_html: str = ""
    table: Any = None  # pandas DataFrame from workbench.viz.compare_models
    table_html: str = ""
    notes: list[str] = field(default_factory=list)

    def to_html(self) -> str:
        notes = "".join(f'<div style="color:#b06000;font-size:12px">⚠ {esc(n)}</div>' for n in self.notes)
        return notes + self.tokens_html + self.image_html + self.tools_html + self.table_html


def tool_costs(tools: Sequence[Any], models: Sequence[str], calls: int = 1000) -> list[dict[str, Any]]:
    """What a variant's tool definitions add to every call, per model: their tokens (the cookbook's rule, an
    estimate) and the input price of those tokens per call and per ``calls`` calls."""
    from ..costs import token_cost
    from ..tokens import count_messages
    from ..tools import normalize_tools

    defined = normalize_tools(list(tools))
    rows = []
    for model in models:
        info = load_catalog().resolve(model)
        if not info.supports("tools"):
            rows.append({"model": model, "tokens": None, "note": "does not take tools"})
            continue
        n = count_messages([], info, tools=defined).tools
        per_call = float(token_cost(info, n, 0).usd)
        rows.append({"model": model, "tokens": n, "per_call_usd": per_call, "per_calls_usd": per_call * calls,
                     "calls": calls})
    return rows


def tool_costs_html(tools: Sequence[Any], models: Sequence[str], calls: int = 1000) -> str:
    """:func:`tool_costs` as a small table (empty without tools)."""
    if not tools:
        return ""
    from ..formatting import usd

    body = []
    for r in tool_costs(tools, models, calls):
        if r["tokens"] is None:
            body.append(f"<tr><td>{esc(r['model'])}</td><td colspan=3>{esc(r['note'])}</td></tr>")
            continue
        body.append(f"<tr><td>{esc(r['model'])}</td><td>{r['tokens']:,}</td><td>{esc(usd(r['per_call_usd']))}</td>"
                    f"<td>{esc(usd(r['per_calls_usd']))}</td></tr>")
    return (f'<div class="wb-tool-costs" style="font-size:12px"><b>Tool definitions</b> ({len(tools)} function'
            f'{"s" if len(tools) != 1 else ""}, sent with every call; tokens by the OpenAI cookbook\'s rule, an '
            f'estimate)<table><tr><th>model</th><th>tokens per call</th><th>input cost per call</th>'
            f'<th>per {calls:,} calls</th></tr>{"".join(body)}</table></div>')


def token_views_html(text: str, models: Sequence[str]) -> tuple[str, list[str]]:
    """A token view of ``text`` for each distinct tokenizer among ``models`` (the first model of each)."""
    from ..catalog import resolve
    from ..viz import TokenView

    if not text:
        return '<div style="color:#888;font-size:12px">Type or paste text to see its tokens.</div>', []
    seen, out, notes = set(), [], []
    for m in models:
        try:
            enc = resolve(m).encoding
        except WorkbenchError as e:
            notes.append(str(e))
            continue
        if enc in seen:
            continue
        seen.add(enc)
        try:
            out.append(TokenView(text, m).to_html())
        except WorkbenchError as e:
            notes.append(f"{m}: {e}")
    return "".join(f'<div style="margin:4px 0">{h}</div>' for h in out), notes


def image_views_html(image: bytes | None, models: Sequence[str], detail: str) -> tuple[str, list[str]]:
    """The image as the vision models among ``models`` see it, with its tile or patch grid.

    Models that see the same picture on the same grid (gpt-4o and gpt-4o-mini bill the same tiles at different
    rates) share one picture; the others' token counts are listed under it.
    """
    from ..catalog import resolve
    from ..viz import ImageView

    if image is None:
        return "", []
    groups: dict[tuple, list[ImageView]] = {}
    notes, skipped = [], []
    for m in models:
        try:
            info = resolve(m)
        except WorkbenchError as e:
            notes.append(str(e))
            continue
        if not info.has_vision:
            skipped.append(info.name)
            continue
        try:
            view = ImageView(image, info.name, detail)
        except WorkbenchError as e:
            notes.append(f"{m}: {e}")
            continue
        r = view.result
        groups.setdefault((r.rule, r.resized, r.grid, r.budgeted_as), []).append(view)
    out = []
    for views in groups.values():
        also = "".join(f"<div>same grid on {esc(v.result.model)}: <b>{v.result.tokens:,} tokens</b></div>"
                       for v in views[1:])
        out.append(f'<div style="margin:6px 0">{views[0].to_html()}'
                   + (f'<div style="font:12px system-ui,sans-serif;color:#333">{also}</div>' if also else "")
                   + "</div>")
    if skipped:
        notes.append(f"no image input on {', '.join(skipped)}: the cost table leaves their image out")
    return "".join(out), notes


def cost_table(text: str, image: bytes | None, models: Sequence[str], detail: str, output_tokens: int,
               calls: int = 1000):
    """The comparison table (:func:`workbench.viz.compare_models`) for the prompt, and its HTML."""
    from ..viz import compare_models, comparison_html

    prompts: dict[str, Any] = {"text": text} if text else {}
    if image is not None:
        prompts["text + image" if text else "image"] = prompt_messages(text, image, detail)
    if not prompts or not models:
        return None, ""
    df = compare_models(prompts, list(models), output_tokens=output_tokens, calls=calls)
    return df, comparison_html(df)


def explore(text: str, image: bytes | None, models: Sequence[str], detail: str = "auto", output_tokens: int = 200,
            calls: int = 1000, tools: Sequence[Any] = ()) -> Exploration:
    """Everything the explorer shows, computed without widgets (``tools``: function definitions sent with
    every call, priced per model)."""
    ex = Exploration()
    if not models:
        ex.notes.append("pick at least one model")
        return ex
    try:
        ex.tools_html = tool_costs_html(tools, models, calls)
    except WorkbenchError as e:
        ex.notes.append(str(e))
    ex.tokens_html, notes = token_views_html(text, models)
    ex.notes += notes
    ex.image_html, notes = image_views_html(image, models, detail)
    ex.notes += notes
    try:
        ex.table, ex.table_html = cost_table(text, image, models, detail, output_tokens, calls)
    except WorkbenchError as e:
        ex.notes.append(str(e))
    return ex


def _read_image(image: Any) -> tuple[bytes | None, str]:
    if image is None:
        return None, ""
    if isinstance(image, (bytes, bytearray, memoryview)):
        return bytes(image), "image"
    path = Path(image)
    return path.read_bytes(), path.name


class CostExplorer(StaticFallback, widgets.VBox):
    """Text and an optional image against several models: token views, image grids and the cost table.

    Traits: ``text``, ``detail``, ``output_tokens``; the image is set with :meth:`set_image` or the upload
    button; the chosen models are ``models`` (a tuple, mirrored by the picker).
    """

    text = Unicode("")
    detail = Unicode("auto")
    output_tokens = Int(200)

    def __init__(self, text: str = "", image: Any = None, models: Sequence[str] = DEFAULT_MODELS,
                 detail: str = "auto", output_tokens: int = 200, calls: int = 1000, tools: Sequence[Any] = ()):
        from ..tools import normalize_tools

        self.calls = calls
        try:
            self.tools = normalize_tools(list(tools))  # checked here, like a variant's: a bad schema is refused
        except ValueError as e:
            raise DataError(f"CostExplorer tools: {e}") from None
        self.image: bytes | None = None
        self.image_name = ""
        self.exploration = Exploration()
        self._image_cache: dict[tuple, tuple[str, list[str]]] = {}
        options = chat_models()
        for m in models:
            if m not in options:
                options.append(m)
        self.text_area = widgets.Textarea(value=text, placeholder="Paste a prompt, a document, a few-shot example…",
                                          rows=6, layout=widgets.Layout(width="100%"), continuous_update=True)
        self.text_area.add_class("wb-cost-text")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload image")
        self.clear_button = widgets.Button(description="Remove image", icon="times", disabled=True)
        self.image_label = widgets.HTML()
        self.model_picker = widgets.SelectMultiple(options=options, value=tuple(models), rows=min(8, len(options)),
                                                   description="models")
        self.detail_toggle = widgets.ToggleButtons(options=list(DETAILS), value=detail, description="detail",
                                                   style={"button_width": "60px"})
        self.output_box = widgets.BoundedIntText(value=output_tokens, min=0, max=1_000_000,
                                                 description="output tok", tooltip="output tokens assumed per call")
        self.tokens_out = widgets.HTML()
        self.tokens_out.add_class("wb-token-view")
        self.image_out = widgets.HTML()
        self.image_out.add_class("wb-image-view")
        self.table_out = widgets.HTML()
        self.table_out.add_class("wb-cost-table")
        self.tools_out = widgets.HTML()
        self.notes_out = widgets.HTML()
        super().__init__(children=[
            hide_snapshots_widget(), self.text_area,
            widgets.HBox([self.upload, self.clear_button, self.image_label]),
            widgets.HBox([self.model_picker, widgets.VBox([self.detail_toggle, self.output_box])]),
            self.notes_out, widgets.HTML("<b>Tokens</b>"), self.tokens_out, self.image_out, self.tools_out,
            widgets.HTML("<b>Cost</b>"), self.table_out,
        ])
        self.add_class("wb-cost-explorer")
        self._updating = True
        self.text, self.detail, self.output_tokens = text, detail, output_tokens
        self._updating = False
        self.text_area.observe(lambda c: setattr(self, "text", c["new"]), names="value")
        self.detail_toggle.observe(lambda c: setattr(self, "detail", c["new"]), names="value")
        self.output_box.observe(lambda c: setattr(self, "output_tokens", c["new"]), names="value")
        self.model_picker.observe(lambda _: self.refresh(), names="value")
        self.upload.observe(self._uploaded, names="value")
        self.clear_button.on_click(lambda _: self.set_image(None))
        self.observe(self._trait_changed, names=["text", "detail", "output_tokens"])
        if image is not None:
            data, name = _read_image(image)
            self.set_image(data, name)
        else:
            self.refresh()

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(self.model_picker.value)

    @models.setter
    def models(self, value: Sequence[str]) -> None:
        self.model_picker.value = tuple(value)

    def _trait_changed(self, change: dict) -> None:
        controls = {"text": self.text_area, "detail": self.detail_toggle, "output_tokens": self.output_box}
        mirror = controls[change["name"]]
        if mirror.value != change["new"]:
            mirror.value = change["new"]
        if not self._updating:
            self.refresh()

    def _uploaded(self, change: dict) -> None:
        files = change["new"]
        if not files:
            return
        f = files[0]
        self.set_image(bytes(f["content"]), f.get("name", "upload"))

    def set_image(self, data: bytes | None, name: str = "image") -> None:
        """Use ``data`` (image bytes) as the image, or remove it with ``None``."""
        self.image, self.image_name = data, (name if data is not None else "")
        self.clear_button.disabled = data is None
        self.image_label.value = (f'<span style="font-size:12px;color:#555">{esc(name)} · {len(data):,} bytes</span>'
                                  if data is not None else "")
        self.refresh()

    def _images(self, models: Sequence[str]) -> tuple[str, list[str]]:
        if self.image is None:
            return "", []
        key = (hashlib.sha256(self.image).hexdigest(), tuple(models), self.detail)
        if key not in self._image_cache:
            self._image_cache = {key: image_views_html(self.image, models, self.detail)}
        return self._image_cache[key]

    def refresh(self) -> None:
        """Recompute the views (called on every change; token counts are fast, image views are cached)."""
        models = self.models
        ex = Exploration()
        if not models:
            ex.notes.append("pick at least one model")
        else:
            ex.tokens_html, notes = token_views_html(self.text, models)
            ex.notes += notes
            ex.image_html, notes = self._images(models)
            ex.notes += notes
            try:
                ex.tools_html = tool_costs_html(self.tools, models, self.calls)
            except WorkbenchError as e:
                ex.notes.append(str(e))
            try:
                ex.table, ex.table_html = cost_table(self.text, self.image, models, self.detail, self.output_tokens,
                                                     self.calls)
            except WorkbenchError as e:
                ex.notes.append(str(e))
        self.exploration = ex
        self.notes_out.value = "".join(f'<div style="color:#b06000;font-size:12px">⚠ {esc(n)}</div>'
                                       for n in ex.notes)
        self.tokens_out.value = ex.tokens_html
        self.image_out.value = ex.image_html
        self.tools_out.value = ex.tools_html
        self.table_out.value = ex.table_html or '<div style="color:#888;font-size:12px">Nothing to price yet.</div>'
        self.refresh_static(debounce=1.0)

    def static_html(self) -> str:
        head = (f'<div style="font:13px system-ui,sans-serif"><b>Cost explorer</b> · {len(self.text):,} characters'
                + (f" · image {esc(self.image_name)}" if self.image is not None else "")
                + f" · detail {esc(self.detail)} · {esc(', '.join(self.models))}</div>")
        return head + self.exploration.to_html()

    def static_text(self) -> str:
        return f"<CostExplorer: {len(self.text)} characters, image: {self.image_name or 'none'}, models {self.models}>"
