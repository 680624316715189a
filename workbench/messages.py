"""Small facts about chat messages shared by the adapters, scorers, fake backend and viewers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def content_text(content: Any, *, image_placeholder: bool = False) -> str:
    """The text of a message's ``content``: a string as is, or the text parts of a parts list joined by newlines.

    With ``image_placeholder`` an image part shows as ``[image: URL...]`` (for people reading the messages).
    """
    if isinstance(content, list):
        parts = []
        for p in content:
            if not isinstance(p, Mapping):
                continue
            if p.get("type") == "text":
                parts.append(str(p.get("text", "")))
            elif image_placeholder and p.get("type") == "image_url":
                url = str((p.get("image_url") or {}).get("url", ""))
                parts.append(f"[image: {url[:60]}{'...' if len(url) > 60 else ''}]")
        return "\n".join(parts)
    return "" if content is None else str(content)
