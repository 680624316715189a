"""Exact token counts, offline: text, chat messages, tool definitions and the local model.

- **Text** is encoded with tiktoken's own BPE engine, built from the ``o200k_base`` and ``cl100k_base``
  vocabularies shipped in ``data/tiktoken/`` (gzipped). Each file's sha256 is checked on load, and nothing is ever
  downloaded: we construct :class:`tiktoken.Encoding` ourselves and never call ``tiktoken.get_encoding``, whose
  registry fetches vocabularies over the network.
- **Chat messages** follow the published formula (OpenAI cookbook, "How to count tokens with tiktoken"): 3 tokens
  per message, the tokens of every field value, 1 more for a ``name``, 3 to prime the reply. Images are counted
  with :mod:`workbench.images`; tool definitions with the cookbook's tool formula.
- **The local model** (catalog encoding ``"gguf"``) renders the conversation with the model's own chat template
  (the one llama.cpp uses) and tokenizes it with the model's own vocabulary, so the count equals the
  ``prompt_tokens`` the local backend reports.

Everything here is a pure function of the text and the data tables below.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from collections import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

import tiktoken

from .catalog import ModelInfo
from .config import resolve_model
from .errors import DataError, VocabularyError

if TYPE_CHECKING:
    from .images import ImageTokens

Messages = Sequence[Mapping[str, Any]]

# ----------------------------------------------------------------------------------------------- data tables


@dataclass(frozen=True)
class EncodingSpec:
    """Everything needed to build one tiktoken encoding without the network."""

    name: str
    file: str  # under workbench/data/tiktoken/
    sha256: str  # of the *uncompressed* file, as published in tiktoken_ext/openai_public.py
    pat_str: str
    special_tokens: Mapping[str, int]


# Split patterns and special tokens: copied from tiktoken_ext/openai_public.py (tiktoken 0.7 - 0.14, unchanged);
# tests/test_tokens.py checks them against the installed tiktoken_ext, so an upstream change is caught.
_CL100K_PAT = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
_O200K_PAT = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])

ENCODINGS: dict[str, EncodingSpec] = {
    "o200k_base": EncodingSpec(
        "o200k_base", "o200k_base.tiktoken.gz",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        _O200K_PAT, {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
    "cl100k_base": EncodingSpec(
        "cl100k_base", "cl100k_base.tiktoken.gz",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        _CL100K_PAT,
        {"<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259, "<|fim_suffix|>": 100260,
         "<|endofprompt|>": 100276},
    ),
}

LOCAL_ENCODING = "gguf"  # catalog encoding of models counted with their own GGUF vocabulary

# Chat formula: OpenAI cookbook "How to count tokens with tiktoken", num_tokens_from_messages (every model from
# gpt-3.5-turbo-0613 on, including the gpt-4o / gpt-4.1 / o-series families).
TOKENS_PER_MESSAGE = 3  # <|start|>{role}<|message|>{content}<|end|>
TOKENS_PER_NAME = 1  # a `name` field costs one token more than its text
REPLY_PRIMING = 3  # every reply is primed with <|start|>assistant<|message|>


@dataclass(frozen=True)
class ToolOverheads:
    """Fixed token costs of tool definitions (the cookbook's ``num_tokens_for_tools`` constants)."""

    func_init: int  # start of each function
    prop_init: int  # start of a function's properties
    prop_key: int  # each property
    enum_init: int  # a property with an enum list
    enum_item: int  # each enum value
    func_end: int  # once, after all functions


# OpenAI cookbook "How to count tokens with tiktoken", "Counting tokens for chat completions with tool calls":
# gpt-4o / gpt-4o-mini (o200k_base family) and gpt-4 / gpt-3.5-turbo (cl100k_base family). The cookbook calls
# its result an estimate; TokenCount.notes says so whenever tools are counted.
TOOL_OVERHEADS: dict[str, ToolOverheads] = {
    "o200k_base": ToolOverheads(func_init=7, prop_init=3, prop_key=3, enum_init=-3, enum_item=3, func_end=12),
    "cl100k_base": ToolOverheads(func_init=10, prop_init=3, prop_key=3, enum_init=-3, enum_item=3, func_end=12),
}

# ------------------------------------------------------------------------------------------------ encodings


class Encoder(Protocol):
    """What the rest of the workbench needs from an encoding (tiktoken's Encoding, or the local model's)."""

    name: str

    def encode_ordinary(self, text: str) -> list[int]: ...

    def decode(self, tokens: Sequence[int]) -> str: ...

    def decode_single_token_bytes(self, token: int) -> bytes: ...


class LocalEncoding:
    """The embedded model's own GGUF vocabulary behind tiktoken's method names."""

    name = LOCAL_ENCODING

    def __init__(self, model: Any = None):
        self._model = model

    @property
    def model(self) -> Any:
        if self._model is None:  # imported late: llama.cpp loads only when the local model is counted
            from .providers.local import get_local_model

            self._model = get_local_model()
        return self._model

    def encode_ordinary(self, text: str) -> list[int]:
        return self.model.tokenize(text)

    encode = encode_ordinary

    def decode(self, tokens: Sequence[int]) -> str:
        return self.model.detokenize(list(tokens)).decode("utf-8", "replace")

    def decode_single_token_bytes(self, token: int) -> bytes:
        return self.model.detokenize([token])

    def __repr__(self) -> str:
        return "<LocalEncoding 'gguf'>"


VOCAB_DIR = "data/tiktoken"
_encodings: dict[str, Encoder] = {}
_encodings_lock = threading.Lock()


def load_bpe_file(path: Path | Traversable, sha256: str) -> dict[bytes, int]:
    """Read a ``.tiktoken`` vocabulary (plain or gzipped), check its sha256, return token bytes -> rank.

    The hash is checked on the uncompressed bytes, the same figure tiktoken publishes, so a truncated or
    tampered file is refused before it can silently change counts.
    """
    try:
        data = (path if isinstance(path, Traversable) else Path(path)).read_bytes()
        if str(path).endswith(".gz"):
            data = gzip.decompress(data)
    except FileNotFoundError as e:
        raise VocabularyError(
            f"The vocabulary file {path} is missing. Reinstall the workbench (pip install -e .) so that "
            f"workbench/{VOCAB_DIR}/ is restored; the workbench never downloads vocabularies."
        ) from e
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise VocabularyError(f"The vocabulary file {path} cannot be read ({e}). Reinstall the workbench.") from e
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise VocabularyError(
            f"The vocabulary file {path} has sha256 {digest}, expected {sha256}: it is corrupt or not the "
            f"published file. Restore it from the package (reinstall the workbench) before counting tokens."
        )
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _build(spec: EncodingSpec) -> tiktoken.Encoding:
    ranks = load_bpe_file(resources.files("workbench").joinpath(VOCAB_DIR, spec.file), spec.sha256)
    return tiktoken.Encoding(spec.name, pat_str=spec.pat_str, mergeable_ranks=ranks,
                             special_tokens=dict(spec.special_tokens))


def encoding_name(model_or_encoding: str, deployments: Mapping[str, str] | None = None) -> str:
    """The encoding a model, alias or deployment uses; an encoding name is returned as is."""
    if model_or_encoding in ENCODINGS or model_or_encoding == LOCAL_ENCODING:
        return model_or_encoding
    return resolve_model(model_or_encoding, deployments).encoding


def get_encoding(model_or_encoding: str, deployments: Mapping[str, str] | None = None) -> Encoder:
    """The encoding for a model, alias, deployment or encoding name - built offline once per process.

    Raises :class:`~workbench.errors.UnknownModelError` (with close matches) for a name that is neither.
    """
    name = encoding_name(model_or_encoding, deployments)
    enc = _encodings.get(name)
    if enc is not None:
        return enc
    with _encodings_lock:  # two threads must not both spend 0.2 s building the same table
        if name not in _encodings:
            if name == LOCAL_ENCODING:
                _encodings[name] = LocalEncoding()
            elif name in ENCODINGS:
                _encodings[name] = _build(ENCODINGS[name])
            else:
                raise DataError(
                    f"The catalog names encoding {name!r}, which the workbench does not ship. "
                    f"Known encodings: {', '.join([*ENCODINGS, LOCAL_ENCODING])}."
                )
        return _encodings[name]


def encode(text: str, model: str, deployments: Mapping[str, str] | None = None) -> list[int]:
    """Token ids of ``text`` for ``model``.

    Text that looks like a special token (``<|endoftext|>``) is encoded as plain text, as the API does with
    user content, instead of raising like ``Encoding.encode`` would.
    """
    return get_encoding(model, deployments).encode_ordinary(text)


def count_text(text: str, model: str, deployments: Mapping[str, str] | None = None) -> int:
    """Number of tokens in ``text`` for ``model`` (no chat overhead)."""
    return len(get_encoding(model, deployments).encode_ordinary(text))


# ------------------------------------------------------------------------------------------------ messages


class TokenCount(NamedTuple):
    """The input tokens of one chat request, split so a user can see where they go.

    ``text``: message contents and other field values (names, tool-call arguments); ``images``: image parts;
    ``overhead``: the per-message framing, role names and the reply priming (for the local model: everything
    its chat template adds); ``tools``: tool definitions. (An immutable NamedTuple rather than a frozen
    dataclass: it is built once per counted request, and that is 3x cheaper - see benchmarks/bench_tokens.py.)
    """

    model: str
    encoding: str
    text: int
    images: int = 0
    overhead: int = 0
    tools: int = 0
    image_details: tuple[ImageTokens, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        return self.text + self.images + self.overhead + self.tools

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "encoding": self.encoding,
            "text": self.text,
            "images": self.images,
            "overhead": self.overhead,
            "tools": self.tools,
            "total": self.total,
            "image_details": [i.as_dict() for i in self.image_details],
            "notes": list(self.notes),
        }


@dataclass
class _Tally:
    text: int = 0
    images: int = 0
    overhead: int = 0
    image_details: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)


def count_messages(
    messages: Messages,
    model: str | ModelInfo,
    tools: Sequence[Mapping[str, Any]] | None = None,
    deployments: Mapping[str, str] | None = None,
    detail_default: str = "auto",
) -> TokenCount:
    """Input tokens of a chat request: messages (text and images), framing and tool definitions.

    ``detail_default`` applies to image parts that do not set ``detail`` (the API's default is ``auto``, which
    is budgeted as ``high``).
    """
    info = resolve_model(model, deployments)
    if info.encoding == LOCAL_ENCODING:
        return _count_local(messages, info, tools)
    encode = (_encodings.get(info.encoding) or get_encoding(info.encoding)).encode_ordinary
    tally: _Tally | None = None  # only messages with parts, tool calls or images need one
    text = overhead = 0
    # The hot loop of every estimate: plain string fields are handled inline, everything else by _count_field.
    for i, message in enumerate(messages):
        if type(message) is not dict and not isinstance(message, abc.Mapping):
            raise DataError(
                f"messages[{i}] is a {type(message).__name__}; each message is a dict with 'role' and 'content'."
            )
        overhead += TOKENS_PER_MESSAGE
        for key, value in message.items():
            if type(value) is str:
                n = len(encode(value))
                if key == "role":
                    overhead += n
                else:
                    text += n
                    if key == "name":
                        overhead += TOKENS_PER_NAME
            elif value is not None:
                tally = tally or _Tally()
                _count_field(key, value, i, info, encode, tally, detail_default)
    if tally is None and not tools:
        return TokenCount(info.name, info.encoding, text, 0, overhead + REPLY_PRIMING)
    tally = tally or _Tally()
    tool_tokens = 0
    if tools:
        tool_tokens = count_tools(tools, info.encoding)
        tally.note("tool definitions: the OpenAI cookbook's formula, an estimate (the service does not publish one)")
    return TokenCount(
        info.name,
        info.encoding,
        text + tally.text,
        tally.images,
        overhead + REPLY_PRIMING,
        tool_tokens,
        tuple(tally.image_details),
        tuple(tally.notes),
    )


def _count_field(key: str, value: Any, i: int, info: ModelInfo, encode, tally: _Tally, detail: str) -> None:
    """A message field that is not a plain string: content parts, tool calls, anything else as JSON."""
    if key == "content":
        _count_parts(value, i, info, encode, tally, detail)
    elif key in ("tool_calls", "function_call"):
        calls = value if isinstance(value, list) else [{"function": value}]
        for call in calls:
            fn = call.get("function") or {}
            tally.text += len(encode(str(fn.get("name", "")))) + len(encode(str(fn.get("arguments", ""))))
        tally.note("tool calls in messages: name + arguments counted (no published framing rule)")
    else:
        tally.text += len(encode(json.dumps(value, ensure_ascii=False, separators=(",", ":"))))
        tally.note(f"messages[{i}].{key}: not a string, counted as compact JSON (approximate)")


def _count_parts(parts: Any, i: int, info: ModelInfo, encode, tally: _Tally, detail: str) -> None:
    from .images import image_part_tokens

    if not isinstance(parts, list):
        raise DataError(f"messages[{i}].content is a {type(parts).__name__}; use a string or a list of content parts.")
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, abc.Mapping) else None
        if kind in ("text", "input_text", "output_text"):
            tally.text += len(encode(part.get("text") or ""))
        elif kind == "refusal":
            tally.text += len(encode(part.get("refusal") or ""))
        elif kind in ("image_url", "input_image"):
            img = image_part_tokens(part, info, detail_default=detail, where=f"messages[{i}].content[{j}]")
            tally.images += img.tokens
            tally.image_details.append(img)
            if img.detail == "auto":
                tally.note("images with detail 'auto' are budgeted as 'high'")
            if not img.size_known:
                tally.note("remote image URLs are not downloaded: budgeted at the largest size the rule allows")
        else:
            raise DataError(
                f"messages[{i}].content[{j}] has type {kind!r}; the workbench counts 'text' and 'image_url' parts."
            )


def count_tools(tools: Sequence[Mapping[str, Any]], model_or_encoding: str) -> int:
    """Tokens of tool (function) definitions, by the OpenAI cookbook's ``num_tokens_for_tools``.

    Accepts ``{"type": "function", "function": {...}}`` entries and bare function definitions (legacy
    ``functions=``). Nested object properties are not broken down, as in the cookbook.
    """
    name = encoding_name(model_or_encoding)
    if name not in TOOL_OVERHEADS:
        raise DataError(f"Tool definitions cannot be counted for encoding {name!r}: the model does not take tools.")
    c = TOOL_OVERHEADS[name]
    encode = get_encoding(name).encode_ordinary
    total = 0
    for tool in tools:
        fn = tool.get("function", tool)
        total += c.func_init + len(encode(f"{fn.get('name', '')}:{_strip_period(fn.get('description'))}"))
        properties = (fn.get("parameters") or {}).get("properties") or {}
        if properties:
            total += c.prop_init
            for key, prop in properties.items():
                total += c.prop_key
                if "enum" in prop:
                    total += c.enum_init
                    total += sum(c.enum_item + len(encode(str(item))) for item in prop["enum"])
                total += len(encode(f"{key}:{prop.get('type', '')}:{_strip_period(prop.get('description'))}"))
    return total + c.func_end if tools else 0


def _strip_period(text: Any) -> str:
    text = str(text or "")
    return text[:-1] if text.endswith(".") else text


# ------------------------------------------------------------------------------------------------ local model


def _local_content(message: Mapping[str, Any], i: int) -> str:
    """The text the local backend sends for one message (text parts joined by newlines, as it does)."""
    content = message.get("content")
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            texts.append(part.get("text") or "")
        else:
            raise DataError(
                f"messages[{i}].content[{j}] is a {kind!r} part, but the local model reads text only. "
                f"Count it for a vision model (e.g. gpt-4o), or remove the part."
            )
    return "\n".join(texts)


def local_chat_prompt(messages: Messages) -> str:
    """The prompt llama.cpp builds for ``messages``: the GGUF chat template rendered by llama-cpp-python itself."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    model = LocalEncoding().model
    template, bos, eos = model.chat_template()
    if not template:
        raise DataError(f"The local model {model.path.name} has no chat template in its GGUF metadata.")
    chat = [
        {"role": "system" if m.get("role") == "developer" else m.get("role"), "content": _local_content(m, i)}
        for i, m in enumerate(messages)
    ]
    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)(messages=chat).prompt


def local_tools_text(tools: Sequence[Mapping[str, Any]]) -> str:
    """The function list llama-cpp-python's ``chatml-function-calling`` template adds to the system message."""
    listed = "".join(f"\nfunctions.{t.get('function', t).get('name', '')}:\n"
                     f"{json.dumps(t.get('function', t).get('parameters') or {}, sort_keys=True)}\n" for t in tools)
    return ("\n\nYou have access to the following functions:\n" + listed
            + "\n\nYou can respond to users messages with either a single message or one or more function calls."
              "\n\nTo respond with a message begin the message with 'message:', use the following format:"
              "\n\nmessage:\n<message>\n\nTo respond with one or more function calls begin the message with "
              "'functions.<function_name>:', use the following format:\n\nfunctions.<function_name>:"
              '\n{ "arg1": "value1", "arg2": "value2" }\nfunctions.<function_name>:\n{ "arg1": "value1", '
              '"arg2": "value2" }')


def _count_local(messages: Messages, info: ModelInfo, tools: Sequence[Mapping[str, Any]] | None) -> TokenCount:
    model = LocalEncoding().model
    total = len(model.tokenize(local_chat_prompt(messages), special=True))
    text = sum(len(model.tokenize(_local_content(m, i))) for i, m in enumerate(messages))
    notes = ["local model: counted on its own chat template, as llama.cpp renders it"]
    tool_tokens = 0
    if tools:
        tool_tokens = len(model.tokenize(local_tools_text(tools)))
        notes.append("tool definitions: the function list of llama-cpp-python's chatml-function-calling template, "
                     "an estimate (that template frames messages a little differently)")
    return TokenCount(info.name, LOCAL_ENCODING, text=text, overhead=total - text, tools=tool_tokens,
                      notes=tuple(notes))


def token_pieces(text: str, model: str, deployments: Mapping[str, str] | None = None) -> list[tuple[list[int], str]]:
    """``text`` cut at token boundaries: ``(ids, piece)`` pairs whose pieces concatenate back to ``text``.

    A character split across tokens (many emoji, rare CJK) is kept whole: its tokens share one piece.
    """
    enc = get_encoding(model, deployments)
    return _pieces(enc.encode_ordinary(text), enc.decode_single_token_bytes)


def _pieces(ids: Iterable[int], token_bytes) -> list[tuple[list[int], str]]:
    out: list[tuple[list[int], str]] = []
    pending: list[int] = []
    buf = b""
    for token in ids:
        pending.append(token)
        buf += token_bytes(token)
        try:
            piece = buf.decode("utf-8")
        except UnicodeDecodeError:
            continue
        out.append((pending, piece))
        pending, buf = [], b""
    if pending:
        out.append((pending, buf.decode("utf-8", "replace")))
    return out
