"""The token view: a text drawn with its token boundaries.

Tokens get alternating background colours; spaces, tabs and newlines are drawn as visible marks (``·``, ``→``,
``↵``) so that "why is this two tokens?" has an answer on screen; hovering a token shows its id(s). A character
that spans several tokens (many emoji) is drawn once, with all its ids.

Pure HTML with inline styles: it renders the same in Jupyter and in a static report.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import resolve_model
from ..tokens import token_pieces

# Pastel backgrounds in the manner of OpenAI's tokenizer page; five, so neighbours never share a colour.
PALETTE = ("#c8e6c9", "#ffe0b2", "#bbdefb", "#f8bbd0", "#e1bee7")
WHITESPACE_MARKS = {" ": "·", "\t": "→", "\n": "↵\n", "\r": "␍"}
_MARK_STYLE = "color:#9e9e9e"
_BOX = ("font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:13px;line-height:1.9;"
        "white-space:pre-wrap;word-break:break-word;border:1px solid #ddd;border-radius:4px;padding:8px;"
        "background:#fff;color:#000")


def _show(piece: str) -> str:
    """HTML for one token's text: escaped, with whitespace drawn as grey marks."""
    out = []
    for ch in piece:
        mark = WHITESPACE_MARKS.get(ch)
        out.append(f'<span style="{_MARK_STYLE}">{html.escape(mark)}</span>' if mark else html.escape(ch))
    return "".join(out)


@dataclass
class TokenView:
    """``TokenView("Hello world", "gpt-4o")``: display it in a notebook, or ``.to_html()`` for a report."""

    text: str
    model: str
    deployments: Mapping[str, str] | None = None
    max_tokens: int = 20_000  # beyond this the view is cut (the count in the header stays exact)

    def __post_init__(self) -> None:
        self.info = resolve_model(self.model, self.deployments)
        self.pieces = token_pieces(self.text, self.info.name)
        self.count = sum(len(ids) for ids, _ in self.pieces)

    @property
    def ids(self) -> list[int]:
        return [i for ids, _ in self.pieces for i in ids]

    def _spans(self) -> tuple[str, int]:
        spans, shown = [], 0
        for n, (ids, piece) in enumerate(self.pieces):
            if shown >= self.max_tokens:
                break
            shown += len(ids)
            title = ("id " if len(ids) == 1 else "ids ") + ", ".join(map(str, ids))
            style = f"background:{PALETTE[n % len(PALETTE)]};border-radius:3px;padding:1px 0"
            spans.append(f'<span title="{html.escape(title)}" style="{style}">{_show(piece)}</span>')
        return "".join(spans), shown

    def to_html(self) -> str:
        """A self-contained HTML fragment (no scripts, no external styles)."""
        body, shown = self._spans()
        cut = (f'<div style="color:#b00;font-size:12px">showing the first {shown:,} of {self.count:,} tokens</div>'
               if shown < self.count else "")
        header = (f'<div style="font:12px sans-serif;color:#555;margin-bottom:4px">'
                  f'<b>{self.count:,} tokens</b> · {len(self.text):,} characters · {html.escape(self.info.name)} '
                  f'({html.escape(self.info.encoding)}) · hover a token for its id</div>')
        return f'<div class="workbench-token-view">{header}<div style="{_BOX}">{body}</div>{cut}</div>'

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"TokenView({self.count} tokens, {self.info.name})"


def token_view(text: str, model: str, deployments: Mapping[str, str] | None = None) -> TokenView:
    """Shortcut for :class:`TokenView`."""
    return TokenView(text, model, deployments)


__all__ = ["TokenView", "token_view"]
