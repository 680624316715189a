"""The fine-tuning format rules, checked before a file is written (or on any JSONL file: :func:`validate_jsonl`).

The rules of the OpenAI / Azure OpenAI chat fine-tuning format (the OpenAI cookbook's "Data preparation and
analysis for chat model fine-tuning" checks, plus tool calls), each with a code a test or a script can match:

- ``data_type``: a line is a JSON object; ``unrecognized_key``: only ``messages``, ``tools``,
  ``parallel_tool_calls`` at the top;
- ``missing_messages_list``: ``messages`` is a non-empty list;
- ``message_missing_key`` / ``message_unrecognized_key``: every message has a ``role``; keys are among ``role``,
  ``content``, ``name``, ``weight``, ``tool_calls``, ``tool_call_id``, ``function_call``;
- ``unrecognized_role``: ``system``, ``user``, ``assistant``, ``tool`` (or legacy ``function``);
- ``missing_content``: text content is a non-empty string (or a list of content parts); an assistant message
  may leave it empty only when it makes tool calls;
- ``invalid_weight``: ``weight`` only on assistant messages, 0 or 1;
- ``invalid_tool_call`` / ``tool_message_without_call``: tool calls are ``{id, type: function, function: {name,
  arguments: "<JSON text>"}}`` and every ``tool`` message answers an earlier call's id;
- ``example_missing_assistant_message``: at least one assistant message to learn from;
- ``too_many_tokens``: the example fits the base model's per-example limit (``example_tokens`` in the price
  table) - a longer one would be truncated or refused.

Warnings (written anyway): ``last_message_not_assistant``, ``missing_user_message``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

ROLES = ("system", "user", "assistant", "tool", "function")
MESSAGE_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id", "function_call")
TOP_KEYS = ("messages", "tools", "parallel_tool_calls")
WARNINGS = ("last_message_not_assistant", "missing_user_message")


@dataclass(frozen=True)
class Problem:
    """One broken rule: the example (1-based line), the rule's code, and what is wrong where."""

    line: int
    code: str
    message: str

    @property
    def severity(self) -> str:
        return "warning" if self.code in WARNINGS else "error"

    def __str__(self) -> str:
        return f"line {self.line}: {self.code}: {self.message}"


def _content_ok(content: Any) -> bool:
    if isinstance(content, str):
        return bool(content.strip())
    if isinstance(content, list) and content:
        return all(isinstance(p, Mapping) and p.get("type") in ("text", "image_url") and
                   (p.get("type") != "text" or bool(str(p.get("text") or "").strip())) for p in content)
    return False


def _tool_call_problem(call: Any) -> str | None:
    if not isinstance(call, Mapping):
        return "a tool call is not an object"
    fn = call.get("function")
    if not call.get("id") or call.get("type", "function") != "function" or not isinstance(fn, Mapping):
        return "a tool call needs an id, type 'function' and a function {name, arguments}"
    if not fn.get("name"):
        return "a tool call's function has no name"
    if not isinstance(fn.get("arguments"), str):
        return "a tool call's arguments must be a JSON string"
    try:
        json.loads(fn["arguments"])
    except ValueError:
        return f"tool call {call.get('id')!r}: arguments are not valid JSON"
    return None


def message_problems(example: Any, line: int) -> list[Problem]:
    """Every format problem of one example (no token count: see :func:`validate_examples`)."""
    if not isinstance(example, Mapping):
        return [Problem(line, "data_type", f"a line is a JSON object, got {type(example).__name__}")]
    out = [Problem(line, "unrecognized_key", f"unknown top-level key {k!r} (use {', '.join(TOP_KEYS)})")
           for k in example if k not in TOP_KEYS]
    messages = example.get("messages")
    if not isinstance(messages, list) or not messages:
        return [*out, Problem(line, "missing_messages_list", "`messages` must be a non-empty list")]
    call_ids: set[str] = set()
    for i, m in enumerate(messages):
        out += _message(m, i, line, call_ids)
    roles = [m.get("role") for m in messages if isinstance(m, Mapping)]
    if "assistant" not in roles:
        out.append(Problem(line, "example_missing_assistant_message", "no assistant message to train on"))
    elif roles and roles[-1] != "assistant":
        out.append(Problem(line, "last_message_not_assistant", f"the last message is from {roles[-1]!r}"))
    if "user" not in roles:
        out.append(Problem(line, "missing_user_message", "no user message"))
    return out


def _message(m: Any, i: int, line: int, call_ids: set[str]) -> list[Problem]:
    where = f"messages[{i}]"
    if not isinstance(m, Mapping) or "role" not in m:
        return [Problem(line, "message_missing_key", f"{where} has no role")]
    out = [Problem(line, "message_unrecognized_key", f"{where} has an unknown key {k!r}")
           for k in m if k not in MESSAGE_KEYS]
    role = m.get("role")
    if role not in ROLES:
        out.append(Problem(line, "unrecognized_role", f"{where}.role {role!r} (use {', '.join(ROLES)})"))
    calls = m.get("tool_calls") or []
    if role == "assistant" and (calls or m.get("function_call")):
        if m.get("content") not in (None, "") and not _content_ok(m.get("content")):
            out.append(Problem(line, "missing_content", f"{where}.content is neither text nor empty"))
    elif not _content_ok(m.get("content")):
        out.append(Problem(line, "missing_content", f"{where} ({role}) has no text content"))
    if "weight" in m and (role != "assistant" or m["weight"] not in (0, 1) or isinstance(m["weight"], bool)):
        out.append(Problem(line, "invalid_weight", f"{where}.weight: only on assistant messages, 0 or 1"))
    if calls and role != "assistant":
        out.append(Problem(line, "invalid_tool_call", f"{where}: only assistant messages make tool calls"))
    for call in calls if isinstance(calls, list) else [calls]:
        why = _tool_call_problem(call)
        if why:
            out.append(Problem(line, "invalid_tool_call", f"{where}: {why}"))
        elif isinstance(call, Mapping):
            call_ids.add(str(call["id"]))
    if role == "tool" and str(m.get("tool_call_id")) not in call_ids:
        out.append(Problem(line, "tool_message_without_call",
                           f"{where}: tool_call_id {m.get('tool_call_id')!r} answers no earlier tool call"))
    return out


def validate_examples(examples: Sequence[Any], *, token_counts: Sequence[int] | None = None,
                      limit: int | None = None) -> list[Problem]:
    """Problems of every example; with ``token_counts`` and ``limit``, examples over the per-example limit too."""
    out = [p for i, ex in enumerate(examples, 1) for p in message_problems(ex, i)]
    if token_counts is not None and limit is not None:
        out += [Problem(i, "too_many_tokens", f"{n:,} tokens; the base model takes at most {limit:,} per example")
                for i, n in enumerate(token_counts, 1) if n > limit]
    return sorted(out, key=lambda p: p.line)


def validate_jsonl(path: str | Path, base_model: str | None = None) -> list[Problem]:
    """Check a fine-tuning JSONL file line by line (with ``base_model``: token limits too)."""
    from .estimate import example_tokens, training_price

    path = Path(path)
    try:
        lines = path.read_text("utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {path} as UTF-8 text: {e}") from e
    examples, out = [], []
    for i, text in enumerate(lines, 1):
        try:
            examples.append(json.loads(text))
        except ValueError as e:
            examples.append(None)
            out.append(Problem(i, "data_type", f"not JSON: {e}"))
    checked = [p for p in validate_examples([e if e is not None else {} for e in examples])
               if examples[p.line - 1] is not None]
    out += checked
    if base_model:
        limit = training_price(base_model).example_tokens
        for i, ex in enumerate(examples, 1):
            if ex is not None and not any(p.line == i and p.severity == "error" for p in out) and limit:
                n = example_tokens(ex, base_model)
                if n > limit:
                    out.append(Problem(i, "too_many_tokens", f"{n:,} tokens; {base_model} takes at most {limit:,}"))
    return sorted(out, key=lambda p: p.line)
