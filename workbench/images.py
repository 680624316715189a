"""Image tokens: what an image in a prompt costs, by the two published rules.

- **Tile models** (gpt-4o, gpt-4o-mini, gpt-4.1, gpt-4-turbo, o1, o3, computer-use-preview): ``detail: low`` costs a
  fixed base; ``high`` scales the image to fit 2048x2048, then its shortest side down to 768 px, and adds
  ``per_tile`` tokens for every 512 px tile (partial tiles count).
- **Patch models** (gpt-4.1-mini, gpt-4.1-nano, o4-mini): the 32 px patches that cover the image, shrunk to at most
  1536 patches, times a per-model multiplier.

Source: OpenAI "Images and vision" guide, "Calculating costs" (the worked examples there are our tests); the
per-model figures live in ``data/models.toml``. ``detail`` omitted means ``auto``, which the service decides per
image; for budgeting it is counted as ``high`` and every record says so.

Sizes are read with Pillow (headers only) from files, bytes, PIL images and ``data:`` URLs.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import numbers
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Union

from .catalog import ImageRule, ModelInfo, load_catalog
from .config import resolve_model
from .errors import DataError

# OpenAI vision guide, "Calculating costs" - tile models:
TILE_PX = 512  # "count how many 512px squares the image consists of"
HIGH_MAX_SIDE = 2048  # "scaled to fit within a 2048 x 2048 square"
HIGH_SHORT_SIDE = 768  # "scaled such that the shortest side of the image is 768px long" (only ever down)
LOW_SIDE = 512  # detail low: "the model receives a low-res 512px x 512px version of the image"
# ... and patch models:
PATCH_PX = 32  # "32px x 32px patches that are needed to fully cover the image"
PATCH_BUDGET = 1536  # "If the number of patches exceeds 1536, we scale down the image"; tokens capped at 1536
# Largest image the tile rule can produce after its two resizes (short side <= 768, long side <= 2048): used to
# budget a remote image whose size is unknown.
WORST_CASE_TILE_SIZE = (HIGH_SHORT_SIDE, HIGH_MAX_SIDE)
# OpenAI vision guide, "Image input requirements": accepted file types.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF")
DETAILS = ("low", "high", "auto")
_EPS = 1e-6  # scaled sizes like 1055.99999 are 1056 px, not 1057

ImageSource = Union[str, os.PathLike, bytes, bytearray, memoryview, "PIL.Image.Image"]  # noqa: F821


@dataclass(frozen=True)
class ImageTokens:
    """The token cost of one image for one model, with the arithmetic that led to it."""

    model: str
    detail: str  # as asked: low, high or auto
    budgeted_as: str  # low or high ("auto" is budgeted as high)
    width: int  # original size (0 when unknown: a remote URL)
    height: int
    resized: tuple[int, int]  # what the model sees
    tokens: int
    rule: str  # "tile" or "patch"
    tiles: int | None = None  # tile rule: number of 512 px tiles (0 for detail low)
    patches: int | None = None  # patch rule: number of 32 px patches, after the cap
    grid: tuple[int, int] = (0, 0)  # columns x rows of tiles or patches
    arithmetic: str = ""

    @property
    def size_known(self) -> bool:
        return self.width > 0 and self.height > 0

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["resized"], d["grid"] = list(self.resized), list(self.grid)
        if self.rule == "tile":
            d.pop("patches")
        else:
            d.pop("tiles")
        return d


# ---------------------------------------------------------------------------------------------------- rules


def _ceil_px(x: float) -> int:
    return math.ceil(x - _EPS)


def _scale(size: tuple[int, int], s: float) -> tuple[int, int]:
    return (_ceil_px(size[0] * s), _ceil_px(size[1] * s))


def _tile_high(w: int, h: int) -> tuple[tuple[int, int], list[str]]:
    """The size the tile rule's two resizes produce, and the steps in words."""
    size, steps = (w, h), [f"{w}x{h}"]
    if max(size) > HIGH_MAX_SIDE:
        size = _scale((w, h), HIGH_MAX_SIDE / max(w, h))
        steps.append(f"fit in {HIGH_MAX_SIDE}x{HIGH_MAX_SIDE} -> {size[0]}x{size[1]}")
    if min(size) > HIGH_SHORT_SIDE:
        size = _scale(size, HIGH_SHORT_SIDE / min(size))
        steps.append(f"shortest side to {HIGH_SHORT_SIDE} -> {size[0]}x{size[1]}")
    return size, steps


def tile_tokens(w: int, h: int, rule: ImageRule, detail: str) -> tuple[tuple[int, int], int, tuple[int, int], str]:
    """Tile rule: ``(resized, tokens, (columns, rows), arithmetic)`` for ``detail`` low or high."""
    if detail == "low":
        resized = _scale((w, h), min(1.0, LOW_SIDE / max(w, h)))
        return (
            resized,
            rule.base,
            (0, 0),
            (
                f"detail low: one low-resolution view ({resized[0]}x{resized[1]}) at any size\n"
                f"tokens = {rule.base} (fixed)"
            ),
        )
    resized, steps = _tile_high(w, h)
    cols, rows = math.ceil(resized[0] / TILE_PX), math.ceil(resized[1] / TILE_PX)
    tokens = rule.base + cols * rows * rule.per_tile
    text = "\n".join(
        [
            " -> ".join(steps) if len(steps) > 1 else f"{w}x{h}: no resize needed",
            f"tiles: ceil({resized[0]}/{TILE_PX}) x ceil({resized[1]}/{TILE_PX}) = {cols} x {rows} = {cols * rows}",
            f"tokens = {rule.base} + {cols * rows} x {rule.per_tile} = {tokens}",
        ]
    )
    return resized, tokens, (cols, rows), text


def patch_tokens(w: int, h: int, rule: ImageRule) -> tuple[tuple[int, int], int, int, tuple[int, int], str]:
    """Patch rule: ``(resized, tokens, patches, (columns, rows), arithmetic)``.

    Follows the guide's algorithm step by step: shrink by ``r = sqrt(32^2 * 1536 / (w * h))``, shrink again by
    ``min(floor(w*r/32) / (w*r/32), floor(h*r/32) / (h*r/32))`` so one side fits whole patches, count the
    patches covering the result, cap at 1536, multiply and round up (a budget must not undercount).
    """
    cols, rows = math.ceil(w / PATCH_PX), math.ceil(h / PATCH_PX)
    lines = [f"patches to cover {w}x{h}: ceil({w}/{PATCH_PX}) x ceil({h}/{PATCH_PX}) = {cols} x {rows} = {cols * rows}"]
    resized = (w, h)
    if cols * rows > PATCH_BUDGET:
        r = math.sqrt(PATCH_PX**2 * PATCH_BUDGET / (w * h))
        pw, ph = w * r / PATCH_PX, h * r / PATCH_PX
        fit = min(math.floor(pw + _EPS) / pw, math.floor(ph + _EPS) / ph)
        resized = _scale((w, h), r * fit)
        cols, rows = math.ceil(resized[0] / PATCH_PX - _EPS), math.ceil(resized[1] / PATCH_PX - _EPS)
        lines.append(
            f"over {PATCH_BUDGET}: shrink by sqrt({PATCH_PX}^2 x {PATCH_BUDGET} / ({w} x {h})) = {r:.4f}, "
            f"then x {fit:.4f} to fit whole patches -> {resized[0]}x{resized[1]}"
        )
        lines.append(f"patches: {cols} x {rows} = {cols * rows}")
    patches = min(cols * rows, PATCH_BUDGET)
    tokens = math.ceil(patches * rule.multiplier - _EPS)
    lines.append(f"tokens = ceil({patches} x {rule.multiplier}) = {tokens}")
    return resized, tokens, patches, (cols, rows), "\n".join(lines)


def _patch_cap(rule: ImageRule) -> tuple[tuple[int, int], int, int, tuple[int, int], str]:
    """The most a patch model bills for one image: the 1536-patch cap."""
    tokens = math.ceil(PATCH_BUDGET * rule.multiplier - _EPS)
    return (
        (0, 0),
        tokens,
        PATCH_BUDGET,
        (0, 0),
        f"tokens = ceil({PATCH_BUDGET} (the cap) x {rule.multiplier}) = {tokens}",
    )


# --------------------------------------------------------------------------------------------------- public


def _vision_rule(info: ModelInfo) -> ImageRule:
    if not info.has_vision or info.image is None:
        vision = [m.name for m in load_catalog().models.values() if m.has_vision and m.image]
        raise DataError(
            f"{info.name} does not accept images. Send image prompts to a vision model: {', '.join(vision)}."
        )
    return info.image


def _check_detail(detail: str) -> str:
    if detail not in DETAILS:
        raise DataError(f"detail={detail!r}: use 'low', 'high' or 'auto'.")
    return detail


def image_tokens(
    image_or_size: ImageSource | tuple[int, int] | None,
    model: str | ModelInfo,
    detail: str = "auto",
    deployments: Mapping[str, str] | None = None,
) -> ImageTokens:
    """Token cost of one image for ``model`` at ``detail``.

    ``image_or_size`` is a ``(width, height)`` pair, anything :func:`image_size` reads, or ``None`` for an image
    of unknown size (a remote URL), which is budgeted at the largest size the rule allows.
    """
    info = resolve_model(model, deployments)
    rule = _vision_rule(info)
    detail = _check_detail(detail)
    budgeted = "high" if detail == "auto" else detail
    known = image_or_size is not None
    if not known:
        w, h = WORST_CASE_TILE_SIZE
    elif (
        isinstance(image_or_size, tuple)
        and len(image_or_size) == 2
        and all(isinstance(v, numbers.Integral) for v in image_or_size)
    ):
        w, h = int(image_or_size[0]), int(image_or_size[1])
    else:
        w, h = image_size(image_or_size)
    if w <= 0 or h <= 0:
        raise DataError(f"Image size {w}x{h}: width and height must be positive.")
    head = f"{info.name}, detail {detail}" + (" (auto is budgeted as high)" if detail == "auto" else "")
    if not known:
        head += "\nsize unknown (remote URL, not downloaded): budgeted at the largest the rule allows"
    if rule.rule == "tile":
        resized, tokens, grid, text = tile_tokens(w, h, rule, budgeted)
        tiles, patches = grid[0] * grid[1], None
    else:
        resized, tokens, patches, grid, text = patch_tokens(w, h, rule) if known else _patch_cap(rule)
        tiles = None
        head += "; patch models cost the same at every detail"
    return ImageTokens(
        model=info.name,
        detail=detail,
        budgeted_as=budgeted,
        width=w if known else 0,
        height=h if known else 0,
        resized=resized,
        tokens=tokens,
        rule=rule.rule,
        tiles=tiles,
        patches=patches,
        grid=grid,
        arithmetic=f"{head}\n{text}",
    )


# --------------------------------------------------------------------------------------------- reading images


def _describe(source: Any) -> str:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"image bytes ({len(source)} bytes)"
    if isinstance(source, str) and source.startswith("data:"):
        return f"data URL ({source[: source.find(',')][:40] if ',' in source else source[:40]}..., {len(source)} chars)"
    return str(source)


def decode_data_url(url: str, name: str | None = None) -> bytes:
    """The bytes inside a ``data:[<mime>][;base64],<data>`` URL."""
    name = name or _describe(url)
    head, sep, payload = url.partition(",")
    if not sep:
        raise DataError(f"{name}: not a data URL (expected data:image/png;base64,...).")
    if not head.endswith(";base64"):
        raise DataError(f"{name}: the data URL is not base64-encoded; images are sent as data:image/...;base64,...")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise DataError(f"{name}: the data URL's base64 payload is invalid ({e}).") from e


def _read_source(source: ImageSource, name: str) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, str) and source.startswith("data:"):
        return decode_data_url(source, name)
    if isinstance(source, str) and source.startswith(("http://", "https://")):
        raise DataError(f"{name}: a remote URL. The workbench does not download images; save it and pass the file.")
    path = Path(source[7:] if isinstance(source, str) and source.startswith("file://") else source).expanduser()
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{name}: cannot read the image file ({e.strerror or e}).") from e


def _open_header(data: bytes):
    """The image whose header ``data`` starts with, if it is in an accepted format - its format and size read from
    the header alone, however many pixels it claims. PIL's ``Image.open`` refuses an image above
    ``Image.MAX_IMAGE_PIXELS`` (a decompression bomb) before saying its size, but a size is all a budget needs and
    nothing here decodes pixels, so the accepted formats' own openers are used (what ``Image.open`` calls)."""
    from PIL import Image

    Image.init()
    for fmt in ACCEPTED_FORMATS:
        factory, accept = Image.OPEN[fmt]
        if accept is None or accept(data[:16]):
            try:
                return factory(io.BytesIO(data), None)
            except (SyntaxError, OSError, ValueError, EOFError):
                continue
    return None


def open_image(source: ImageSource, name: str | None = None):
    """A PIL image from a path, ``file://`` URL, bytes, data URL or PIL image; refuses what OpenAI refuses.

    The format is read from the content, never from a file name (a text file called ``x.png`` is refused), and
    only the header is read: a huge image (or a decompression bomb) gives its size without being decoded - call
    :func:`decodable` before decoding pixels. Raises :class:`DataError` naming the image when it is missing,
    corrupt, animated or not PNG/JPEG/WEBP/GIF.
    """
    from PIL import Image

    if isinstance(source, Image.Image):
        return source
    name = name or _describe(source)
    data = _read_source(source, name)
    img = _open_header(data)
    if img is None:
        raise DataError(f"{name}: {_not_accepted(data)} Use a PNG, JPEG, WEBP or GIF file.")
    try:
        img.verify()  # checks structure (chunks, CRCs) without decoding pixels
        img = _open_header(data)  # verify() leaves the image unusable; reopen
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(f"{name}: not a readable image: a damaged {img.format} file ({e}). Use a PNG, JPEG, WEBP or "
                        "GIF file.") from e
    if img.format == "GIF" and getattr(img, "is_animated", False):
        raise DataError(f"{name}: animated GIFs are not accepted; send a single frame as PNG.")
    return img


def _not_accepted(data: bytes) -> str:
    """What the bytes are, when they are not an accepted image (for the message)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as other:
            return f"{other.format} images are not accepted; convert it to PNG, JPEG, WEBP or GIF."
    except Image.DecompressionBombError:
        return "an image in a format that is not accepted."
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        head = data[:64]
        text = bool(head) and all(32 <= b < 127 or b in (9, 10, 13) for b in head)
        return ("not a readable image: its content is text, whatever its name says." if text
                else "not a readable image (unknown or damaged content).")


def decodable(img) -> bool:
    """Whether decoding ``img``'s pixels is safe: within PIL's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``,
    about 89 megapixels by default). A larger image is still budgeted (by its header size); it is just not drawn."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    return limit is None or img.size[0] * img.size[1] <= limit


def mime_type(img) -> str:
    """``image/png`` etc. for an image :func:`open_image` accepted."""
    return f"image/{img.format.lower()}"


def data_url(data: bytes, name: str | None = None) -> str:
    """A ``data:`` URL for image bytes, checked first (:func:`open_image`); the MIME type comes from the content."""
    img = open_image(data, name)
    return f"data:{mime_type(img)};base64,{base64.b64encode(data).decode('ascii')}"


def image_size(source: ImageSource, name: str | None = None) -> tuple[int, int]:
    """``(width, height)`` of an image given as a path, bytes, PIL image or ``data:`` URL."""
    return tuple(open_image(source, name).size)  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------ images in messages


@dataclass(frozen=True)
class ImagePart:
    """One image content part found in chat messages."""

    where: str  # e.g. "messages[1].content[0]"
    url: str
    detail: str | None  # as set in the part (None: the API default, auto)


def _part_url_detail(part: Mapping[str, Any]) -> tuple[str, str | None]:
    value = part.get("image_url")
    if isinstance(value, Mapping):  # chat completions: {"type": "image_url", "image_url": {"url", "detail"}}
        return str(value.get("url") or ""), value.get("detail")
    return str(value or ""), part.get("detail")  # responses API: {"type": "input_image", "image_url", "detail"}


def iter_image_parts(messages: Sequence[Mapping[str, Any]]) -> Iterator[ImagePart]:
    """Every ``image_url`` / ``input_image`` part in ``messages``, with where it is."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if isinstance(part, Mapping) and part.get("type") in ("image_url", "input_image"):
                url, detail = _part_url_detail(part)
                yield ImagePart(f"messages[{i}].content[{j}]", url, detail)


def image_part_tokens(
    part: Mapping[str, Any] | ImagePart,
    model: str | ModelInfo,
    detail_default: str = "auto",
    where: str = "image part",
    deployments: Mapping[str, str] | None = None,
) -> ImageTokens:
    """Tokens of one image content part; its own ``detail`` wins over ``detail_default``.

    A remote (http) URL is not downloaded: it is budgeted at the largest size the model's rule allows.
    """
    if isinstance(part, ImagePart):
        url, detail, where = part.url, part.detail, part.where
    else:
        url, detail = _part_url_detail(part)
    if not url:
        raise DataError(f"{where}: the image part has no url.")
    remote = url.startswith(("http://", "https://"))
    try:
        size = None if remote else image_size(url, f"{where} ({_describe(url)})")
        return image_tokens(size, model, detail or detail_default, deployments)
    except DataError as e:
        if where in str(e):
            raise
        raise DataError(f"{where}: {e}") from e


def message_image_tokens(
    messages: Sequence[Mapping[str, Any]],
    model: str | ModelInfo,
    detail_default: str = "auto",
    deployments: Mapping[str, str] | None = None,
) -> list[ImageTokens]:
    """Token costs of every image in ``messages``, in order."""
    return [image_part_tokens(p, model, detail_default, deployments=deployments) for p in iter_image_parts(messages)]


def parse_size(text: str) -> tuple[int, int]:
    """``"1024x768"`` -> ``(1024, 768)``."""
    w, sep, h = text.lower().replace(" ", "").partition("x")
    if not sep or not w.isdigit() or not h.isdigit() or int(w) <= 0 or int(h) <= 0:
        raise DataError(f"Size {text!r}: write it as WIDTHxHEIGHT in pixels, e.g. 1024x768.")
    return int(w), int(h)
