"""An executed notebook as static, safe HTML for the report: outputs shown, code folded, widgets from saved state.

- **Model output cannot run**: HTML the notebook produced is sanitized with bleach (an allow-list of tags and
  attributes, ``data:`` images only); elements like ``<script>``/``<style>``/``<svg>`` are dropped with their
  content; links that are not http(s)/mailto/anchors are neutralised.
- **Widgets render from their saved state**: papermill stores the widget state in the notebook; boxes, HTML,
  labels, progress bars, buttons and output areas become static HTML (``<progress>``, not JavaScript).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from ..secrets import redact, shorten

OUTPUT_CHARS = 400  # longer outputs are cut in the report's tables (the full text is in results.jsonl)


def clip(text: Any, n: int = OUTPUT_CHARS) -> str:
    """``text`` masked, then cut to ``n`` characters with an ellipsis (:func:`workbench.secrets.shorten`)."""
    return shorten(text, n)


_ALLOWED_TAGS = {"a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
                 "div", "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p",
                 "pre", "progress", "q", "s", "samp", "small", "span", "strong", "sub", "summary", "sup", "table",
                 "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul"}
_ALLOWED_ATTRS = {"*": ["class", "title", "align"], "a": ["href", "title"], "img": ["src", "alt", "width", "height"],
                  "td": ["colspan", "rowspan"], "th": ["colspan", "rowspan", "scope"], "progress": ["value", "max"],
                  "ol": ["start"]}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# elements dropped with everything inside them (bleach would keep their text: CSS rules or code as prose)
_DROP_WITH_CONTENT = re.compile(r"<(style|script|template|noscript|iframe|object|svg|math)\b.*?(</\1\s*>|$)",
                                re.I | re.S)
_SNAPSHOT_CLASS = "wb-static-fallback"
_REF = "IPY_MODEL_"


def sanitize_html(fragment: str) -> Markup:
    """HTML from a notebook output or a widget, reduced to an allow-list (no script, no handler, no style,
    no remote image). Without bleach, the fragment is shown as escaped text."""
    try:
        import bleach
    except ImportError:  # pragma: no cover - bleach comes with nbconvert
        return Markup("<pre>{}</pre>").format(fragment)
    fragment = _DROP_WITH_CONTENT.sub("", redact(fragment))
    cleaned = bleach.clean(fragment, tags=_ALLOWED_TAGS, attributes=_ALLOWED_ATTRS,
                           protocols=["http", "https", "mailto", "data"], strip=True, strip_comments=True)
    # only inline images survive: a remote src would be a request the report must never make
    cleaned = re.sub(r'<img\b[^>]*\bsrc="(?!data:image/(?:png|jpeg|gif|webp);base64,)[^"]*"[^>]*>', "", cleaned)
    cleaned = re.sub(r'(<a\b[^>]*\bhref=")(?!https?:|mailto:|#)[^"]*"', r'\1#"', cleaned)
    return Markup(cleaned)


def markdown_html(text: str) -> Markup:
    try:
        import mistune
    except ImportError:  # pragma: no cover
        return Markup("<pre>{}</pre>").format(text)
    return sanitize_html(mistune.html(text))


def _text(value: Any) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


class NotebookRenderer:
    """Static HTML for an executed notebook: outputs shown, code folded, widgets drawn from saved state."""

    def __init__(self, nb: Mapping[str, Any]):
        self.nb = nb
        widgets = (nb.get("metadata") or {}).get("widgets") or {}
        self.widget_state = (widgets.get("application/vnd.jupyter.widget-state+json") or {}).get("state") or {}

    def render(self) -> Markup:
        parts = []
        for i, cell in enumerate(self.nb.get("cells") or []):
            parts.append(self.cell(i, cell))
        return Markup("".join(parts))

    def cell(self, index: int, cell: Mapping[str, Any]) -> Markup:
        kind = cell.get("cell_type")
        tags = (cell.get("metadata") or {}).get("tags") or []
        source = redact(_text(cell.get("source")))
        if kind == "markdown":
            cls = "md error-marker" if "papermill-error-cell-tag" in tags else "md"
            return Markup('<div class="nb-cell {}">{}</div>').format(cls, markdown_html(source))
        if kind != "code":
            return Markup("")
        label = "parameters injected by papermill" if "injected-parameters" in tags else (
            "parameters" if "parameters" in tags else "code")
        count = cell.get("execution_count")
        failed = bool((cell.get("metadata") or {}).get("papermill", {}).get("exception"))
        summary = f"{label}" + (f" · In [{count}]" if count else "")
        code = Markup('<details class="code"><summary>{}</summary><pre><code>{}</code></pre></details>').format(
            summary, source)
        outputs = cell.get("outputs") or []
        self._has_snapshot = any(_SNAPSHOT_CLASS in _text((o.get("data") or {}).get("text/html")) for o in outputs)
        outs = Markup("").join(self.output(o) for o in outputs)
        return Markup('<div class="nb-cell code-cell{}" id="cell-{}">{}<div class="outputs">{}</div></div>').format(
            " failed" if failed else "", index, code, outs)

    def output(self, out: Mapping[str, Any]) -> Markup:
        kind = out.get("output_type")
        if kind == "stream":
            text = _ANSI.sub("", redact(_text(out.get("text"))))
            if "\r" in text:  # progress bars redraw a line with carriage returns: keep the last state
                text = "\n".join(line.split("\r")[-1] for line in text.split("\n"))
            return Markup('<pre class="stream {}">{}</pre>').format(out.get("name", ""), text)
        if kind == "error":
            tb = _ANSI.sub("", redact("\n".join(out.get("traceback") or [])))
            return Markup('<pre class="error">{}: {}\n\n{}</pre>').format(
                out.get("ename"), redact(out.get("evalue", "")), tb)
        if kind in ("display_data", "execute_result"):
            return self.mime(out.get("data") or {})
        return Markup("")

    def mime(self, data: Mapping[str, Any]) -> Markup:
        view = data.get("application/vnd.jupyter.widget-view+json")
        if view and getattr(self, "_has_snapshot", False):  # the widget published its own static snapshot
            return Markup('<div class="widget-static muted">[interactive widget: its static snapshot is shown; '
                          'open the notebook in Jupyter to use it]</div>')
        if view and view.get("model_id") in self.widget_state:
            return Markup('<div class="widget-static" title="drawn from the widget state saved in the notebook">'
                          '{}</div>').format(self.widget(view["model_id"], 0))
        for mime in ("image/png", "image/jpeg", "image/gif"):
            if mime in data:
                b64 = _text(data[mime]).replace("\n", "")
                if re.fullmatch(r"[A-Za-z0-9+/=]*", b64):
                    return Markup('<img class="nb-img" src="data:{};base64,{}" alt="output">').format(mime, b64)
        if "image/svg+xml" in data:  # as an <img>: an SVG inside <img> never runs script
            b64 = base64.b64encode(_text(data["image/svg+xml"]).encode()).decode()
            return Markup('<img class="nb-img" src="data:image/svg+xml;base64,{}" alt="output">').format(b64)
        if "text/html" in data:
            return Markup('<div class="html-out">{}</div>').format(sanitize_html(_text(data["text/html"])))
        if "text/markdown" in data:
            return markdown_html(_text(data["text/markdown"]))
        if "text/plain" in data:
            text = redact(_text(data["text/plain"]))
            if view:  # a widget whose state was not saved: say so instead of showing its repr
                return Markup('<div class="widget-static muted">[interactive widget: open the notebook in Jupyter] '
                              '{}</div>').format(clip(text, 200))
            return Markup('<pre class="plain">{}</pre>').format(_ANSI.sub("", text))
        return Markup("")

    # -- widgets, drawn from their saved state -----------------------------------------------------------
    def widget(self, model_id: str, depth: int) -> Markup:
        model = self.widget_state.get(model_id)
        if model is None or depth > 12:
            return Markup("")
        name = str(model.get("model_name", ""))
        st = model.get("state") or {}
        desc = st.get("description") or ""
        show_label = desc and name != "ButtonModel"
        label = Markup('<span class="w-label">{}</span> ').format(desc) if show_label else Markup("")
        children = [c[len(_REF) :] for c in st.get("children") or [] if isinstance(c, str) and c.startswith(_REF)]
        if name in ("HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel", "StackModel"):
            cls = "w-hbox" if name == "HBoxModel" else "w-vbox"
            columns = self._grid_columns(st) if name == "GridBoxModel" else None
            if columns:
                cls = Markup('w-grid" style="grid-template-columns:{}').format(columns)
            titles = st.get("titles") or st.get("_titles") or []
            inner = []
            for i, c in enumerate(children):
                title = titles[i] if isinstance(titles, list) and i < len(titles) and titles[i] else None
                head = Markup('<div class="w-title">{}</div>').format(title) if title else Markup("")
                inner.append(head + self.widget(c, depth + 1))
            return Markup('<div class="{}">{}</div>').format(cls, Markup("").join(inner))
        if name in ("HTMLModel", "HTMLMathModel"):
            return label + Markup('<span class="w-html">{}</span>').format(sanitize_html(str(st.get("value") or "")))
        if name == "LabelModel":
            return Markup('<span class="w-text">{}</span>').format(redact(st.get("value") or ""))
        if name in ("FloatProgressModel", "IntProgressModel"):
            return label + Markup('<progress value="{}" max="{}"></progress>').format(
                _float(st.get("value"), 0), _float(st.get("max"), 100)
            )
        if name in ("ButtonModel", "ToggleButtonModel"):
            return Markup("<button disabled>{}</button>").format(desc or st.get("tooltip") or "button")
        if name == "OutputModel":
            return Markup('<div class="w-output">{}</div>').format(
                Markup("").join(self.output(o) for o in st.get("outputs") or [])
            )
        if name in ("DropdownModel", "SelectModel", "RadioButtonsModel", "ToggleButtonsModel", "SelectionSliderModel"):
            labels = st.get("_options_labels") or []
            idx = st.get("index")
            value = labels[idx] if isinstance(idx, int) and 0 <= idx < len(labels) else ""
            return label + Markup('<span class="w-value">{}</span>').format(value)
        if "value" in st and not isinstance(st.get("value"), (dict, list)):
            return label + Markup('<span class="w-value">{}</span>').format(clip(redact(st.get("value")), 300))
        return Markup('<span class="muted">[{}]</span>').format(name.removesuffix("Model") or "widget")

    def _grid_columns(self, st: Mapping[str, Any]) -> str | None:
        ref = st.get("layout")
        if not isinstance(ref, str) or not ref.startswith("IPY_MODEL_"):
            return None
        layout = (self.widget_state.get(ref[len("IPY_MODEL_") :]) or {}).get("state") or {}
        value = str(layout.get("grid_template_columns") or "")
        return value if value and re.fullmatch(r"[0-9a-z%(). ,\-]+", value) else None


def _float(v: Any, default: float) -> str:
    try:
        f = float(v)
        return f"{f:g}" if math.isfinite(f) else f"{default:g}"
    except (TypeError, ValueError):
        return f"{default:g}"
