"""Keyboard shortcuts of the Review widget, as data and one pure function (the widget only feeds it keys).

JupyterLab gives a widget no global key events, so the widget has a small focused text box: each key typed
there is one action, and the box is emptied again. Typing in the comment or correction boxes is just typing.
"""

from __future__ import annotations

from typing import NamedTuple

SHORTCUTS: dict[str, str] = {
    "p": "pass", "y": "pass",
    "f": "fail", "x": "fail",
    "n": "next", "j": "next", " ": "next",
    "b": "back", "k": "back",
    "u": "undo",  # withdraw this cell's review
    "c": "comment",  # move the cursor to the comment box
    "e": "edit",  # move the cursor to the corrected-output box
    "s": "save",  # save the comment / correction with the current verdict
}
"""key -> action; a digit gives that value on the experiment's scale (values 0-9 have a key)."""


class Action(NamedTuple):
    name: str  # pass, fail, value, next, back, undo, comment, edit, save
    value: int | None = None


def key_action(key: str, scale: tuple[int, int] | None = None) -> Action | None:
    """The action of one typed key; None for a key that means nothing (it is ignored)."""
    k = key.lower()
    if k in SHORTCUTS:
        return Action(SHORTCUTS[k])
    if k.isdigit() and scale is not None:
        v = int(k)
        if scale[0] <= v <= scale[1]:
            return Action("value", v)
    return None


def shortcut_help(scale: tuple[int, int] | None = None) -> str:
    """One line for the widget: which key does what."""
    parts = ["p pass", "f fail"]
    if scale is not None:
        top = min(scale[1], 9)
        parts.append(f"{scale[0]}-{top} score")
    parts += ["n next", "b back", "u undo", "c comment", "e correct", "s save"]
    return " · ".join(parts)
