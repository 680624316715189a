"""Showing text we did not write - a model's answer, a dataset cell - without letting it act on the viewer.

Two places, two functions:

- :func:`terminal_text` for a terminal: an ANSI/VT escape sequence in a model's answer could recolour the screen,
  move the cursor over the usage line, set the window title or (on some terminals) write to the clipboard;
  ``\\r`` could overwrite what was printed. Every control character becomes visible text, so the sequence is shown,
  not obeyed.
- :func:`visible_text` for HTML (reports, widgets): a right-to-left override (U+202E) makes ``"ssap"`` read as
  "pass" next to a badge; zero-width characters hide differences between two outputs that look equal. They are
  shown as ``\\u202e``-style escapes. Joiners (U+200C, U+200D) are kept: Persian, Indic scripts and emoji
  sequences need them.

Both are per-character translations (``str.translate``): the output for ``a + b`` is the output for ``a`` plus the
output for ``b``, so text streamed chunk by chunk is made safe one chunk at a time, with no state to carry and no
sequence that could slip through by being split across two chunks.
"""

from __future__ import annotations


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")


# Bidirectional controls (Unicode UAX #9: embeddings, overrides, isolates, marks) and invisible format
# characters that carry no text of their own (zero-width space, word joiner, invisible operators, BOM,
# Mongolian vowel separator, the tag block U+E0000-U+E007F used to smuggle hidden text).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
INVISIBLE = "\u00ad\u180e\u200b\u2060\u2061\u2062\u2063\u2064\ufeff" + "".join(map(chr, range(0xE0000, 0xE0080)))

# C0 controls except tab and newline, DEL, and the C1 controls (0x9b is a one-byte CSI: ESC [ on many terminals).
_C0_C1 = [c for c in range(0x20) if c not in (0x09, 0x0A)] + list(range(0x7F, 0xA0))

_TERMINAL = {c: _escape(chr(c)) for c in _C0_C1}
_TERMINAL[0x0D] = ""  # a lone \r would overwrite the line; \r\n becomes \n
_TERMINAL.update({ord(ch): _escape(ch) for ch in BIDI_CONTROLS + INVISIBLE})

_HTML = {c: _escape(chr(c)) for c in _C0_C1 if c != 0x0D}
_HTML.update({ord(ch): _escape(ch) for ch in BIDI_CONTROLS + INVISIBLE})


def terminal_text(text: str) -> str:
    """``text`` safe to print on a terminal: control characters (ESC, CSI, BEL, backspace, ``\\r``...) and bidi
    or invisible characters are shown as escapes (``\\x1b[31m`` prints as the seven characters ``\\x1b[31m``).

    Chunk-local: ``terminal_text(a) + terminal_text(b) == terminal_text(a + b)``, so a streamed answer can be
    passed through it one chunk at a time (a sequence split across chunks stays neutral: its ESC is escaped in
    whichever chunk it arrives).
    """
    return text.translate(_TERMINAL)


def visible_text(text: str) -> str:
    """``text`` with bidi controls, invisible characters and control characters (other than tab, newline and
    carriage return) shown as ``\\u202e``-style escapes, for HTML. Apply it before or after HTML escaping: the
    escapes contain no markup, and no character it replaces has a meaning in HTML. Chunk-local, like
    :func:`terminal_text`."""
    return text.translate(_HTML)

