"""The image view: an image as the model will see it, with the grid it is billed by and the arithmetic beside it.

The image is resized to the size the rule produces for the chosen model and detail, laid on the grid of
512 px tiles (tile models) or 32 px patches (patch models) - the part of the last row and column that the image
does not fill is shaded, since it is billed all the same. Without an image (only a size), a grey stand-in is drawn.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..images import PATCH_PX, TILE_PX, ImageTokens, decodable, image_tokens, open_image

DISPLAY_MAX = 640  # longest side of the picture on screen; the grid is drawn after scaling so lines stay crisp
GRID_COLOUR = (230, 0, 60, 255)
PAD_COLOUR = (200, 200, 200, 255)
STAND_IN_COLOUR = (150, 170, 190, 255)


def _render(result: ImageTokens, image: Any | None) -> PIL.Image.Image:  # noqa: F821
    from PIL import Image, ImageDraw

    rw, rh = result.resized if result.resized != (0, 0) else (PATCH_PX * 39, PATCH_PX * 39)
    cell = PATCH_PX if result.rule == "patch" else TILE_PX
    cols, rows = result.grid if result.grid != (0, 0) else (max(1, -(-rw // cell)), max(1, -(-rh // cell)))
    canvas_w, canvas_h = (
        (cols * cell, rows * cell) if result.budgeted_as != "low" or result.rule == "patch" else (rw, rh)
    )
    scale = min(1.0, DISPLAY_MAX / max(canvas_w, canvas_h))
    size = (max(1, round(canvas_w * scale)), max(1, round(canvas_h * scale)))
    picture = Image.new("RGBA", size, PAD_COLOUR)
    shown = (max(1, round(rw * scale)), max(1, round(rh * scale)))
    if image is not None:
        picture.paste(image.convert("RGBA").resize(shown, Image.Resampling.LANCZOS), (0, 0))
    else:
        picture.paste(Image.new("RGBA", shown, STAND_IN_COLOUR), (0, 0))
    draw = ImageDraw.Draw(picture)
    width = 1 if result.rule == "patch" else 2
    if result.budgeted_as == "low" and result.rule == "tile":
        draw.rectangle([0, 0, size[0] - 1, size[1] - 1], outline=GRID_COLOUR, width=2)
        return picture
    for c in range(cols + 1):
        x = min(round(c * cell * scale), size[0] - 1)
        draw.line([(x, 0), (x, size[1])], fill=GRID_COLOUR, width=width)
    for r in range(rows + 1):
        y = min(round(r * cell * scale), size[1] - 1)
        draw.line([(0, y), (size[0], y)], fill=GRID_COLOUR, width=width)
    return picture


@dataclass
class ImageView:
    """``ImageView("photo.png", "gpt-4o", detail="high")`` - or a ``(width, height)`` size instead of an image."""

    image: Any
    model: str
    detail: str = "auto"
    deployments: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        is_size = isinstance(self.image, tuple)
        self._pil = None if is_size or self.image is None else open_image(self.image)
        self.result = image_tokens(self.image if is_size else self._pil, self.model, self.detail, self.deployments)

    def picture(self):
        """The rendered picture (a PIL image); an image too large to decode safely is drawn as a stand-in."""
        return _render(self.result, self._pil if self._pil is not None and decodable(self._pil) else None)

    def png(self) -> bytes:
        buf = io.BytesIO()
        self.picture().save(buf, format="PNG")
        return buf.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()

    def to_html(self) -> str:
        """Picture and arithmetic side by side; the PNG is inline (base64), so the HTML stands alone."""
        r = self.result
        src = "data:image/png;base64," + base64.b64encode(self.png()).decode("ascii")
        grid = "512 px tiles" if r.rule == "tile" else "32 px patches"
        caption = (
            f"{r.tokens:,} tokens · {html.escape(r.model)} · detail {html.escape(r.detail)}"
            + (" (budgeted as high)" if r.detail == "auto" else "")
            + f" · seen as {r.resized[0]}x{r.resized[1]} on {grid}"
        )
        return (
            '<div class="workbench-image-view" style="display:flex;gap:16px;align-items:flex-start;'
            'font:13px sans-serif">'
            f'<img src="{src}" alt="{html.escape(caption)}" style="max-width:{DISPLAY_MAX}px;border:1px solid #ccc">'
            f'<div><div style="font-weight:bold;margin-bottom:6px">{html.escape(caption)}</div>'
            f'<pre style="margin:0;white-space:pre-wrap;font-size:12px">{html.escape(r.arithmetic)}</pre></div></div>'
        )

    def _repr_html_(self) -> str:
        return self.to_html()

    def __repr__(self) -> str:
        r = self.result
        return f"ImageView({r.model}, {r.width}x{r.height} -> {r.resized[0]}x{r.resized[1]}, {r.tokens} tokens)"


def image_view(image: Any, model: str, detail: str = "auto", deployments: Mapping[str, str] | None = None) -> ImageView:
    """Shortcut for :class:`ImageView`."""
    return ImageView(image, model, detail, deployments)
