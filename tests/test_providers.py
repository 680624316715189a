"""The provider interface against the fake backend: the real openai SDK runs over a fake transport."""

import asyncio

import openai
import pytest

from workbench.errors import BackendError
from workbench.params import ParameterWarning
from workbench.testing import (
    FAKE_API_KEY,
    CompletionFiltered,
    FakeBackend,
    Malformed,
    PromptFiltered,
    RateLimit,
    Reply,
    ServerError,
    Timeout,
)

HI = [{"role": "user", "content": "hello"}]


def test_azure_key_request_shape(fake):
    p = fake.provider("azure")
    c = p.complete(HI, model="chat", temperature=0)
    req = fake.requests[-1]
    assert req.method == "POST"
    assert req.path == "/openai/deployments/chat/chat/completions"
    assert req.api_version == "2025-04-01-preview"
    assert req.headers["api-key"] == FAKE_API_KEY
    assert "authorization" not in req.headers
    assert req.body["messages"] == HI and req.body["temperature"] == 0
    assert c.text == "echo: hello" and c.deployment == "chat"


def test_azure_entra_sends_bearer_token_from_provider(fake):
    calls = []

    def token():
        calls.append(1)
        return "entra-token-xyz"

    fake.provider("azure-entra", token_provider=token).complete(HI)
    req = fake.requests[-1]
    assert req.headers["authorization"] == "Bearer entra-token-xyz"
    assert "api-key" not in req.headers and calls


def test_azure_v1_endpoint_style(fake):
    fake.provider("azure-v1").complete(HI, model="chat")
    req = fake.requests[-1]
    assert req.path == "/openai/v1/chat/completions" and req.api_version is None
    assert req.body["model"] == "chat"


def test_openai_shape(fake):
    fake.provider("openai").complete(HI)
    req = fake.requests[-1]
    assert req.url.startswith("https://fake-openai.test/v1/chat/completions")
    assert req.headers["authorization"] == f"Bearer {FAKE_API_KEY}" and req.body["model"] == "gpt-4o-mini"


def test_reasoning_deployment_parameters_are_adapted_on_the_wire(fake):
    p = fake.provider("azure")
    with pytest.warns(ParameterWarning) as caught:
        c = p.complete([{"role": "system", "content": "S"}, *HI], model="reasoner", temperature=0.3, max_tokens=99)
    assert any("does not accept temperature" in str(w.message) for w in caught)
    assert all(w.filename == __file__ for w in caught)  # the warning points at the caller's line
    body = fake.requests[-1].body
    assert "temperature" not in body and "max_tokens" not in body
    assert body["max_completion_tokens"] == 99 and body["messages"][0]["role"] == "developer"
    assert len(c.warnings) == 3


def test_completion_record_carries_usage_ids_and_rate_headers(fake):
    fake.queue(Reply("hi", prompt_tokens=11, completion_tokens=7, cached_tokens=4, reasoning_tokens=2,
                     headers={"x-ratelimit-remaining-requests": "9", "x-ratelimit-remaining-tokens": "999"}))
    c = fake.provider("azure").complete(HI)
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.cached_tokens, c.usage.reasoning_tokens) == (
        11,
        7,
        4,
        2,
    )
    assert c.rate_limit == {"x-ratelimit-remaining-requests": "9", "x-ratelimit-remaining-tokens": "999"}
    assert c.request_id and c.system_fingerprint == "fp_fake0001" and c.latency_s >= 0
    assert c.content_filter.prompt and not c.content_filter.filtered  # Azure annotations, all safe


def test_filtered_completion_is_a_recorded_outcome(fake):
    fake.fail(CompletionFiltered({"violence": "high"}, partial_text="Once upon"))
    c = fake.provider("azure").complete(HI)
    assert c.outcome == "completion_filtered" and c.finish_reason == "content_filter" and c.text == "Once upon"
    assert "completion:violence:high" in c.content_filter.flagged and c.filtered


def test_rejected_prompt_is_a_recorded_outcome_not_a_crash(fake):
    fake.fail(PromptFiltered({"hate": "high", "jailbreak": "x"}))
    c = fake.provider("azure").complete(HI)
    assert c.outcome == "prompt_filtered" and c.error_code == "content_filter"
    cats = {r.category: r for r in c.content_filter.prompt}
    assert cats["hate"].filtered and cats["hate"].severity == "high"
    assert cats["jailbreak"].detected is True
    assert c.text == "" and c.usage.prompt_tokens == 0


def test_transient_errors_raise_sdk_types_without_retries(fake):
    p = fake.provider("azure")  # max_retries=0 by default for fakes
    for fault, exc in [
        (RateLimit(0.01), openai.RateLimitError),
        (ServerError(503), openai.InternalServerError),
        (Timeout(), openai.APITimeoutError),
    ]:
        fake.fail(fault)
        with pytest.raises(exc):
            p.complete(HI)


def test_sdk_retries_honour_retry_after(fake):
    fake.fail(RateLimit(retry_after=0.01), times=2)
    c = fake.provider("azure", max_retries=2).complete(HI)
    assert c.retries == 2 and len(fake.chat_requests) == 3


def test_malformed_body_is_a_clear_backend_error(fake):
    fake.fail(Malformed())
    with pytest.raises(BackendError, match="unusable response"):
        fake.provider("openai").complete(HI)


def test_missing_api_version_on_azure_deployment_url_is_404():
    fake = FakeBackend()
    p = fake.provider("azure", api_version=None)
    with pytest.raises(Exception, match="api_version"):
        p.complete(HI)


def test_async_complete(fake):
    fake.latency = 0.01
    p = fake.provider("openai")

    async def main():
        return await asyncio.gather(*(p.acomplete([{"role": "user", "content": f"q{i}"}]) for i in range(20)))

    out = asyncio.run(main())
    assert sorted(c.text for c in out) == sorted(f"echo: q{i}" for i in range(20))


def test_embeddings_through_the_same_interface(fake):
    vecs = fake.provider("openai").embed(["a b", "a b", "c"], model="text-embedding-3-small")
    assert len(vecs) == 3 and vecs[0] == vecs[1] and vecs[0] != vecs[2]


def test_responder_sees_the_request(fake):
    fake.responder = lambda r: "positive" if "love" in r.user_text else "negative"
    p = fake.provider("openai")
    assert p.complete([{"role": "user", "content": "I love it"}]).text == "positive"
    assert p.complete([{"role": "user", "content": "meh"}]).text == "negative"


def test_no_secret_in_completion_record(fake):
    c = fake.provider("azure").complete(HI)
    assert FAKE_API_KEY not in c.model_dump_json()


def test_identity_has_no_secret(fake):
    p = fake.provider("azure")
    assert p.identity == {
        "backend": "azure",
        "endpoint": "https://fake-resource.openai.azure.com",
        "api_version": "2025-04-01-preview",
        "style": "deployments",
    }


def test_fake_quota_answers_429_with_retry_after():
    fake = FakeBackend().quota(rpm=6, window_s=10.0)  # 1 request per 10 s window
    p = fake.provider("openai")
    p.complete(HI)
    with pytest.raises(openai.RateLimitError) as e:
        p.complete(HI)
    assert float(e.value.response.headers["retry-after-ms"]) > 0
