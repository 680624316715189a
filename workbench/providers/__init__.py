"""One provider interface in front of every backend.

:class:`Provider` is the only thing the harness, widgets, CLI and notebooks talk to. Every backend - the
embedded local model, Azure OpenAI (key or Entra ID, deployments or ``/openai/v1/`` style), OpenAI and
OpenAI-compatible servers - is reached through the official ``openai`` SDK, so request building, parsing,
error types and retries are the real ones; backends differ only in how their SDK client is built
(:data:`BACKENDS`, a small registry in the manner of papermill's engines).
"""

from .provider import (
    BACKENDS,
    AsyncCompletionStream,
    CompletionStream,
    PreparedRequest,
    Provider,
    error_text,
    get_provider,
    register_backend,
)

__all__ = [
    "BACKENDS", "AsyncCompletionStream", "CompletionStream", "PreparedRequest", "Provider", "error_text",
    "get_provider", "register_backend",
]
