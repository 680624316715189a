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


def test_a_local_stream_sends_tokens_as_they_are_made_with_the_usage(local):
    messages = [{"role": "user", "content": "Write a long story about a dragon."}]
    with local.stream(local.prepare(messages, max_tokens=12)) as stream:
        pieces = list(stream)
    c = stream.completion
    assert len(pieces) > 3 and c.text == "".join(pieces) and c.streamed
    assert c.finish_reason == "length" and c.usage.completion_tokens == 12
    assert c.usage.prompt_tokens == local.complete(messages, max_tokens=1).usage.prompt_tokens
    assert 0 < c.first_token_s < c.latency_s


def test_concurrent_local_streams_take_turns_and_give_the_answers_they_give_alone(local):
    """Four streams progress at once on the one model (each starts before any ends), and taking turns changes
    no token: each answer equals the one its prompt gets alone (from the same starting state)."""
    from workbench.providers.local import get_local_model

    warm = [{"role": "user", "content": "Hello there."}]
    prompts = [[{"role": "user", "content": f"Write a poem about {topic}."}] for topic in ("the sea", "bread")]

    def alone(messages):
        local.complete(warm, max_tokens=2)  # the same starting state for every comparison
        return local.complete(messages, max_tokens=24).text

    solo = [alone(m) for m in prompts]
    switches = get_local_model()._worker.switches

    async def together():
        events: list[tuple[str, int]] = []
        local.complete(warm, max_tokens=2)

        async def read(i, stream):
            async for _ in stream:
                pass
            events.append(("end", i))
            return stream.completion.text

        streams = []
        for i, m in enumerate(prompts + [[{"role": "user", "content": f"Count to {n}."}] for n in (5, 6)]):
            streams.append(await local.astream(local.prepare(m, max_tokens=24)))  # returns at its first token
            events.append(("first", i))
        texts = await asyncio.gather(*(read(i, s) for i, s in enumerate(streams)))
        return texts, events

    texts, events = asyncio.run(together())
    assert [e for e, _ in events[:4]] == ["first"] * 4 and all(e == "end" for e, _ in events[4:])
    assert texts[:2] == solo
    assert get_local_model()._worker.switches > switches  # they did take turns


def test_a_slowly_read_stream_does_not_hold_up_other_calls(local):
    slow = local.stream(local.prepare([{"role": "user", "content": "Write a long essay about rivers."}],
                                      max_tokens=300))
    first = next(iter(slow))
    c = local.complete([{"role": "user", "content": "Say hi."}], max_tokens=4)  # while the stream waits unread
    assert first and c.outcome in ("ok", "length")
    slow.close()  # stops the generation
    assert slow.completion.finish_reason is None and slow.completion.text.startswith(first)
