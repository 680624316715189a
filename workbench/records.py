"""Typed, versioned records of what a backend answered.

A :class:`Completion` is what every provider call returns - including the outcomes that are not errors in
the workbench's sense: a completion stopped by Azure's content filter, and a prompt rejected with the 400
``content_filter`` error. Reports, caches and widgets are pure functions of these records, so their shape
is versioned (``schema_version``) and only ever grows.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

COMPLETION_SCHEMA_VERSION = 1

Outcome = Literal["ok", "length", "completion_filtered", "prompt_filtered"]


class Usage(BaseModel):
    model_config = ConfigDict(frozen=True)

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # part of prompt_tokens billed at the cached-input price
    reasoning_tokens: int = 0  # part of completion_tokens, billed as output

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class FilterResult(BaseModel):
    """One content-filter category, as Azure reports it."""

    model_config = ConfigDict(frozen=True)

    category: str  # hate, sexual, violence, self_harm, jailbreak, profanity, protected_material_text, ...
    filtered: bool = False
    severity: str | None = None  # safe | low | medium | high (harm categories)
    detected: bool | None = None  # detection categories (jailbreak, profanity, protected material)
    details: dict[str, Any] = Field(default_factory=dict)  # e.g. citation {URL, license}


class ContentFilter(BaseModel):
    prompt: list[FilterResult] = Field(default_factory=list)
    completion: list[FilterResult] = Field(default_factory=list)

    @property
    def filtered(self) -> bool:
        return any(r.filtered for r in (*self.prompt, *self.completion))

    @property
    def flagged(self) -> list[str]:
        """Categories that were filtered, detected or above 'safe', as ``where:category[:severity]``."""
        out = []
        for where, results in (("prompt", self.prompt), ("completion", self.completion)):
            for r in results:
                if r.filtered or r.detected or (r.severity not in (None, "safe")):
                    out.append(f"{where}:{r.category}" + (f":{r.severity}" if r.severity else ""))
        return out

    @property
    def empty(self) -> bool:
        return not self.prompt and not self.completion


class Completion(BaseModel):
    """The answer to one chat request, with everything needed to audit and price it."""

    schema_version: int = COMPLETION_SCHEMA_VERSION
    outcome: Outcome = "ok"
    text: str = ""
    finish_reason: str | None = None
    usage: Usage = Field(default_factory=Usage)
    latency_s: float = 0.0
    request_id: str | None = None
    system_fingerprint: str | None = None
    model: str | None = None  # the model name the service reported
    deployment: str | None = None  # what we asked for (Azure deployment or model name)
    rate_limit: dict[str, str] = Field(default_factory=dict)  # x-ratelimit-* response headers
    content_filter: ContentFilter = Field(default_factory=ContentFilter)
    retries: int = 0
    warnings: list[str] = Field(default_factory=list)  # request parameters we dropped or changed
    error_code: str | None = None  # for prompt_filtered: the service's error code
    error_message: str | None = None

    @property
    def filtered(self) -> bool:
        return self.outcome in ("completion_filtered", "prompt_filtered")


def parse_filter_results(raw: dict[str, Any] | None) -> list[FilterResult]:
    """Turn Azure's ``content_filter_results`` mapping into a list of :class:`FilterResult`."""
    out: list[FilterResult] = []
    for category, value in (raw or {}).items():
        if not isinstance(value, dict):
            continue
        details = {k: v for k, v in value.items() if k not in ("filtered", "severity", "detected")}
        out.append(
            FilterResult(
                category=category,
                filtered=bool(value.get("filtered", False)),
                severity=value.get("severity"),
                detected=value.get("detected"),
                details=details,
            )
        )
    return out
