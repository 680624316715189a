"""Tools (function calling): definitions a variant offers, the calls a model makes, and the results given back.

- :func:`normalize_tools` turns the short form (``{name, description, parameters}``) or OpenAI's own form
  (``{type: function, function: {...}}``) into OpenAI's form, refusing a bad name, a duplicate or a
  ``parameters`` that is not a valid JSON Schema of an object - when the variant is built, before anything is sent.
- :func:`normalize_tool_choice` checks ``tool_choice`` against the variant's tools.
- :func:`tool_call` / :func:`call_arguments` build and read calls in the OpenAI shape
  (``{id, type: function, function: {name, arguments: "<JSON text>"}}``).
- :class:`ToolRunner` answers a model's calls with a variant's static results, a case's ``tool_results`` column
  or Python functions (``package.module:function``, called with the call's arguments as keywords).

Pure and light: the spec (``variants.py``), the harness, the scorers and the fake backend all use it.
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .errors import DataError

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TOOL_RESULTS = "tool_results"  # a case column: {tool name: result} answering the model's calls for that case
EXPECTED_TOOL_CALLS = "expected_tool_calls"  # a case column: the calls the `tool_call` scorer expects
CHOICES = ("auto", "none", "required")


def normalize_tools(value: Any) -> list[dict[str, Any]]:
    """OpenAI-shaped tool definitions from either form; raises ``ValueError`` naming the tool and the field."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError("tools must be a list of function definitions ({name, description, parameters})")
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, tool in enumerate(value):
        if not isinstance(tool, Mapping):
            raise ValueError(f"tools[{i}] must be a mapping {{name, description, parameters}}, got {tool!r}")
        if tool.get("type", "function") != "function":
            raise ValueError(f"tools[{i}]: type {tool.get('type')!r} is not supported; only 'function' tools")
        fn = dict(tool["function"]) if "function" in tool else {k: v for k, v in tool.items() if k != "type"}
        unknown = sorted(set(fn) - {"name", "description", "parameters", "strict"})
        if unknown:
            raise ValueError(f"tools[{i}]: unknown field(s) {', '.join(unknown)}; a function has name, description, "
                             "parameters (a JSON Schema) and strict")
        name = fn.get("name")
        if not isinstance(name, str) or not TOOL_NAME.match(name):
            raise ValueError(f"tools[{i}].name {name!r}: a function name is 1-64 letters, digits, _ or -")
        if name in seen:
            raise ValueError(f"tools[{i}].name {name!r}: two tools have this name")
        seen.add(name)
        fn["parameters"] = _checked_parameters(fn.get("parameters"), f"tools[{i}] ({name}).parameters")
        out.append({"type": "function", "function": fn})
    return out


def _checked_parameters(schema: Any, where: str) -> dict[str, Any]:
    import jsonschema

    if schema is None:
        return {"type": "object", "properties": {}}
    if not isinstance(schema, Mapping):
        raise ValueError(f"{where} must be a JSON Schema object, got {schema!r}")
    schema = dict(schema)
    if schema.get("type", "object") != "object":
        raise ValueError(f"{where}: a function's parameters are an object schema (type: object), "
                         f"not type {schema.get('type')!r}")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as e:
        raise ValueError(f"{where}: invalid JSON Schema at {e.json_path}: {e.message}") from None
    return schema


def tool_names(tools: Sequence[Mapping[str, Any]]) -> list[str]:
    return [t["function"]["name"] for t in tools]


def normalize_tool_choice(choice: Any, tools: Sequence[Mapping[str, Any]]) -> Any:
    """``auto`` / ``none`` / ``required`` / a tool's name / OpenAI's ``{type: function, function: {name}}``."""
    if choice is None:
        return None
    if not tools:
        raise ValueError("tool_choice is set but the variant has no tools")
    names = tool_names(tools)
    if isinstance(choice, str):
        if choice in CHOICES:
            return choice
        name = choice
    elif isinstance(choice, Mapping) and isinstance(choice.get("function"), Mapping):
        name = choice["function"].get("name")
    else:
        raise ValueError(f"tool_choice {choice!r}: use auto, none, required or a tool's name")
    if name not in names:
        raise ValueError(f"tool_choice names {name!r}, which is not one of the variant's tools "
                         f"({', '.join(names)}){did_you_mean(name, names)}")
    return {"type": "function", "function": {"name": name}}


def did_you_mean(name: Any, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(name), list(names), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


# ------------------------------------------------------------------------------------------------ calls

def tool_call(name: str, arguments: Mapping[str, Any] | str | None = None, id: str | None = None) -> dict[str, Any]:
    """One call in the OpenAI shape (arguments as JSON text, as the API sends them)."""
    args = arguments if isinstance(arguments, str) else json.dumps(dict(arguments or {}), ensure_ascii=False)
    return {"id": id or f"call_{name}", "type": "function", "function": {"name": name, "arguments": args}}


def call_name(call: Mapping[str, Any]) -> str:
    return str((call.get("function") or {}).get("name") or call.get("name") or "")


def call_arguments(call: Mapping[str, Any]) -> tuple[Any, str | None]:
    """A call's arguments parsed: (value, None), or (raw text, why it is not a JSON object)."""
    raw = (call.get("function") or {}).get("arguments", call.get("arguments"))
    if isinstance(raw, Mapping):
        return dict(raw), None
    if raw is None or raw == "":
        return {}, None
    try:
        value = json.loads(raw)
    except (TypeError, ValueError) as e:
        return raw, f"the arguments are not valid JSON ({e})"
    if not isinstance(value, dict):
        return value, "the arguments are not a JSON object"
    return value, None


def show_call(call: Mapping[str, Any]) -> str:
    """``get_weather({"city": "Paris"})``: a call as a person reads it."""
    args, problem = call_arguments(call)
    shown = args if problem else json.dumps(args, ensure_ascii=False, sort_keys=True)
    return f"{call_name(call)}({shown})"


def expected_calls(value: Any, where: str) -> list[dict[str, Any]]:
    """A case's expected calls: a name, ``{name, arguments}`` or ``{name, schema}``, a list of those (parallel
    calls, in any order), or their JSON text (a CSV cell)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith(("[", "{")):
            try:
                value = json.loads(text)
            except ValueError as e:
                raise DataError(f"{where}: {EXPECTED_TOOL_CALLS} is not valid JSON ({e}).") from None
        else:
            value = [text] if text else []
    if isinstance(value, Mapping):
        value = value.get("tool_calls", [value]) if "name" not in value else [value]
    if not isinstance(value, Sequence):
        raise DataError(f"{where}: {EXPECTED_TOOL_CALLS} must be a tool name, {{name, arguments}} or a list of them; "
                        f"got {value!r}.")
    out = []
    for i, item in enumerate(value):
        item = {"name": item} if isinstance(item, str) else item
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise DataError(f"{where}: {EXPECTED_TOOL_CALLS}[{i}] needs a `name`; got {item!r}.")
        unknown = sorted(set(item) - {"name", "arguments", "schema"})
        if unknown:
            raise DataError(f"{where}: {EXPECTED_TOOL_CALLS}[{i}] has unknown key(s) {', '.join(unknown)}; "
                            "use name, arguments, schema.")
        out.append(dict(item))
    return out


# ---------------------------------------------------------------------------------------------- results

def resolve_function(ref: str | Callable[..., Any], where: str) -> Callable[..., Any]:
    """``package.module:function`` (or ``package.module.function``) imported, or a callable as is; DataError
    naming ``where`` otherwise. The one importer of user functions: tool functions and the python scorer."""
    if callable(ref):
        return ref
    module_name, sep, attr = str(ref).strip().partition(":")
    if not sep:
        module_name, _, attr = module_name.rpartition(".")
    if not module_name or not attr:
        raise DataError(f"{where}: {ref!r} is not an import path like 'package.module:function'.")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise DataError(f"{where}: cannot import {ref!r} ({type(e).__name__}: {e}); check the module is "
                        "importable from the working directory or installed.") from None
    if not callable(obj):
        raise DataError(f"{where}: {ref!r} is not callable.")
    return obj


def result_text(value: Any) -> str:
    """A tool result as the message content the model reads: text as is, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


class ToolRunner:
    """Answers a model's tool calls for one cell: the case's ``tool_results`` first, then the variant's static
    ``tool_results``, then its ``tool_functions``. A call nothing answers, or a function that raises, gets an
    error result the model reads (and the step records), so the loop goes on and the record says why."""

    def __init__(self, functions: Mapping[str, Callable[..., Any]], static: Mapping[str, Any]):
        self.functions, self.static = dict(functions), dict(static)

    def answer(self, call: Mapping[str, Any]) -> tuple[str, str | None]:
        """(result text, error or None) for one call."""
        name = call_name(call)
        if name in self.static:
            return result_text(self.static[name]), None
        fn = self.functions.get(name)
        if fn is None:
            known = sorted({*self.static, *self.functions})
            error = f"no result for tool {name!r} (the variant answers {', '.join(known) or 'no tool'})"
            return result_text({"error": error}), error
        args, problem = call_arguments(call)
        if problem:
            return result_text({"error": problem}), problem
        try:
            return result_text(fn(**args)), None
        except Exception as e:  # the model sees the failure, as an application would show it
            error = f"{type(e).__name__}: {e}"
            return result_text({"error": error}), error
