"""The base of every pydantic model in the workbench, and the one place pydantic's errors become ours.

:class:`Model` converts a ``pydantic.ValidationError`` - from the constructor, ``model_validate`` or
``model_validate_json`` - into a :class:`~workbench.errors.SpecError`, once, here. The message names each
field the way the user wrote it (``variants[1].params.temperature``), says what is wrong with it in plain
words, and for an unknown field suggests the nearest known one ("did you mean ``temperature``?"). Nested
models are validated by pydantic's core without calling their ``__init__``, so only the outermost model
converts and the field paths stay whole.

:meth:`Model.replace` is the one validated way to derive a model with changes (``model_copy(update=...)``
skips validation, so ``repeats=-1`` would slip through): the CLI flags, notebook parameters and widgets all
go through it.
"""

from __future__ import annotations

import collections.abc
import contextlib
import contextvars
import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from .errors import SpecError

_VALIDATING: contextvars.ContextVar[bool] = contextvars.ContextVar("workbench_validating", default=False)
MAX_PROBLEMS = 10  # a list of 400 errors helps nobody: show the first ones and say how many more


def field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("variants", 1, "params", "temperature")`` -> ``variants[1].params.temperature``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _plain_message(err: dict[str, Any]) -> str:
    """pydantic's message, without its "Value error, " prefix and with the rejected value where it helps."""
    msg = str(err.get("msg", "")).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    kind = err.get("type", "")
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than", "int_parsing", "int_type",
                "float_parsing", "float_type", "bool_parsing", "bool_type", "string_type", "literal_error",
                "int_from_float"):
        msg = f"{msg} (got {err.get('input')!r})"
    return msg


def _model_at(cls: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the last part of ``loc`` (for suggestions), walking fields and lists."""
    current: Any = cls
    keyed = False  # the previous field was a dict of models: this part is one of its keys
    for part in loc[:-1]:
        if keyed or isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            keyed = False
            continue
        field = current.model_fields.get(part)
        if field is None:
            return None
        current = _inner_model(field.annotation)
        keyed = _is_mapping(field.annotation)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _is_mapping(annotation: Any) -> bool:
    """``dict[str, Profile]``, ``dict[str, Profile] | None`` -> True: the next part of a path is a key."""
    origin = typing.get_origin(annotation)
    if origin in (dict, collections.abc.Mapping):
        return True
    if origin is typing.Union or isinstance(annotation, types.UnionType):
        return any(_is_mapping(a) for a in typing.get_args(annotation))
    return False


def _inner_model(annotation: Any) -> Any:
    """``list[Variant]``, ``Variant | None``, ``DatasetSpec | Dataset`` -> the first BaseModel inside."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _inner_model(arg)
            if found is not None:
                return found
    return None


def _suggestion(cls: type[BaseModel], loc: tuple[Any, ...]) -> str:
    owner = _model_at(cls, loc)
    if owner is None or not loc or not isinstance(loc[-1], str):
        return ""
    names = [name for name, f in owner.model_fields.items() if not f.exclude]
    close = difflib.get_close_matches(loc[-1], names, n=1, cutoff=0.6)
    known = ", ".join(names)
    return (f"; did you mean {close[0]!r}?" if close else "") + f" (known fields: {known})"


def located_problems(title: str, problems: list[tuple[str, str, Any]]) -> ValidationError:
    """For a validator to raise: one error per ``(key, message, value)`` inside the field it validates, each
    located under that field (pydantic prefixes the path), so a user reads ``variants[0].params.temprature``
    rather than ``variants[0].params`` and a sentence to find the key in."""
    return ValidationError.from_exception_data(title, [
        {"type": "value_error", "loc": (key,), "input": value, "ctx": {"error": ValueError(msg)}}
        for key, msg, value in problems])


def problems_of(e: ValidationError, cls: type[BaseModel]) -> list[tuple[str, str]]:
    """``(field path, message)`` for each error, unknown fields with a suggestion."""
    out = []
    for err in e.errors():
        loc = tuple(err.get("loc", ()))
        nested = (err.get("ctx") or {}).get("error")
        if isinstance(nested, SpecError) and nested.problems:
            # a validator that checks several fields at once (an experiment's gates against its scorers)
            # raises SpecError with their paths; they are relative to where the validator ran
            out += [(_joined(loc, path), msg) for path, msg in nested.problems]
            continue
        msg = _plain_message(err)
        if err.get("type") == "extra_forbidden":
            msg = "unknown field" + _suggestion(cls, loc)
        out.append((field_path(loc), msg))
    return out


def _joined(loc: tuple[Any, ...], path: str) -> str:
    if not loc:
        return path
    head = field_path(loc)
    return head + path if path.startswith("[") else f"{head}.{path}"


def spec_error(e: ValidationError, cls: type[BaseModel], where: str | None = None) -> SpecError:
    """The :class:`SpecError` for a pydantic error raised while building ``cls``."""
    return format_problems(problems_of(e, cls), what=getattr(cls, "_spec_noun", "") or cls.__name__, where=where)


def format_problems(problems: list[tuple[str, str]], *, what: str, where: str | None = None,
                    hint: str | None = None) -> SpecError:
    """One line for one problem; a header line and one indented line a problem for several."""
    head = f"{where}: " if where else ""
    if len(problems) == 1:
        path, msg = problems[0]
        return SpecError(f"{head}the {what} is not valid: {path}: {msg}" + (f". {hint}" if hint else ""), problems)
    lines = [f"{head}the {what} is not valid:"]
    lines += [f"  - {path}: {msg}" for path, msg in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"  ... and {len(problems) - MAX_PROBLEMS} more")
    if hint:
        lines.append(hint)
    return SpecError("\n".join(lines), problems)


@contextlib.contextmanager
def _converting(cls: type[BaseModel]):
    """Turn a pydantic error into a :class:`SpecError` - in the outermost validation only. pydantic calls a
    custom ``__init__`` for nested models too: their errors must reach the outer model as pydantic errors, so
    they keep their full field path (``variants[1].params``) instead of becoming one opaque value error."""
    token = _VALIDATING.set(True) if not _VALIDATING.get() else None
    try:
        yield
    except ValidationError as e:
        if token is None:
            raise
        raise spec_error(e, cls) from None
    finally:
        if token is not None:
            _VALIDATING.reset(token)


class Model(BaseModel):
    """Base class: validation errors become :class:`SpecError`; :meth:`replace` derives a validated copy."""

    _spec_noun: typing.ClassVar[str] = ""  # "experiment spec", "variant"...: how errors name this model

    def __init__(self, /, **data: Any) -> None:
        with _converting(type(self)):
            super().__init__(**data)

    @classmethod
    def model_validate(cls, obj: Any, *args: Any, **kwargs: Any):  # type: ignore[override]
        with _converting(cls):
            return super().model_validate(obj, *args, **kwargs)

    @classmethod
    def model_validate_json(cls, json_data: Any, *args: Any, **kwargs: Any):  # type: ignore[override]
        with _converting(cls):
            return super().model_validate_json(json_data, *args, **kwargs)

    def replace(self, **changes: Any):
        """A copy with ``changes`` applied, validated as a new model would be: a bad value raises
        :class:`SpecError` naming the field; an unknown field name is refused with a suggestion."""
        fields = type(self).model_fields
        unknown = [k for k in changes if k not in fields]
        if unknown:
            raise format_problems([(k, "unknown field" + _suggestion(type(self), (k,))) for k in unknown],
                                  what=self._spec_noun or type(self).__name__)
        data = {name: getattr(self, name) for name in fields}
        data.update(changes)
        return type(self)(**data)
