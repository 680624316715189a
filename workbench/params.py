"""Request parameters: which ones exist and what values they take (:func:`param_problems`), what a given model
needs for them (:func:`model_problems`), and adapting them to what a model accepts - saying so whenever something
the user set changes (:func:`adapt_request`).

The checks run before anything is sent, from every way in: a variant's ``params`` (Python, YAML, widgets),
``workbench chat`` flags, a profile's ``defaults``, and the plan of a run (per model).

Reasoning models (o1, o1-mini, o3, o3-mini, o4-mini) reject temperature, top_p, the penalties, logprobs and
logit_bias and ``max_tokens``; they take ``max_completion_tokens`` (which includes reasoning tokens) and
``reasoning_effort``; and their system message is sent as a ``developer`` message (o1-mini accepts neither,
so its instructions are merged into the first user turn). Source: Azure OpenAI "reasoning models" how-to.
"""

from __future__ import annotations

import copy
import difflib
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .catalog import ModelInfo
from .errors import DataError, ParameterWarning
from .messages import content_text
from .secrets import contains_known_secret

# The chat-completions request parameters: the keyword arguments of the openai SDK's `Completions.create`
# (openai 3.x; `providers.provider._sdk_create_params()` reads them at run time and tests/test_params.py checks
# this table against it). Left out: `model` and `messages` (the workbench builds them) and the SDK's client-side
# options `extra_headers`, `extra_query` and `timeout`.
CHAT_PARAMETERS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "metadata", "modalities", "moderation", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "prompt_cache_options", "prompt_cache_retention", "reasoning_effort",
    "response_format", "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options",
    "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
})
# The escape hatch: a mapping sent as it is, merged into the request body - for a parameter newer than this table,
# or a backend's own (Azure's `data_sources`).
EXTRA_BODY = "extra_body"
# Parameters the workbench sets itself: a run records one answer per call, and repeats are its own axis.
MANAGED = {
    "stream": "the workbench decides whether to stream; remove it",
    "stream_options": "the workbench decides whether to stream; remove it",
    "n": "a run records one answer per call: use `repeats: N` for several samples",
}
# Values checked before a run (the API would reject them one call at a time): (type, lowest, highest), the
# ranges of the API reference.
PARAM_RULES: dict[str, tuple[Any, float | None, float | None]] = {
    "temperature": ((int, float), 0, 2), "top_p": ((int, float), 0, 1),
    "presence_penalty": ((int, float), -2, 2), "frequency_penalty": ((int, float), -2, 2),
    "max_tokens": (int, 1, 10_000_000), "max_completion_tokens": (int, 1, 10_000_000), "seed": (int, None, None),
    "top_logprobs": (int, 0, 20), "logprobs": (bool, None, None),
}
# Parameters a model needs a catalog capability for (data/models.toml `capabilities`).
NEEDS_CAPABILITY = {"tools": "tools", "tool_choice": "tools", "parallel_tool_calls": "tools", "functions": "tools",
                    "function_call": "tools"}


def kind_name(kind: Any) -> str:
    return {(int, float): "number", int: "whole number", bool: "true or false"}.get(kind, getattr(kind, "__name__", ""))


def param_problems(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(name, what is wrong)`` for each parameter no model would accept: an unknown name (with the nearest
    known one, and the ``extra_body`` escape hatch), one the workbench manages, or a value out of its range.
    Callers show it under the parameter's path (``variants[0].params.temprature``) or the flag's name."""
    out = []
    for name, value in params.items():
        if name == EXTRA_BODY:
            if not isinstance(value, Mapping):
                out.append((name, f"expected a mapping of parameter -> value, sent as it is (got {value!r})"))
        elif name not in CHAT_PARAMETERS:
            close = difflib.get_close_matches(name, sorted(CHAT_PARAMETERS), n=1, cutoff=0.6)
            hint = f"did you mean {close[0]!r}? " if close else ""
            out.append((name, f"not a chat-completions parameter; {hint}(a parameter newer than the workbench goes "
                              f"under {EXTRA_BODY}: {{{name}: ...}}, which is sent as it is)"))
        elif name in MANAGED and not (name == "n" and value == 1) and value not in (None, False):
            out.append((name, MANAGED[name]))
        elif value is not None and name in PARAM_RULES:
            kind, lo, hi = PARAM_RULES[name]
            ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
            if ok and lo is not None and not lo <= value <= hi:
                ok = False
            if not ok:
                rng = f" between {lo} and {hi}" if lo is not None else ""
                out.append((name, f"expected a {kind_name(kind)}{rng} (got {value!r})"))
    return out


def refuse_unsendable(deployment: str, model: ModelInfo, params: Mapping[str, Any],
                      messages: list[dict[str, Any]]) -> None:
    """Raise :class:`DataError` if the request (as adapted for ``model``) would be refused: the check every
    request passes before it is sent, from a run's plan, a widget, a judge or ``workbench chat``."""
    problems = [f"{name}: {msg}" for name, msg in param_problems(params)] + model_problems(model, params, messages)
    if _holds_known_secret(messages, params):
        problems.append("it contains an API key the workbench read for a profile (in the prompt, the dataset or a "
                        "parameter): a key must not be sent to a model, nor stored with its answer; remove it")
    if problems:
        label = deployment if deployment == model.name else f"{deployment} ({model.name})"
        raise DataError(f"cannot send this request to {label}: {'; '.join(problems)}.")


def _holds_known_secret(messages: list[dict[str, Any]], params: Mapping[str, Any]) -> bool:
    texts = [content_text(m.get("content")) for m in messages] + [str(v) for v in params.values()]
    return contains_known_secret("\n".join(texts))


def model_problems(model: ModelInfo, params: Mapping[str, Any], messages: list[dict[str, Any]]) -> list[str]:
    """What ``model`` cannot take in this request, per the catalog: images without vision, tools without tool
    support, a JSON schema without structured outputs, more output tokens than it returns, or a model that does
    not chat at all. Empty when the request is fine."""
    if not model.supports("chat"):
        return [f"{model.name} is not a chat model (capabilities: {', '.join(sorted(model.capabilities))})"]
    out = []
    if not model.has_vision and any(isinstance(m.get("content"), list) and any(
            isinstance(p, Mapping) and p.get("type") in ("image_url", "input_image") for p in m["content"])
            for m in messages):
        out.append(f"{model.name} does not accept images; send image prompts to a vision model")
    for name, capability in NEEDS_CAPABILITY.items():
        if params.get(name) and not model.supports(capability):
            out.append(f"{model.name} does not support {capability} ({name})")
    rf = params.get("response_format")
    if isinstance(rf, Mapping) and rf.get("type") == "json_schema" and not model.supports("structured_output"):
        out.append(f"{model.name} does not support structured outputs (response_format json_schema); "
                   "use response_format: json, or a model that does")
    for name in ("max_tokens", "max_completion_tokens"):
        value = params.get(name)
        if isinstance(value, int) and model.max_output_tokens and value > model.max_output_tokens:
            out.append(f"{name}={value:,} is more than {model.name} returns ({model.max_output_tokens:,} tokens)")
    return out

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
