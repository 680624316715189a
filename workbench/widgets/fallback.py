"""Static fallbacks: what a widget shows where no widget can render.

A live widget needs the widget manager's JavaScript. nbconvert's HTML loads it from a CDN, so an offline report,
GitHub's viewer and a notebook reopened without its kernel show an empty box where the widget was. Every widget
here therefore publishes, next to its live view, a plain HTML snapshot of its state (tables, inline PNGs): a
``display_data`` output with a ``display_id``, updated when the state changes (:meth:`StaticFallback.refresh_static`).

Where widgets do render, the snapshot would be a duplicate, so each live widget carries a ``<style>`` rule that
hides the snapshots: the rule exists only where the widget's view exists. (nbconvert would not show a
``text/html`` entry of the widget's own mimebundle: it picks the widget view whenever the widget state is saved,
which papermill does.)
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets as widgets

from ..safe_text import visible_text
from ..secrets import mask_known, shorten

FALLBACK_CLASS = "wb-static-fallback"

# Rendered only inside a live widget view: hides the static snapshots (and the output areas holding them).
_HIDE_SNAPSHOTS = (
    f"<style>.jp-OutputArea-child:has(.{FALLBACK_CLASS}),.output_area:has(.{FALLBACK_CLASS}),"
    f".{FALLBACK_CLASS}{{display:none !important}}</style>"
)

# Shared look of the widgets' HTML parts (tables of outputs, badges); inline so a snapshot stands alone.
TABLE_CSS = ("border-collapse:collapse;font:12px/1.35 system-ui,sans-serif;margin:4px 0")
CELL_CSS = "border:1px solid #ddd;padding:4px 6px;vertical-align:top;text-align:left"


def hide_snapshots_widget() -> widgets.HTML:
    """An invisible HTML widget whose only content is the rule hiding static snapshots."""
    w = widgets.HTML(_HIDE_SNAPSHOTS, layout=widgets.Layout(height="0px", margin="0", overflow="hidden"))
    w.add_class("wb-hide-snapshots")
    return w


def esc(value: Any) -> str:
    """``value`` as HTML text for a widget: known secrets masked, bidi controls and invisible characters shown
    (``\\u202e``). Every widget's text passes here, so what a saved notebook keeps of its state holds no key."""
    return html.escape(visible_text(mask_known("" if value is None else str(value))))


def clip(text: Any, n: int = 200) -> str:
    """``text`` masked, then cut to ``n`` characters (a key is never cut to a prefix that escapes masking)."""
    return shorten(text, n)


def html_table(header: list[str], rows: list[list[str]], *, raw: bool = False) -> str:
    """A small inline-styled table; cells are escaped unless ``raw`` (then they are HTML already)."""
    fmt = (lambda c: c) if raw else esc
    head = "".join(f'<th style="{CELL_CSS};background:#f4f4f4">{esc(h)}</th>' for h in header)
    body = "".join("<tr>" + "".join(f'<td style="{CELL_CSS}">{fmt(c)}</td>' for c in row) + "</tr>" for row in rows)
    return f'<table style="{TABLE_CSS}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _kernel_shell() -> Any:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipywidgets
        return None
    shell = get_ipython()
    return shell if shell is not None and getattr(shell, "kernel", None) is not None else None


class StaticFallback:
    """Mixin for composite widgets: publish a static HTML snapshot whenever the widget is displayed.

    Subclasses implement :meth:`static_html` (and optionally :meth:`static_text`) and call
    :meth:`refresh_static` when their state changes in a way a report should show (a run finished, a file loaded).
    """

    _static_handles: list

    def static_html(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    def static_text(self) -> str:
        return f"<{type(self).__name__}: interactive widget; a static snapshot is in the text/html output>"

    def static_bundle(self) -> dict[str, str]:
        body = self.static_html()
        note = ('<div style="font:11px system-ui,sans-serif;color:#888;margin-top:2px">Static snapshot of the '
                f'{esc(type(self).__name__)} widget (the interactive view needs a running kernel).</div>')
        return {"text/html": f'<div class="{FALLBACK_CLASS}">{body}{note}</div>', "text/plain": self.static_text()}

    def _repr_mimebundle_(self, **kwargs: Any):
        self.publish_static()
        return super()._repr_mimebundle_(**kwargs)  # type: ignore[misc]

    def publish_static(self) -> None:
        """Display the snapshot (in a kernel only); it is kept current by :meth:`refresh_static`."""
        if _kernel_shell() is None:
            return
        from IPython.display import display

        handle = display(self.static_bundle(), raw=True, display_id=True)
        if not hasattr(self, "_static_handles"):
            self._static_handles = []
        self._static_handles.append(handle)

    def refresh_static(self, debounce: float = 0.0) -> None:
        """Update every published snapshot to the current state (no-op outside a kernel).

        ``debounce``: wait this many seconds for further changes first (typing sends one update, not one per key).
        """
        handles = getattr(self, "_static_handles", None)
        if not handles:
            return
        timer = getattr(self, "_static_timer", None)
        if timer is not None:
            timer.cancel()
        if debounce > 0:
            self._static_timer = threading.Timer(debounce, self._update_static)
            self._static_timer.daemon = True
            self._static_timer.start()
        else:
            self._update_static()

    def _update_static(self) -> None:
        bundle = self.static_bundle()
        for h in getattr(self, "_static_handles", []):
            try:
                h.update(bundle, raw=True)
            except Exception:  # a report snapshot must never break the widget
                pass
