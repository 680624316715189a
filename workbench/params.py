"""Adapt request parameters to what a model accepts - and say so whenever something the user set changes.

Reasoning models (o1, o1-mini, o3, o3-mini, o4-mini) reject temperature, top_p, the penalties, logprobs and
logit_bias and ``max_tokens``; they take ``max_completion_tokens`` (which includes reasoning tokens) and
``reasoning_effort``; and their system message is sent as a ``developer`` message (o1-mini accepts neither,
so its instructions are merged into the first user turn). Source: Azure OpenAI "reasoning models" how-to.
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelInfo
from .errors import ParameterWarning
from .messages import content_text

# Rejected by reasoning models (Azure reasoning-models how-to, "not supported" list).
REASONING_UNSUPPORTED = (
    "temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs", "logit_bias",
)


@dataclass
class Adapted:
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def adapt_request(
    model: ModelInfo, messages: list[dict[str, Any]], params: dict[str, Any], *, warn: bool = True,
    stacklevel: int = 2,
) -> Adapted:
    """Return messages and parameters the model accepts, with a note for every change.

    Pure apart from emitting :class:`ParameterWarning` (so notebooks show it); ``warn=False`` only
    collects the notes, e.g. when the harness records them per cell.
    """
    params = {k: v for k, v in params.items() if v is not None}
    if _needs_role_change(model, messages):
        messages = copy.deepcopy(messages)  # only then: adapting thousands of requests must stay cheap
    notes: list[str] = []
    if model.is_reasoning:
        for name in REASONING_UNSUPPORTED:
            if name in params:
                notes.append(f"{model.name} does not accept {name}; dropped {name}={params.pop(name)!r}")
        if "max_tokens" in params:
            value = params.pop("max_tokens")
            if "max_completion_tokens" not in params:
                params["max_completion_tokens"] = value
                notes.append(
                    f"{model.name} takes max_completion_tokens (it includes reasoning tokens); "
                    f"sent max_tokens={value} as max_completion_tokens={value}"
                )
            else:
                notes.append(f"{model.name}: dropped max_tokens={value}, max_completion_tokens is set")
        if "reasoning_effort" in params and not model.reasoning_effort:
            notes.append(f"{model.name} does not accept reasoning_effort; dropped {params.pop('reasoning_effort')!r}")
    elif "reasoning_effort" in params:
        notes.append(
            f"{model.name} is not a reasoning model; dropped reasoning_effort={params.pop('reasoning_effort')!r}"
        )
    messages, role_notes = _adapt_roles(model, messages)
    notes.extend(role_notes)
    if warn:
        for n in notes:
            warnings.warn(n, ParameterWarning, stacklevel=stacklevel)
    return Adapted(messages, params, notes)


def _needs_role_change(model: ModelInfo, messages: list[dict[str, Any]]) -> bool:
    roles = {m.get("role") for m in messages}
    if model.system_role == "system":
        return "developer" in roles
    if model.system_role == "developer":
        return "system" in roles
    return bool(roles & {"system", "developer"})


def _adapt_roles(model: ModelInfo, messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    wanted = model.system_role
    notes: list[str] = []
    if wanted == "system":
        # developer messages are an o-series idea; older models only know "system"
        if any(m.get("role") == "developer" for m in messages):
            notes.append(f"{model.name} has no developer role; sent developer message(s) as system")
            for m in messages:
                if m.get("role") == "developer":
                    m["role"] = "system"
        return messages, notes
    if wanted == "developer":
        if any(m.get("role") == "system" for m in messages):
            notes.append(f"{model.name} takes developer messages; sent the system message(s) as developer")
            for m in messages:
                if m.get("role") == "system":
                    m["role"] = "developer"
        return messages, notes
    # "user": fold system/developer instructions into the first user message
    instructions = [m for m in messages if m.get("role") in ("system", "developer")]
    if not instructions:
        return messages, notes
    rest = [m for m in messages if m.get("role") not in ("system", "developer")]
    text = "\n\n".join(content_text(m.get("content")) for m in instructions)
    for m in rest:
        if m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, list):
                m["content"] = [{"type": "text", "text": text}, *content]
            else:
                m["content"] = f"{text}\n\n{content or ''}"
            break
    else:
        rest.insert(0, {"role": "user", "content": text})
    notes.append(f"{model.name} accepts no system or developer messages; merged them into the first user message")
    return rest, notes
