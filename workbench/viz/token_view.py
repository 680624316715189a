"""The token views: a text drawn with its token boundaries (:class:`TokenView`), and an answer drawn with the
probability the model gave each token and the alternatives it weighed (:class:`ProbabilityView`).

Tokens get alternating background colours; spaces, tabs and newlines are drawn as visible marks (``·``, ``→``,
``↵``) so that "why is this two tokens?" has an answer on screen; hovering a token shows its id(s). A character
that spans several tokens (many emoji) is drawn once, with all its ids.

Pure HTML with inline styles: it renders the same in Jupyter and in a static report.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..config import resolve_model
from ..records import TokenLogprobs
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


# ------------------------------------------------------------------------------------- token probabilities


def probability_colour(p: float | None) -> str:
    """A background for a token the model gave probability ``p``: red (unsure) through amber to green (sure);
    grey when there is no probability."""
    if p is None or math.isnan(p):
        return "#eeeeee"
    hue = round(120 * min(max(p, 0.0), 1.0))
    return f"hsl({hue},75%,82%)"


def _percent(p: float) -> str:
    return f"{p:.1%}" if p >= 0.001 else f"{p:.1e}"


def _hover(token: str, p: float | None, logprob: float | None, top: list[tuple[str, float]]) -> str:
    """The tooltip of one token: its probability, then the alternatives the model weighed, most likely first."""
    lines = [f"{token!r}: " + (f"p = {_percent(p)} (logprob {logprob:.3f})" if p is not None and logprob is not None
                               else "no probability given")]
    if top:
        lines.append("alternatives:")
        for alt, lp in top:
            mark = "▸" if alt == token else " "
            lines.append(f"{mark} {alt!r}  {_percent(math.exp(lp))}")
    return "\n".join(lines)


@dataclass
class ProbabilityView:
    """An answer drawn token by token, each coloured by the probability the model gave it, with the
    alternatives it weighed on hover: ``ProbabilityView(cell.logprobs)`` (a :class:`~workbench.records.
    TokenLogprobs`, or anything with a ``logprobs`` attribute: a cell, a completion).

    Where the model was unsure (red), a small change to the prompt may change the answer - the view shows what
    the model nearly said instead. Hover texts are ``title=`` attributes and the colours inline styles, so the
    same HTML works in a notebook and in the script-free report."""

    logprobs: Any
    title: str | None = None
    max_tokens: int = 2_000

    def __post_init__(self) -> None:
        lp = self.logprobs
        if lp is not None and not isinstance(lp, (TokenLogprobs, Mapping)):  # a cell or a completion
            lp = lp.logprobs
        if isinstance(lp, Mapping):
            lp = TokenLogprobs.model_validate(lp)
        self.data: TokenLogprobs | None = lp

    @property
    def mean_probability(self) -> float | None:
        """The geometric mean of the tokens' probabilities (exp of the mean logprob): how sure, on the whole."""
        values = [v for v in (self.data.logprobs if self.data else []) if v is not None]
        return math.exp(sum(values) / len(values)) if values else None

    def _spans(self) -> str:
        data = self.data
        out = []
        for i, token in enumerate(data.tokens[: self.max_tokens]):
            lp = data.logprobs[i] if i < len(data.logprobs) else None
            p = math.exp(lp) if lp is not None else None
            top = data.top[i] if i < len(data.top) else []
            style = f"background:{probability_colour(p)};border-radius:3px;padding:1px 0"
            out.append(f'<span title="{html.escape(_hover(token, p, lp, top))}" style="{style}">{_show(token)}</span>')
        return "".join(out)

    def to_html(self) -> str:
        """A self-contained HTML fragment (no scripts, no external styles)."""
        head = f"<b>{html.escape(self.title)}</b> · " if self.title else ""
        if not self.data or not len(self.data):
            return (f'<div class="workbench-probability-view" style="font:12px sans-serif;color:#555">{head}no token '
                    "probabilities recorded (ask for them: logprobs: true, top_logprobs: 5 on chat; logprobs: 5 on a "
                    "prompt variant)</div>")
        n = len(self.data)
        mean = self.mean_probability
        low = sum(1 for v in self.data.logprobs if v is not None and math.exp(v) < 0.5)
        legend = "".join(f'<span style="background:{probability_colour(p)};padding:0 6px;margin-left:2px">'
                         f"{p:.0%}</span>" for p in (0.1, 0.3, 0.5, 0.7, 0.9))
        header = (f'<div style="font:12px sans-serif;color:#555;margin-bottom:4px">{head}{n:,} tokens · mean '
                  f"probability {_percent(mean) if mean is not None else 'n/a'} · {low:,} below 50% · hover a token "
                  f"for its alternatives · {legend}</div>")
        cut = (f'<div style="color:#b00;font-size:12px">showing the first {self.max_tokens:,} of {n:,} tokens</div>'
               if n > self.max_tokens else "")
        return f'<div class="workbench-probability-view">{header}<div style="{_BOX}">{self._spans()}</div>{cut}</div>'

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        return f"ProbabilityView({len(self.data) if self.data else 0} tokens)"


__all__ = ["TokenView", "token_view", "ProbabilityView", "probability_colour"]
