"""Prompt variants: named message templates with a target, parameters and an output format.

Templates are jinja2 with ``StrictUndefined``: a variable missing from a case is an error that names the
variant, the template field, the variable and the case - found before the run starts (:func:`check_variables`).
"""

from __future__ import annotations

import difflib
import itertools
import json
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
from pydantic import ConfigDict, Field, field_validator, model_validator

from .datasets import Case
from .errors import DataError
from .params import param_problems
from .schema import Model, located_problems
from .tools import TOOL_RESULTS, normalize_tool_choice, normalize_tools, tool_names

Role = Literal["system", "developer", "user", "assistant"]

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)

# A case column holding a whole conversation (saved from the playground's chat, or written by hand): its
# messages follow the variant's system and few-shot turns, and its last user message takes the place of the
# variant's user template. Messages are sent as written (no template rendering: they are data).
CONVERSATION = "conversation"


@lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def template_variables(source: str) -> set[str]:
    """Variables a template reads (``{{ text }}`` -> ``{"text"}``)."""
    return set(jinja2.meta.find_undeclared_variables(_ENV.parse(source)))


class Target(Model):
    """Where a variant runs: a connection profile and a deployment/model on it."""

    _spec_noun = "target"

    model_config = ConfigDict(frozen=True, extra="forbid")

    profile: str = "local"
    model: str | None = None  # Azure deployment or model name; None = the profile's default

    @property
    def label(self) -> str:
        return f"{self.profile}:{self.model}" if self.model else self.profile

    @classmethod
    def parse(cls, value: str | Mapping[str, Any] | Target) -> Target:
        """``"azure:gpt4o-deploy"``, ``"local"``, ``{"profile": ..., "model": ...}`` or a Target."""
        if isinstance(value, Target):
            return value
        if isinstance(value, str):
            profile, _, model = value.partition(":")
            return cls(profile=profile or "local", model=model or None)
        return cls(**value)


class Turn(Model):
    """One fixed or templated message (few-shot examples are user/assistant turns)."""

    _spec_noun = "turn"

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str


class Variant(Model):
    """A named prompt: its messages, parameters, output format and (optionally) its own target."""

    _spec_noun = "variant"

    model_config = ConfigDict(extra="forbid")

    name: str
    system: str | None = None
    turns: list[Turn] = Field(default_factory=list, description="few-shot turns between system and user")
    user: str = "{{ input }}"
    images: list[str] = Field(default_factory=list, description="templates giving image paths, URLs or data URLs")
    image_detail: Literal["low", "high", "auto"] = "auto"
    target: Target | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    response_format: dict[str, Any] | None = None
    description: str = ""
    tools: list[dict[str, Any]] = Field(default_factory=list)
    """Function definitions the model may call: ``{name, description, parameters}`` (a JSON Schema of an object)
    or OpenAI's ``{type: function, function: {...}}``; stored in OpenAI's form. Their strings are templates."""
    tool_choice: str | dict[str, Any] | None = None
    """``auto``, ``none``, ``required`` or the name of one of :attr:`tools` (the model must call it)."""
    parallel_tool_calls: bool | None = None
    """Whether the model may make several calls in one answer (None: the service's default)."""
    tool_results: dict[str, Any] = Field(default_factory=dict)
    """Static results, by tool name, given back for the model's calls (strings are templates over the case; a
    case's own ``tool_results`` column comes first). With these or :attr:`tool_functions` a cell is a loop."""
    tool_functions: dict[str, str] = Field(default_factory=dict)
    """Python functions answering calls, by tool name: ``package.module:function``, called with the call's
    arguments as keywords; what it returns (text, or anything JSON can hold) is the tool result."""
    max_steps: int = Field(default=5, ge=1, le=50)
    """Model calls per cell at most when the variant answers tool calls (model -> tools -> model ...)."""

    @field_validator("name")
    @classmethod
    def _name_ok(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a variant needs a non-empty name")
        return v

    @field_validator("params")
    @classmethod
    def _params_ok(cls, v: dict[str, Any]) -> dict[str, Any]:
        problems = param_problems(v)
        if problems:
            raise located_problems("params", [(name, msg, v[name]) for name, msg in problems])
        return v

    @field_validator("target", mode="before")
    @classmethod
    def _target(cls, v: Any) -> Any:
        return Target.parse(v) if isinstance(v, str) else v

    @field_validator("response_format", mode="before")
    @classmethod
    def _format(cls, v: Any) -> Any:
        return normalize_response_format(v)

    @field_validator("tools", mode="before")
    @classmethod
    def _tools(cls, v: Any) -> Any:
        return normalize_tools(v)

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _tool_choice(cls, v: Any, info: Any) -> Any:
        return normalize_tool_choice(v, info.data.get("tools") or [])

    @model_validator(mode="after")
    def _tool_answers(self) -> Variant:
        names = tool_names(self.tools)
        if self.parallel_tool_calls is not None and not self.tools:
            raise ValueError("parallel_tool_calls is set but the variant has no tools")
        for field, mapping in (("tool_results", self.tool_results), ("tool_functions", self.tool_functions)):
            for name in mapping:
                if name not in names:
                    from .tools import did_you_mean

                    raise ValueError(f"{field} answers {name!r}, which is not one of the variant's tools "
                                     f"({', '.join(names) or 'none'}){did_you_mean(name, names)}")
        for name, ref in self.tool_functions.items():
            if not isinstance(ref, str) or ":" not in ref:
                raise ValueError(f"tool_functions.{name}: {ref!r} is not an import path like 'package.module:function'")
        clash = sorted({"tools", "tool_choice", "parallel_tool_calls"} & set(self.params))
        if clash and self.tools:
            raise ValueError(f"params.{clash[0]}: give tools, tool_choice and parallel_tool_calls as variant fields, "
                             "not as params")
        return self

    @property
    def answers_tools(self) -> bool:
        """The variant gives results for the model's calls (static or Python), so its cells loop."""
        return bool(self.tools) and bool(self.tool_results or self.tool_functions)

    def tool_params(self, case: Case | Mapping[str, Any] | None = None, source: str | None = None) -> dict[str, Any]:
        """The request's ``tools``, ``tool_choice`` and ``parallel_tool_calls`` (their templates rendered for
        ``case``; as written without one)."""
        if not self.tools:
            return {}
        tools = self.tools
        if case is not None and any(f.startswith("tools[") for f, _ in self.template_fields()):
            values, where, columns = _values(case, source)
            tools = _render_leaves(self.tools, "tools", lambda f, s: self._render(f, s, values, where, columns))
        out: dict[str, Any] = {"tools": tools}
        if self.tool_choice is not None:
            out["tool_choice"] = self.tool_choice
        if self.parallel_tool_calls is not None:
            out["parallel_tool_calls"] = self.parallel_tool_calls
        return out

    def static_tool_results(self, case: Case | Mapping[str, Any], source: str | None = None) -> dict[str, Any]:
        """Results by tool name for ``case``: the case's ``tool_results`` column over the variant's own (whose
        strings are rendered for the case)."""
        values, where, columns = _values(case, source)
        out = _render_leaves(self.tool_results, "tool_results",
                             lambda f, s: self._render(f, s, values, where, columns))
        own = values.get(TOOL_RESULTS)
        if isinstance(own, str) and own.strip():
            try:
                own = json.loads(own)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: column {TOOL_RESULTS!r} is not a JSON object ({e.msg}).") from None
        if own is not None and own == own:  # (NaN: an empty cell of a table)
            if not isinstance(own, Mapping):
                raise DataError(f"{where}: column {TOOL_RESULTS!r} must map tool names to results; got {own!r}.")
            out.update(own)
        return out

    @model_validator(mode="after")
    def _templates_parse(self) -> Variant:
        for fieldname, source in self.template_fields():
            try:
                _ENV.parse(source)
            except jinja2.TemplateSyntaxError as e:
                raise ValueError(f"variant {self.name!r}, {fieldname}: template syntax error on line {e.lineno}: "
                                 f"{e.message}") from None
        return self

    # -- templates --------------------------------------------------------------------------------------
    def template_fields(self) -> list[tuple[str, str]]:
        out = []
        if self.system:
            out.append(("system", self.system))
        out.extend((f"turns[{i}]", t.content) for i, t in enumerate(self.turns))
        out.append(("user", self.user))
        out.extend((f"images[{i}]", s) for i, s in enumerate(self.images))
        out.extend(_template_leaves(self.tools, "tools"))
        out.extend(_template_leaves(self.tool_results, "tool_results"))
        return out

    def variables(self, conversation: bool = False) -> set[str]:
        """Variables the templates read; for a conversation case (``conversation``) the user template is unused."""
        fields = [(f, s) for f, s in self.template_fields() if not (conversation and f == "user")]
        return set().union(*(template_variables(s) for _, s in fields))

    @property
    def wants_json(self) -> bool:
        return bool(self.response_format and self.response_format.get("type") in ("json_object", "json_schema"))

    def render(
        self, case: Case | Mapping[str, Any], *, base_dir: str | Path | None = None, system_role: str = "system",
        source: str | None = None,
    ) -> list[dict[str, Any]]:
        """The chat messages for one case (``source``: the dataset file, for messages). Raises :class:`DataError`
        naming what is missing or wrong, and where."""
        values, where, columns = _values(case, source)
        messages: list[dict[str, Any]] = []
        if self.system:
            messages.append(
                {"role": system_role, "content": self._render("system", self.system, values, where, columns)}
            )
        for i, t in enumerate(self.turns):
            messages.append({"role": t.role, "content": self._render(f"turns[{i}]", t.content, values, where, columns)})
        if values.get(CONVERSATION) is not None:
            return messages + conversation_messages(values[CONVERSATION], where)
        text = self._render("user", self.user, values, where, columns)
        if self.images:
            parts: list[dict[str, Any]] = [{"type": "text", "text": text}]
            for ref in self.image_refs(case, source=source):
                parts.append({"type": "image_url", "image_url": {
                    "url": image_url(ref, base_dir, f"variant {self.name!r}, {where}"), "detail": self.image_detail}})
            messages.append({"role": "user", "content": parts})
        else:
            messages.append({"role": "user", "content": text})
        return messages

    def image_refs(self, case: Case | Mapping[str, Any], *, source: str | None = None) -> list[str]:
        """The images this variant sends for ``case``: its ``images`` templates rendered (empty ones left out)."""
        values, where, columns = _values(case, source)
        refs = (self._render(f"images[{i}]", src, values, where, columns).strip() for i, src in enumerate(self.images))
        return [ref for ref in refs if ref]

    def _render(self, fieldname: str, source: str, values: dict, where: str, columns: list[str]) -> str:
        try:
            return _compile(source).render(values)
        except jinja2.UndefinedError as e:
            missing = sorted(template_variables(source) - set(values))
            var = missing[0] if missing else str(e.message)
            raise DataError(f"Variant {self.name!r}, {fieldname}: variable {{{{ {var} }}}} is not defined for "
                            f"{where}. {missing_hint(var, columns)}") from None
        except jinja2.TemplateError as e:
            raise DataError(f"Variant {self.name!r}, {fieldname}: template error for {where}: {e}") from None

    def with_(self, **changes: Any) -> Variant:
        """A copy with some fields changed (``params`` are merged)."""
        data = self.model_dump()
        if "params" in changes:
            data["params"] = {**data["params"], **changes.pop("params")}
        data.update(changes)
        return Variant(**data)


def _template_leaves(value: Any, path: str) -> list[tuple[str, str]]:
    """(path, string) for every string inside ``value`` that holds a template (``{{`` or ``{%``)."""
    if isinstance(value, str):
        return [(path, value)] if ("{{" in value or "{%" in value) else []
    if isinstance(value, Mapping):
        return [leaf for k, v in value.items() for leaf in _template_leaves(v, f"{path}.{k}")]
    if isinstance(value, (list, tuple)):
        return [leaf for i, v in enumerate(value) for leaf in _template_leaves(v, f"{path}[{i}]")]
    return []


def _render_leaves(value: Any, path: str, render: Any) -> Any:
    """``value`` with every templated string rendered by ``render(path, source)``."""
    if isinstance(value, str):
        return render(path, value) if ("{{" in value or "{%" in value) else value
    if isinstance(value, Mapping):
        return {k: _render_leaves(v, f"{path}.{k}", render) for k, v in value.items()}
    if isinstance(value, list):
        return [_render_leaves(v, f"{path}[{i}]", render) for i, v in enumerate(value)]
    return value


def conversation_messages(value: Any, where: str = "a case") -> list[dict[str, Any]]:
    """A case's ``conversation`` as chat messages: a list (or its JSON text, as a CSV cell holds it) in the OpenAI
    shape - ``{"role": "user" | "assistant" | "system", "content": "..."}``, assistant messages with
    ``tool_calls``, and ``{"role": "tool", "tool_call_id": ..., "content": ...}`` results - ending with the
    message to answer (a user message, or a tool result)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: column {CONVERSATION!r} is not a JSON list of messages ({e.msg}).") from None
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: column {CONVERSATION!r} must be a non-empty list of messages.")
    out: list[dict[str, Any]] = []
    open_calls: set[str] = set()
    for i, m in enumerate(value):
        out.append(_conversation_message(m, i, where, open_calls))
    if out[-1]["role"] not in ("user", "tool"):
        raise DataError(f"{where}: a {CONVERSATION!r} ends with the user message to answer (or a tool result); "
                        f"the last one is {out[-1]['role']!r}.")
    return out


def _conversation_message(m: Any, i: int, where: str, open_calls: set[str]) -> dict[str, Any]:
    from .tools import call_arguments, call_name

    role = m.get("role") if isinstance(m, dict) else None
    at = f"{where}: {CONVERSATION}[{i}]"
    if role == "assistant" and isinstance(m, dict) and m.get("tool_calls"):
        calls = m["tool_calls"]
        if not isinstance(calls, list):
            raise DataError(f"{at}.tool_calls must be a list of calls; got {calls!r}.")
        for j, call in enumerate(calls):
            if not isinstance(call, dict) or not call.get("id") or not call_name(call):
                raise DataError(f"{at}.tool_calls[{j}] needs an id and function.name; got {call!r}.")
            if call_arguments(call)[1]:
                raise DataError(f"{at}.tool_calls[{j}]: {call_arguments(call)[1]}.")
            open_calls.add(call["id"])
        content = m.get("content")
        if content is not None and not isinstance(content, str):
            raise DataError(f"{at}.content must be text or null; got {content!r}.")
        return {"role": "assistant", "content": content, "tool_calls": calls}
    if role == "tool":
        call_id, content = m.get("tool_call_id"), m.get("content")
        if call_id not in open_calls:
            raise DataError(f"{at}: a tool result answers tool_call_id {call_id!r}, which no earlier assistant "
                            "message called.")
        if not isinstance(content, str):
            raise DataError(f"{at}.content (the tool's result) must be text; got {content!r}.")
        return {"role": "tool", "tool_call_id": call_id, "content": content}
    if role not in ("user", "assistant", "system") or not isinstance(m.get("content"), str):
        raise DataError(f"{at} must be {{role: user|assistant|system, content: text}}, an assistant message with "
                        f"tool_calls, or {{role: tool, tool_call_id, content}}; got {m!r}.")
    return {"role": role, "content": m["content"]}


def _values(case: Case | Mapping[str, Any], source: str | None) -> tuple[dict[str, Any], str, list[str]]:
    """A case's template values (``case`` itself included), how messages name it, and its columns."""
    if isinstance(case, Case):
        values, where, columns = dict(case.vars), case.where(source), list(case.vars)
    else:
        values, where, columns = dict(case), "the input", list(case)
    values.setdefault("case", values)
    return values, where, columns


def normalize_response_format(v: Any) -> dict[str, Any] | None:
    """Accept ``"json"``, ``"text"``, ``{"json_schema": SCHEMA}``, a bare JSON schema, or OpenAI's own form."""
    if v is None or v == "text" or v == {"type": "text"}:
        return None
    if v in ("json", "json_object"):
        return {"type": "json_object"}
    if isinstance(v, dict):
        if v.get("type") in ("json_object", "json_schema"):
            if v["type"] == "json_schema":
                js = v.get("json_schema") or {}
                if "schema" not in js:
                    raise ValueError("response_format json_schema needs json_schema.schema")
                return {
                    "type": "json_schema",
                    "json_schema": {
                        "name": js.get("name", "output"),
                        "schema": js["schema"],
                        "strict": js.get("strict", True),
                    },
                }
            return v
        if "json_schema" in v:
            return {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": v["json_schema"], "strict": True},
            }
        if v.get("type") == "object" or "properties" in v:
            return {"type": "json_schema", "json_schema": {"name": "output", "schema": v, "strict": True}}
    raise ValueError(
        f"response_format {v!r}: use 'text', 'json', {{json_schema: SCHEMA}} or OpenAI's "
        f"{{type: json_schema, json_schema: {{name, schema}}}}"
    )


def image_url(ref: str, base_dir: str | Path | None = None, where: str = "") -> str:
    """A URL the API accepts, checked before anything is sent: a local file is opened (its format read from its
    content, its size from its header) and inlined as a base64 data URL; a data URL is decoded and opened the same
    way; an http(s) URL must be one (it is not downloaded: its size is budgeted at the most the model's rule
    allows). Errors name the image, the case and its row."""
    where = where or "a case"
    if ref.startswith(("http://", "https://")):
        parts = urllib.parse.urlsplit(ref)
        if not parts.netloc or " " in ref:
            raise DataError(f"Image {ref!r} for {where}: not a valid URL (no host, or spaces). Give a file path, an "
                            "http(s) URL or a data URL.")
        return ref
    if ref.startswith("data:"):
        return _checked_data_url(ref, f"the image data URL for {where}")
    path = Path(ref)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        raise DataError(f"Image {ref!r} for {where} not found (looked at {path}).")
    stat = path.stat()
    return _file_data_url(str(path.resolve()), stat.st_mtime_ns, stat.st_size, f"Image {ref!r} for {where} ({path})")


@lru_cache(maxsize=64)
def _file_data_url(path: str, mtime_ns: int, size: int, name: str) -> str:
    # (path, mtime, size) keys the cache: every variant and repeat of a case shares one checked, encoded string
    from .images import data_url

    return data_url(Path(path).read_bytes(), name)


@lru_cache(maxsize=64)
def _checked_data_url(url: str, name: str) -> str:
    from .images import open_image

    open_image(url, name)
    return url


def check_variables(
    variants: Iterable[Variant], cases: Sequence[Case], source: str | None = None, limit: int = 10
) -> list[str]:
    """Every (variant, variable, case) where a template variable is missing; empty when all is well."""
    problems: list[str] = []
    for v in variants:
        needed = v.variables() - {"case"}
        for c in cases:
            wanted = v.variables(conversation=True) - {"case"} if c.vars.get(CONVERSATION) is not None else needed
            missing = sorted(wanted - set(c.vars))
            for var in missing:
                problems.append(f"variant {v.name!r} uses {{{{ {var} }}}}, missing for {c.where(source)}. "
                                + missing_hint(var, list(c.vars)))
                if len(problems) >= limit:
                    return problems
    return problems


def missing_hint(var: str, columns: Sequence[str]) -> str:
    """What to do about a template variable the case does not have: the nearest column, and every column."""
    close = difflib.get_close_matches(var, list(columns), n=1, cutoff=0.6)
    nearest = f"Did you mean {{{{ {close[0]} }}}}? " if close else ""
    return (f"{nearest}The columns are: {', '.join(columns) or '(none)'}. Rename the variable or add the column.")


def grid(variants: Variant | Sequence[Variant], **param_values: Sequence[Any]) -> list[Variant]:
    """Expand variants x parameter values: ``grid(v, temperature=[0, 0.7])`` -> ``v[temperature=0]``, ...

    Targets are an experiment axis of their own (``Experiment.targets``), so they are not expanded here.
    """
    base = [variants] if isinstance(variants, Variant) else list(variants)
    if not param_values:
        return base
    names = list(param_values)
    out = []
    for v in base:
        for combo in itertools.product(*(param_values[n] for n in names)):
            label = ",".join(f"{n}={val}" for n, val in zip(names, combo))
            out.append(v.with_(name=f"{v.name}[{label}]", params=dict(zip(names, combo))))
    return out
