"""The fake backend: decoded requests, scripted replies, injectable faults, and the HTTP transport that serves them."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx2

from ..config import Profile
from ..errors import DataError
from ..messages import content_text

FAKE_AZURE_ENDPOINT = "https://fake-resource.openai.azure.com"
FAKE_OPENAI_BASE_URL = "https://fake-openai.test/v1"
FAKE_API_KEY = "fake-test-key-not-a-secret"
FAKE_API_VERSION = "2025-04-01-preview"


# ------------------------------------------------------------------------------------------------ requests


@dataclass
class FakeRequest:
    """One request the fake received, decoded."""

    index: int
    method: str
    url: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    style: str  # "azure" (deployments URL), "azure_v1", or "openai"
    endpoint: str  # chat/completions, embeddings, models
    deployment: str | None  # Azure deployment from the URL, else the body's model
    api_version: str | None
    time: float = field(default_factory=time.monotonic)
    status: int | None = None  # the HTTP status it was answered with (None: a transport fault)
    content: bytes = field(default=b"", repr=False)  # the raw body (a file upload is not JSON)

    @property
    def model(self) -> str | None:
        return self.deployment or (self.body or {}).get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list((self.body or {}).get("messages") or [])

    @property
    def user_text(self) -> str:
        """Text of the last user message (content parts joined)."""
        for m in reversed(self.messages):
            if m.get("role") == "user":
                return content_text(m.get("content"))
        return ""

    @property
    def system_text(self) -> str:
        return "\n".join(
            content_text(m.get("content")) for m in self.messages if m.get("role") in ("system", "developer")
        )

    @property
    def tool_names(self) -> list[str]:
        """The functions the request offered."""
        return [t.get("function", {}).get("name") for t in (self.body or {}).get("tools") or []]

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The ``role: tool`` messages of the request (results of earlier calls)."""
        return [m for m in self.messages if m.get("role") == "tool"]

    @property
    def params(self) -> dict[str, Any]:
        return {k: v for k, v in (self.body or {}).items() if k not in ("messages", "model")}


# ------------------------------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """A successful chat completion. Token counts default to a rough word count of the request.

    ``tool_calls``: the functions the model calls, each ``{"name": ..., "arguments": {...}}`` (or OpenAI's own
    shape); ids default to ``call_<n>_<name>`` and the finish reason to ``tool_calls``."""

    text: str = "ok"
    finish_reason: str | None = None  # default: "tool_calls" with tool_calls, else "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    completion_filter: dict[str, Any] | None = None  # choice-level content_filter_results
    prompt_filter: dict[str, Any] | None = None  # prompt_filter_results[0].content_filter_results
    headers: dict[str, str] = field(default_factory=dict)
    latency: float | None = None
    system_fingerprint: str | None = "fp_fake0001"
    chunk_delay: float | None = None  # streamed: seconds between chunks (default: the backend's chunk_delay)
    model: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)

    @property
    def finish(self) -> str:
        return self.finish_reason or ("tool_calls" if self.tool_calls else "stop")

    def calls(self) -> list[dict[str, Any]]:
        """The tool calls in the OpenAI shape, arguments as JSON text."""
        from ..tools import tool_call

        out = []
        for i, call in enumerate(self.tool_calls):
            if "function" in call:
                out.append({"type": "function", "id": call.get("id") or f"call_{i}", **call})
            else:
                out.append(tool_call(call["name"], call.get("arguments"), call.get("id") or f"call_{i}_{call['name']}"))
        return out


def tool_reply(*calls: tuple[str, dict[str, Any]] | dict[str, Any], text: str = "", **fields: Any) -> Reply:
    """A reply that calls functions: ``tool_reply(("get_weather", {"city": "Paris"}))``."""
    listed = [c if isinstance(c, dict) else {"name": c[0], "arguments": c[1]} for c in calls]
    return Reply(text=text, tool_calls=listed, **fields)


class Fault:
    """Base for injected failures."""

    def response(self, req: FakeRequest) -> httpx2.Response:  # pragma: no cover - overridden
        raise NotImplementedError


def _error(
    status: int, code: str | None, message: str, headers: dict[str, str] | None = None, **extra
) -> httpx2.Response:
    return httpx2.Response(
        status,
        json={
            "error": {
                "code": code,
                "message": message,
                "type": extra.pop("type", None),
                "param": extra.pop("param", None),
                **extra,
            }
        },
        headers={"x-request-id": _rid(), **(headers or {})},
    )


@dataclass
class RateLimit(Fault):
    """HTTP 429 with ``retry-after`` (seconds) and ``retry-after-ms`` headers, as Azure sends them."""

    retry_after: float = 1.0

    def response(self, req, headers: dict[str, str] | None = None):
        return _error(
            429,
            "429",
            f"Requests to the deployment have exceeded the rate limit. Retry after {self.retry_after:g} seconds.",
            headers={**_retry_headers(self.retry_after), **(headers or {})},
        )


def format_duration(seconds: float) -> str:
    """A reset the way OpenAI writes it: ``120ms``, ``1.5s``, ``1m2s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return (f"{int(minutes)}m" if minutes else "") + f"{round(rest, 3):g}s"


def _rate_headers(state: dict[str, tuple[int, int, float]]) -> dict[str, str]:
    out = {}
    for kind, (limit, remaining, reset) in state.items():
        out[f"x-ratelimit-limit-{kind}"] = str(int(limit))
        out[f"x-ratelimit-remaining-{kind}"] = str(int(remaining))
        out[f"x-ratelimit-reset-{kind}"] = format_duration(reset)
    return out


def _retry_headers(seconds: float) -> dict[str, str]:
    # retry-after carries whole seconds (as Azure does); retry-after-ms the precise value
    return {"retry-after": str(max(1, int(-(-seconds // 1)))), "retry-after-ms": str(max(1, int(seconds * 1000)))}


@dataclass
class ServerError(Fault):
    status: int = 500

    def response(self, req):
        return _error(self.status, "server_error", "The server had an error while processing your request.")


@dataclass
class HTTPError(Fault):
    """Any error status with a code and message (e.g. 400 invalid_request_error, 401, 404)."""

    status: int = 400
    code: str | None = "invalid_request_error"
    message: str = "Bad request"

    def response(self, req):
        return _error(self.status, self.code, self.message)


@dataclass
class Timeout(Fault):
    """The request times out (raises ``httpx2.ReadTimeout`` inside the transport)."""

    def response(self, req):
        raise httpx2.ReadTimeout("fake read timeout")


@dataclass
class ConnectionFailure(Fault):
    def response(self, req):
        raise httpx2.ConnectError("fake connection refused")


@dataclass
class Malformed(Fault):
    """HTTP 200 whose body is not the JSON the SDK expects."""

    body: bytes = b'{"id": "chatcmpl-broken", "choices": [ {"message": '

    def response(self, req):
        return httpx2.Response(
            200, content=self.body, headers={"content-type": "application/json", "x-request-id": _rid()}
        )


HARM_CATEGORIES = ("hate", "sexual", "violence", "self_harm")


def filter_results(flagged: dict[str, str] | None = None, filtered: bool = True) -> dict[str, Any]:
    """Azure ``content_filter_results``: every harm category, ``flagged`` ones at their severity."""
    flagged = flagged or {}
    out: dict[str, Any] = {}
    for cat in HARM_CATEGORIES:
        sev = flagged.get(cat, "safe")
        out[cat] = {"filtered": filtered and sev != "safe", "severity": sev}
    for cat in ("jailbreak", "profanity", "protected_material_text"):
        if cat in flagged:
            out[cat] = {"detected": True, "filtered": filtered}
    return out


@dataclass
class PromptFiltered(Fault):
    """HTTP 400 ``content_filter``: Azure refused the prompt."""

    categories: dict[str, str] = field(default_factory=lambda: {"violence": "high"})

    def response(self, req):
        return _error(
            400,
            "content_filter",
            "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.",
            param="prompt",
            innererror={
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": filter_results(self.categories),
            },
        )


@dataclass
class CompletionFiltered(Fault):
    """HTTP 200 with ``finish_reason: content_filter`` and the completion's filter annotations."""

    categories: dict[str, str] = field(default_factory=lambda: {"hate": "medium"})
    partial_text: str = ""

    def response(self, req):  # handled as a Reply so the normal body is built
        raise AssertionError("CompletionFiltered is converted to a Reply")

    def reply(self) -> Reply:
        return Reply(
            text=self.partial_text, finish_reason="content_filter", completion_filter=filter_results(self.categories)
        )


Answer = str | Reply | Fault | dict
Responder = Callable[[FakeRequest], Answer]


def _rid() -> str:
    return uuid.uuid4().hex


# ------------------------------------------------------------------------------------------------- backend

_AZURE_DEPLOYMENT = re.compile(r"/openai/deployments/(?P<dep>[^/]+)/(?P<ep>chat/completions|embeddings|completions)$")


def _rough_tokens(messages: list[dict[str, Any]]) -> int:
    # 3 per message + about one token per word; good enough for a fake (exact counts live in tokens.py)
    return 3 + sum(3 + len(content_text(m.get("content")).split()) for m in messages)


class FakeBackend:
    """A fake OpenAI / Azure OpenAI service. See the module docstring."""

    def __init__(
        self,
        responder: Responder | Answer | None = None,
        *,
        latency: float = 0.0,
        azure_annotations: bool = True,
        seed: int = 0,
        require_auth: bool = True,
        chunk_delay: float = 0.0,
        stream_usage: bool = True,
    ):
        self.responder = responder
        self.latency = latency
        self.chunk_delay = chunk_delay  # streamed answers: seconds between two chunks
        self.stream_usage = stream_usage  # False: ignore stream_options, as some compatible servers do
        self.azure_annotations = azure_annotations
        self.require_auth = require_auth
        self.requests: list[FakeRequest] = []
        self._queue: deque[Answer] = deque()
        self._faults: list[list[Any]] = []  # [fault, remaining, predicate]
        self._rates: list[tuple[Fault, float]] = []
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._quota: dict[str, Any] | None = None
        self._window: deque[tuple[float, int]] = deque()
        self._levels: dict[str, tuple[float, float]] = {}
        self.status_counts: dict[int, int] = {}
        self.paid: dict[str, int] = {}  # request_key -> chat requests answered 200 (what a service would bill)
        from .batch import FakeBatches

        self.batches = FakeBatches(self, seed=seed)  # the Files and Batches endpoints (workbench.testing.batch)
        self.batch_lines: list[FakeRequest] = []  # every batch line answered, as a request

    # -- scripting ----------------------------------------------------------------------------------
    def queue(self, *answers: Answer) -> FakeBackend:
        """Serve these answers first, one per request, in order."""
        self._queue.extend(answers)
        return self

    def fail(self, fault: Fault, times: int = 1, when: Callable[[FakeRequest], bool] | None = None) -> FakeBackend:
        """Answer the next ``times`` chat requests (matching ``when``) with ``fault``."""
        self._faults.append([fault, times, when])
        return self

    def fault_rate(self, fault: Fault, rate: float) -> FakeBackend:
        """Answer a random fraction ``rate`` of chat requests with ``fault`` (seeded, reproducible)."""
        self._rates.append((fault, rate))
        return self

    def quota(self, rpm: int | None = None, tpm: int | None = None, window_s: float = 10.0, *,
              bucket: bool = False, burst_s: float = 1.0, headers: bool = True) -> FakeBackend:
        """Enforce a quota on chat requests: requests and estimated tokens (prompt + max_tokens) per minute.

        - default: checked over a sliding ``window_s`` the way Azure does (rpm/6 per 10 s);
        - ``bucket=True``: a token bucket per kind, refilled continuously at the per-minute rate and holding
          ``burst_s`` seconds of it (OpenAI-style), e.g. 1,200 RPM with a 1 s burst admits 20 at once.

        With ``headers`` every answer - 200s and 429s - carries ``x-ratelimit-limit-*``, ``-remaining-*`` and
        ``-reset-*`` for requests and tokens (resets as durations: ``120ms``, ``1.5s``, ``1m2s``), as OpenAI sends.
        """
        self._quota = {"rpm": rpm, "tpm": tpm, "window": window_s, "bucket": bucket, "burst": burst_s,
                       "headers": headers}
        self._levels = {}
        return self

    @property
    def chat_requests(self) -> list[FakeRequest]:
        return [r for r in self.requests if r.endpoint == "chat/completions"]

    # -- plumbing -----------------------------------------------------------------------------------
    @property
    def transport(self) -> FakeTransport:
        return FakeTransport(self)

    def profile(self, style: str = "openai", **overrides: Any) -> Profile:
        """A profile pointing at this fake: ``"openai"``, ``"azure"`` (key), ``"azure-entra"`` or ``"azure-v1"``."""
        base: dict[str, Any]
        if style == "openai":
            base = dict(
                backend="openai", base_url=FAKE_OPENAI_BASE_URL, api_key_env="WORKBENCH_FAKE_KEY", model="gpt-4o-mini"
            )
        elif style in ("azure", "azure-entra", "azure-v1"):
            base = dict(
                backend="azure",
                endpoint=FAKE_AZURE_ENDPOINT,
                api_version=FAKE_API_VERSION,
                api_key_env="WORKBENCH_FAKE_KEY",
                auth="entra" if style == "azure-entra" else "key",
                azure_v1=style == "azure-v1",
                model="chat",
                deployments={"chat": "gpt-4o-mini", "reasoner": "o4-mini", "big": "gpt-4o"},
            )
        else:
            raise DataError(f"unknown fake profile style {style!r}: openai, azure, azure-entra, azure-v1")
        name = overrides.pop("name", f"fake-{style}")
        base.update(overrides)
        return Profile(name=name, source="workbench.testing", **base)

    def provider(self, style: str | Profile = "openai", *, token_provider=None, max_retries: int = 0, **overrides: Any):
        """A :class:`~workbench.providers.Provider` wired to this fake (SDK retries off unless asked)."""
        import os

        from ..providers import Provider

        os.environ.setdefault("WORKBENCH_FAKE_KEY", FAKE_API_KEY)
        profile = style if isinstance(style, Profile) else self.profile(style, **overrides)
        if profile.auth == "entra" and token_provider is None:
            token_provider = lambda: "fake-entra-token"  # noqa: E731
        return Provider(profile, transport=self.transport, token_provider=token_provider, max_retries=max_retries)

    # -- answering ----------------------------------------------------------------------------------
    def _decode(self, request: httpx2.Request) -> FakeRequest:
        path = request.url.path
        query = parse_qs(request.url.query.decode() if isinstance(request.url.query, bytes) else str(request.url.query))
        body = None
        if request.content:
            try:
                body = json.loads(request.content)
            except ValueError:
                body = None
        m = _AZURE_DEPLOYMENT.search(path)
        if m:
            style, endpoint, deployment = "azure", m.group("ep"), m.group("dep")
        else:
            style = "azure_v1" if "/openai/v1/" in path else "openai"
            endpoint = next(
                (e for e in ("chat/completions", "embeddings", "models") if path.rstrip("/").endswith(e)), path
            )
            deployment = None
        with self._lock:
            index = len(self.requests)
            req = FakeRequest(
                index,
                request.method,
                str(request.url),
                path,
                dict(request.headers),
                body,
                style,
                endpoint,
                deployment,
                (query.get("api-version") or [None])[0],
            )
            self.requests.append(req)
        req.content = request.content
        return req

    def _auth_error(self, req: FakeRequest) -> httpx2.Response | None:
        if not self.require_auth:
            return None
        if req.headers.get("api-key") or req.headers.get("authorization", "").lower().startswith("bearer "):
            return None
        return _error(401, "401", "Access denied due to invalid subscription key or wrong API endpoint.")

    def _pick(self, req: FakeRequest) -> Answer:
        with self._lock:
            for entry in self._faults:
                fault, remaining, when = entry
                if remaining > 0 and (when is None or when(req)):
                    entry[1] -= 1
                    return fault
            for fault, rate in self._rates:
                if self._rng.random() < rate:
                    return fault
            if self._queue:
                return self._queue.popleft()
        if self.responder is None:
            return Reply(text=f"echo: {req.user_text}")
        if callable(self.responder) and not isinstance(self.responder, (Fault, Reply)):
            return self.responder(req)
        return self.responder

    def _quota_check(self, req: FakeRequest) -> httpx2.Response | None:
        q = self._quota
        if not q:
            return None
        body = req.body or {}
        cost = _rough_tokens(req.messages) + int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
        now = time.monotonic()
        with self._lock:
            over, state = (self._bucket_take if q["bucket"] else self._window_take)(q, cost, now)
        headers = _rate_headers(state) if q["headers"] else {}
        if over is not None:
            return RateLimit(retry_after=max(over, 0.001)).response(req, headers)
        req.headers["_quota_headers"] = json.dumps(headers)
        return None

    def _window_take(self, q: dict[str, Any], cost: int, now: float) -> tuple[float | None, dict[str, tuple]]:
        """Sliding window: (seconds until there is room, or None if admitted; {kind: (limit, remaining, reset)})."""
        window, scale = q["window"], q["window"] / 60.0
        while self._window and self._window[0][0] <= now - window:
            self._window.popleft()
        used = {"requests": len(self._window), "tokens": sum(t for _, t in self._window)}
        need = {"requests": 1, "tokens": cost}
        limits = {k: q[k[0] + "pm"] * scale for k in ("requests", "tokens") if q[k[0] + "pm"] is not None}
        over = any(used[k] + need[k] > lim for k, lim in limits.items())
        reset = (self._window[0][0] + window - now) if self._window else 0.0
        per_min = {k: q[k[0] + "pm"] for k in limits}  # headers say the per-minute quota, as services do
        if over:
            return (reset if self._window else window), {k: (per_min[k], max(0, int(lim - used[k])), reset)
                                                         for k, lim in limits.items()}
        self._window.append((now, cost))
        return None, {k: (per_min[k], max(0, int(lim - used[k] - need[k])), max(reset, 0.0))
                      for k, lim in limits.items()}

    def _bucket_take(self, q: dict[str, Any], cost: int, now: float) -> tuple[float | None, dict[str, tuple]]:
        """Token buckets: refill at the per-minute rate, capacity ``burst`` seconds of it."""
        need = {"requests": 1, "tokens": cost}
        state, waits = {}, []
        for kind in ("requests", "tokens"):
            per_min = q[kind[0] + "pm"]
            if per_min is None:
                continue
            rate = per_min / 60.0
            cap = max(1.0, rate * q["burst"])
            level, stamp = self._levels.get(kind, (cap, now))
            level = min(cap, level + (now - stamp) * rate)
            self._levels[kind] = (level, now)
            if level < min(need[kind], cap):
                waits.append((min(need[kind], cap) - level) / rate)
            state[kind] = (per_min, rate, cap, level)
        if waits:
            return max(waits), {k: (pm, max(0, int(lv)), (cap - lv) / rate) for k, (pm, rate, cap, lv) in state.items()}
        out = {}
        for kind, (per_min, rate, cap, level) in state.items():
            level -= min(need[kind], cap)
            self._levels[kind] = (level, now)
            out[kind] = (per_min, max(0, int(level)), (cap - level) / rate)
        return None, out

    def respond(self, request: httpx2.Request) -> tuple[float, httpx2.Response]:
        """Decode ``request`` and decide the answer; returns (delay seconds, response). May raise faults."""
        req = self._decode(request)
        resp = self._respond(req)
        req.status = resp.status_code
        with self._lock:
            self.status_counts[resp.status_code] = self.status_counts.get(resp.status_code, 0) + 1
        return (self.latency, resp)

    def reset_counters(self) -> None:
        """Forget the requests and counters (not the scripted faults or the quota's state)."""
        with self._lock:
            self.requests, self.status_counts, self.paid = [], {}, {}

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks and out-of-process tests (``GET /_fake/stats`` on a :class:`FakeServer`)."""
        with self._lock:
            paid = dict(self.paid)
        return {"status_counts": {str(k): v for k, v in self.status_counts.items()},
                "chat_status_counts": {str(k): v for k, v in self.chat_status_counts().items()},
                "paid": sum(paid.values()), "paid_distinct": len(paid),
                "paid_twice": sorted(k for k, n in paid.items() if n > 1), "batch": self.batches.stats()}

    def chat_status_counts(self) -> dict[int, int]:
        """HTTP statuses of the chat requests only (``status_counts`` also counts model lists, embeddings)."""
        out: dict[int, int] = {}
        for r in self.chat_requests:
            if r.status is not None:
                out[r.status] = out.get(r.status, 0) + 1
        return out

    def _respond(self, req: FakeRequest) -> httpx2.Response:
        denied = self._auth_error(req)
        if denied is not None:
            return denied
        if req.style == "azure" and not req.api_version:
            return _error(404, "404", "Resource not found (Azure deployment URLs need ?api-version=...).")
        if req.endpoint == "models":
            return httpx2.Response(
                200,
                json={
                    "object": "list",
                    "data": [
                        {"id": m, "object": "model", "created": 0, "owned_by": "fake"}
                        for m in ("gpt-4o-mini", "o4-mini")
                    ],
                },
            )
        if req.endpoint == "embeddings":
            return self._embeddings(req)
        batch_route = self.batches.route(req.path)
        if batch_route is not None:
            return self.batches.respond(req, batch_route)
        if req.endpoint != "chat/completions":
            return _error(404, "404", f"fake backend: no route for {req.path}")
        limited = self._quota_check(req)
        if limited is not None:
            return limited
        answer = self._pick(req)
        if isinstance(answer, CompletionFiltered):
            answer = answer.reply()
        if isinstance(answer, Fault):
            return answer.response(req)
        reply = _as_reply(answer)
        if (req.body or {}).get("stream"):
            return self._chat_stream(req, reply)
        return self._chat_body(req, reply)

    def answer_batch_line(self, body: dict[str, Any], style: str) -> tuple[int, dict[str, Any]]:
        """Answer one line of a batch as this backend answers a chat request: (status code, response body)."""
        with self._lock:
            req = FakeRequest(len(self.batch_lines), "POST", "batch", "/batch", {}, body, style, "chat/completions",
                              None, None)
            self.batch_lines.append(req)
        answer = self._pick(req)
        if isinstance(answer, CompletionFiltered):
            answer = answer.reply()
        if isinstance(answer, Fault):
            try:
                resp = answer.response(req)
            except httpx2.TransportError:
                return 500, {"error": {"code": "server_error", "message": "The server had an error processing "
                                                                           "this request."}}
        else:
            resp = self._chat_body(req, _as_reply(answer))
        req.status = resp.status_code
        return resp.status_code, resp.json()

    def _chat_body(self, req: FakeRequest, reply: Reply) -> httpx2.Response:
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else _rough_tokens(req.messages)
        completion = reply.completion_tokens if reply.completion_tokens is not None else max(1, len(reply.text.split()))
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or (None if reply.tool_calls else "")}
        if reply.tool_calls:
            message["tool_calls"] = reply.calls()
        choice: dict[str, Any] = {"index": 0, "finish_reason": reply.finish, "logprobs": None, "message": message}
        body: dict[str, Any] = {
            "id": f"chatcmpl-{_rid()[:12]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or req.model or "fake",
            "system_fingerprint": reply.system_fingerprint,
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens},
                "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            },
        }
        if req.style.startswith("azure") and self.azure_annotations:
            choice["content_filter_results"] = reply.completion_filter or filter_results()
            body["prompt_filter_results"] = [
                {"prompt_index": 0, "content_filter_results": reply.prompt_filter or filter_results()}
            ]
        elif reply.completion_filter:
            choice["content_filter_results"] = reply.completion_filter
        headers = {"x-request-id": _rid(), **json.loads(req.headers.pop("_quota_headers", "{}")), **reply.headers}
        key = request_key(req.body)
        with self._lock:
            self.paid[key] = self.paid.get(key, 0) + 1
        return httpx2.Response(200, json=body, headers=headers)

    def _chat_stream(self, req: FakeRequest, reply: Reply) -> httpx2.Response:
        """The reply as server-sent events, a word per chunk, as OpenAI and Azure stream them: a role chunk, the
        content chunks (Azure: with filter annotations), the finish chunk, and the usage when it was asked for."""
        whole = json.loads(self._chat_body(req, reply).content)
        head = {k: whole[k] for k in ("id", "created", "model", "system_fingerprint")}
        head["object"] = "chat.completion.chunk"
        choice_filters = whole["choices"][0].get("content_filter_results")

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
            choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
            if choice_filters is not None and (delta.get("content") or finish):  # Azure annotates the last one too
                choice["content_filter_results"] = choice_filters
            return {**head, "choices": [choice], **extra}

        events: list[dict[str, Any]] = []
        if "prompt_filter_results" in whole:  # Azure sends the prompt's annotations first, with no choices
            events.append({**head, "choices": [], "prompt_filter_results": whole["prompt_filter_results"]})
        events.append(chunk({"role": "assistant", "content": ""}))
        events.extend(chunk({"content": piece}) for piece in re.findall(r"\s*\S+\s*|\s+", reply.text))
        for i, call in enumerate(reply.calls()):  # each call's head, then its arguments in two pieces
            args = call["function"]["arguments"]
            events.append(chunk({"tool_calls": [{"index": i, "id": call["id"], "type": "function",
                                                 "function": {"name": call["function"]["name"], "arguments": ""}}]}))
            for piece in (args[:len(args) // 2], args[len(args) // 2:]):
                events.append(chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}))
        events.append(chunk({}, reply.finish))
        if self.stream_usage and ((req.body or {}).get("stream_options") or {}).get("include_usage"):
            events.append({**head, "choices": [], "usage": whole["usage"]})
        delay = reply.chunk_delay if reply.chunk_delay is not None else self.chunk_delay
        headers = {"x-request-id": _rid(), "content-type": "text/event-stream",
                   **json.loads(req.headers.pop("_quota_headers", "{}")), **reply.headers}
        return httpx2.Response(200, stream=FakeEventStream(events, delay), headers=headers)

    def _embeddings(self, req: FakeRequest) -> httpx2.Response:
        inp = (req.body or {}).get("input")
        texts = [inp] if isinstance(inp, str) else list(inp or [])
        data = [{"object": "embedding", "index": i, "embedding": _hash_vector(t)} for i, t in enumerate(texts)]
        n = sum(len(t.split()) for t in texts)
        return httpx2.Response(
            200,
            json={"object": "list", "data": data, "model": req.model, "usage": {"prompt_tokens": n, "total_tokens": n}},
        )


def request_key(body: dict[str, Any] | None) -> str:
    """Which call a chat request is (its model and messages), to count calls paid more than once."""
    body = body or {}
    raw = json.dumps([body.get("model"), body.get("messages")], sort_keys=True, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def _as_reply(answer: Answer) -> Reply:
    if isinstance(answer, Reply):
        return answer
    if isinstance(answer, str):
        return Reply(text=answer)
    if isinstance(answer, dict):
        return Reply(**answer)
    raise DataError(f"fake backend: cannot answer with {answer!r}")


def _hash_vector(text: str, dims: int = 16) -> list[float]:
    # deterministic bag-of-words vector: equal texts are identical, overlapping texts are similar
    vec = [0.0] * dims
    for word in text.lower().split():
        vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % dims] += 1.0
    norm = sum(v * v for v in vec) ** 0.5 or 1.0
    return [v / norm for v in vec]


class FakeEventStream(httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """Server-sent events, ``delay`` seconds apart (the async side sleeps without blocking its loop).

    ``sent`` counts the events handed out, so a test can see a reader stop early."""

    def __init__(self, events: list[dict[str, Any]], delay: float = 0.0):
        self.events, self.delay, self.sent = events, delay, 0

    def _encoded(self):
        for i, event in enumerate(self.events):
            self.sent = i + 1
            yield f"data: {json.dumps(event)}\n\n".encode()
        yield b"data: [DONE]\n\n"

    def __iter__(self):
        for i, data in enumerate(self._encoded()):
            if i and self.delay:
                time.sleep(self.delay)
            yield data

    async def __aiter__(self):
        for i, data in enumerate(self._encoded()):
            if i and self.delay:
                await asyncio.sleep(self.delay)
            yield data


class FakeTransport(httpx2.BaseTransport, httpx2.AsyncBaseTransport):
    """Sync and async ``httpx2`` transport over a :class:`FakeBackend` (async latency does not block)."""

    def __init__(self, backend: FakeBackend):
        self.backend = backend

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        request.read()
        delay, resp = self.backend.respond(request)
        if delay:
            time.sleep(delay)
        return resp

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        await request.aread()
        delay, resp = self.backend.respond(request)
        if delay:
            await asyncio.sleep(delay)
        return resp


def fake_profile(style: str = "openai", **overrides: Any) -> Profile:
    """A profile for a :class:`FakeBackend` (shortcut for ``FakeBackend().profile(style)``)."""
    return FakeBackend().profile(style, **overrides)
