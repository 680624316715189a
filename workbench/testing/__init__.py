"""A scriptable fake OpenAI / Azure OpenAI backend - the tests' main tool, shipped in the package.

It plugs in as the SDK's HTTP transport, so the real ``openai`` client code runs: URL building, headers,
retries, parsing and error types. It answers Azure-shaped URLs (``/openai/deployments/{d}/chat/completions
?api-version=...``, ``/openai/v1/...``) and OpenAI-shaped ones (``/v1/chat/completions``), records every
request, and can inject the faults real services produce::

    fake = FakeBackend(lambda req: "positive" if "love" in req.user_text else "negative")
    fake.fail(RateLimit(retry_after=0.01), times=3)   # the next three calls get a 429
    fake.fault_rate(ServerError(500), 0.05)           # 5% of calls fail with a 500
    provider = fake.provider("azure")                 # a workbench Provider wired to the fake
    provider.complete([{"role": "user", "content": "I love it"}], model="chat")

Replies may be a string, a :class:`Reply`, a fault, or a callable computing either from the
:class:`FakeRequest`. Queued replies (:meth:`FakeBackend.queue`) are served first, in order.
"""

from .backend import (
    FAKE_API_KEY,
    FAKE_API_VERSION,
    FAKE_AZURE_ENDPOINT,
    FAKE_OPENAI_BASE_URL,
    CompletionFiltered,
    ConnectionFailure,
    FakeBackend,
    FakeEventStream,
    FakeRequest,
    FakeTransport,
    Fault,
    HTTPError,
    Malformed,
    PromptFiltered,
    RateLimit,
    Reply,
    ServerError,
    Timeout,
    fake_profile,
    filter_results,
    tool_reply,
)
from .server import FakeServer, serve_in_background

__all__ = [
    "FakeBackend", "FakeEventStream",
    "FakeRequest",
    "Reply",
    "Fault",
    "RateLimit",
    "ServerError",
    "Timeout",
    "ConnectionFailure",
    "Malformed",
    "PromptFiltered",
    "CompletionFiltered",
    "HTTPError",
    "fake_profile",
    "FakeServer",
    "serve_in_background",
    "FakeTransport",
    "filter_results",
    "tool_reply",
    "FAKE_API_KEY",
    "FAKE_API_VERSION",
    "FAKE_AZURE_ENDPOINT",
    "FAKE_OPENAI_BASE_URL",
]
