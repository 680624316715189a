"""Keep secrets out of everything the workbench writes.

Keys are read only from environment variables, credential providers or a key file outside the repository
(see :mod:`workbench.config`). Every secret value the workbench reads is registered here, and
:func:`redact` scrubs registered values - plus anything shaped like a key or bearer token - from text
before it reaches a log, an error message, a manifest, a report or a cache row.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from typing import Any

_lock = threading.Lock()
_known: set[str] = set()

# Shapes of credentials that may arrive in text we did not read ourselves (an error body echoing a
# header, a user pasting a key into a prompt). Conservative: long opaque tokens only.
_PATTERNS = [
    re.compile(r"sk-[A-Za-z0-9_\-]{16,}"),  # OpenAI keys
    re.compile(r"(?i)(api[-_]?key[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9]{24,}"),  # api-key: <32 hex>
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9\-_\.=]{20,}"),  # Authorization: Bearer <token>
]
MASK = "***"


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`redact` removes it wherever it appears."""
    if value and len(value) >= 6:
        with _lock:
            _known.add(value)


def mask_known(text: str) -> str:
    """``text`` with every registered secret masked - and nothing else changed.

    For a model's answer: a key we hold that comes back in it must not reach the ledger, the cache or an export,
    but key-*shaped* text the model wrote (an extraction task's answer) is data, so the shape patterns of
    :func:`redact` are not applied.
    """
    with _lock:
        known = sorted(_known, key=len, reverse=True) if _known else ()
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    return text


def contains_known_secret(text: str) -> bool:
    with _lock:
        return any(value in text for value in _known)


def looks_like_secret(text: str) -> bool:
    """Whether ``text`` holds a registered secret or something shaped like a key or bearer token."""
    return contains_known_secret(text) or any(p.search(text) for p in _PATTERNS)


def redact(text: Any) -> str:
    """Return ``text`` as a string with every known secret and key-shaped token masked."""
    s = mask_known(str(text))
    for pat in _PATTERNS:
        s = pat.sub(lambda m: (m.group(1) if m.groups() else "") + MASK, s)
    return s


def shorten(text: Any, n: int) -> str:
    """``text`` masked, then cut to ``n`` characters (an ellipsis marks the cut). Masking comes first: cut first,
    a key would no longer match what :func:`redact` looks for, and its first ``n`` characters would show."""
    s = redact("" if text is None else text)
    return s if len(s) <= n else s[: max(n - 1, 0)] + "…"


def redact_obj(obj: Any) -> Any:
    """Recursively redact strings inside dicts/lists, and drop values under secret-named keys."""
    if isinstance(obj, dict):
        return {
            k: (MASK if _is_secret_key(k) and v else redact_obj(v)) for k, v in obj.items()
        }
    if isinstance(obj, (list, tuple)):
        return [redact_obj(v) for v in obj]
    if isinstance(obj, str):
        return redact(obj)
    return obj


_SECRET_KEY = re.compile(r"(?i)(api[-_]?key|authorization|token|secret|password)$")


def _is_secret_key(key: Any) -> bool:
    # "max_tokens" or "prompt_tokens" are counts, not secrets: match the name's ending only.
    return isinstance(key, str) and bool(_SECRET_KEY.search(key)) and not key.endswith("_tokens")


class RedactingFilter(logging.Filter):
    """Logging filter that scrubs secrets from every record's message and arguments (attach it to a handler;
    :func:`install_log_redaction` covers whole logger trees without one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        _scrub(record)
        return True


def _scrub(record: logging.LogRecord) -> None:
    record.msg = redact(record.getMessage())
    record.args = ()
    if record.exc_info and not record.exc_text:  # a logged traceback is text too
        record.exc_text = redact("".join(traceback.format_exception(*record.exc_info))).rstrip("\n")


def install_log_redaction(logger_names: tuple[str, ...] = ("workbench", "openai", "httpx", "httpx2", "azure", "msal",
                                                            "papermill")) -> None:
    """Scrub secrets from every record of these loggers and their children (``workbench.harness``,
    ``openai._base_client``), whatever handlers are configured later. A filter on a logger would not do: Python
    applies it to that logger's own records only, not to those its children propagate. So the scrubbing happens
    where records are made (the log record factory), once per process."""
    global _LOG_NAMES
    _LOG_NAMES = tuple(sorted({*_LOG_NAMES, *logger_names}))
    previous = logging.getLogRecordFactory()
    if getattr(previous, "_workbench_redacting", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if any(record.name == n or record.name.startswith(n + ".") for n in _LOG_NAMES):
            _scrub(record)
        return record

    factory._workbench_redacting = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


_LOG_NAMES: tuple[str, ...] = ()
