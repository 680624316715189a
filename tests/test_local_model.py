"""The embedded model really generates (SmolLM2-135M-Instruct through llama.cpp, via the openai SDK)."""

import asyncio
import json

import openai
import pytest

from workbench.errors import DataError
from workbench.providers import get_provider

pytestmark = pytest.mark.local_model


@pytest.fixture(scope="module")
def local():
    return get_provider("local")


def test_local_model_answers_a_factual_question(local):
    c = local.complete([{"role": "user", "content": "What is the capital of France? Answer in one word."}])
    assert c.outcome == "ok" and c.finish_reason == "stop"
    assert "paris" in c.text.lower()
    assert c.usage.prompt_tokens > 10 and c.usage.completion_tokens > 0
    assert c.model == "smollm2-135m-instruct" and c.system_fingerprint.startswith("fp_llamacpp")


def test_local_model_is_deterministic_at_temperature_zero(local):
    msgs = [{"role": "user", "content": "Name a colour."}]
    assert local.complete(msgs, max_tokens=12).text == local.complete(msgs, max_tokens=12).text


def test_json_schema_output_is_constrained(local):
    schema = {"type": "object", "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
              "required": ["label"], "additionalProperties": False}
    c = local.complete(
        [{"role": "user", "content": "Sentiment of: 'What a wonderful day!'"}], max_tokens=30,
        response_format={"type": "json_schema", "json_schema": {"name": "s", "schema": schema, "strict": True}},
    )
    assert json.loads(c.text)["label"] in ("positive", "negative")


def test_max_tokens_gives_finish_reason_length(local):
    c = local.complete([{"role": "user", "content": "Write a long story about a dragon."}], max_tokens=5)
    assert c.finish_reason == "length" and c.outcome == "length" and c.usage.completion_tokens == 5


def test_image_input_is_refused_with_a_clear_error(local):
    msg = [{"role": "user", "content": [{"type": "text", "text": "What is this?"},
                                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]
    with pytest.raises(DataError, match="smollm2-135m-instruct does not accept images"):  # refused before sending
        local.complete(msg)
    with pytest.raises(openai.BadRequestError, match="reads text only"):  # and the local server refuses it too
        local.client.chat.completions.create(model="smollm2-135m-instruct", messages=msg)


def test_async_calls_are_serialised_safely(local):
    async def main():
        return await asyncio.gather(
            *(local.acomplete([{"role": "user", "content": f"Say the number {i}."}], max_tokens=8) for i in range(4))
        )

    out = asyncio.run(main())
    assert len(out) == 4 and all(c.outcome in ("ok", "length") for c in out)


def test_local_embeddings_offline(local):
    v = local.embed(["the cat sat", "the cat sat", "quarterly revenue grew"])
    assert len(v[0]) == 384
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    assert dot(v[0], v[1]) > 0.99 > dot(v[0], v[2])


def test_local_profile_bounds_output_by_default(local):
    req = local.prepare([{"role": "user", "content": "Tell me everything."}])
    assert req.params == {"temperature": 0.0, "max_tokens": 512}
    # a variant's own limit wins, under either name
    assert local.prepare([{"role": "user", "content": "x"}], max_completion_tokens=7).params == {
        "temperature": 0.0,
        "max_completion_tokens": 7,
    }
