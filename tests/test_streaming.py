"""Streaming end to end on the fake backend: the SDK's real streaming code, the provider's stream API, the
record it builds (usage, time to first token, filters), stopping early, and the harness's opt-in streaming."""

from __future__ import annotations

import asyncio

import openai
import pytest

from workbench.experiment import Experiment
from workbench.harness import run
from workbench.records import output_rate
from workbench.testing import CompletionFiltered, FakeBackend, FakeServer, PromptFiltered, Reply
from workbench.tokens import count_text
from workbench.variants import Target, Variant

HI = [{"role": "user", "content": "hello"}]


def test_a_stream_yields_the_text_as_it_comes_and_ends_with_the_whole_record(fake):
    fake.queue(Reply("the quick brown fox", prompt_tokens=7, completion_tokens=4))
    p = fake.provider("openai")
    with p.stream(p.prepare(HI)) as stream:
        pieces = list(stream)
    assert pieces == ["the ", "quick ", "brown ", "fox"]
    c = stream.completion
    assert c.text == "the quick brown fox" and c.finish_reason == "stop" and c.outcome == "ok"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (7, 4)  # from the stream's usage event
    assert c.streamed and 0 <= c.first_token_s <= c.latency_s and c.warnings == []
    assert c.tokens_per_s == pytest.approx(4 / c.latency_s)
    body = fake.chat_requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_the_first_token_arrives_before_the_stream_ends():
    fake = FakeBackend(Reply("one two three four"), chunk_delay=0.05)
    p = fake.provider("openai")
    seen = []
    with p.stream(p.prepare(HI)) as stream:
        for piece in stream:
            seen.append((piece, stream.completion))
    assert seen[0][1] is None  # the record exists only once the stream has ended
    assert stream.completion.first_token_s < stream.completion.latency_s


def test_whole_answers_record_rate_but_no_first_token(fake):
    fake.queue(Reply("a b c", completion_tokens=3))
    c = fake.provider("openai").complete(HI)
    assert not c.streamed and c.first_token_s is None and c.tokens_per_s == pytest.approx(3 / c.latency_s)
    assert output_rate(0, 1.0) is None and output_rate(5, 0) is None and output_rate(10, 2.0) == 5.0


def test_on_delta_streams_through_complete_and_acomplete(fake):
    p = fake.provider("openai")
    got: list[str] = []
    c = p.complete(HI, on_delta=got.append)
    assert "".join(got) == c.text == "echo: hello" and c.streamed

    async def main():
        out: list[str] = []
        return out, await p.acomplete(HI, on_delta=out.append)

    out, c2 = asyncio.run(main())
    assert "".join(out) == c2.text and c2.streamed and len(out) == 2


def test_azure_stream_filters_are_merged_into_the_record(fake):
    fake.fail(CompletionFiltered({"violence": "high"}, partial_text="Once upon"))
    p = fake.provider("azure")
    with p.stream(p.prepare(HI, "chat")) as stream:
        assert "".join(stream) == "Once upon"
    c = stream.completion
    assert c.outcome == "completion_filtered" and "completion:violence:high" in c.content_filter.flagged
    assert {r.category for r in c.content_filter.prompt} >= {"hate", "violence"}  # the prompt's annotations too


def test_a_rejected_prompt_streams_nothing_and_is_recorded(fake):
    fake.fail(PromptFiltered({"hate": "high"}))
    p = fake.provider("azure")
    stream = p.stream(p.prepare(HI, "chat"))
    assert list(stream) == [] and stream.completion.outcome == "prompt_filtered"


def test_stopping_a_stream_keeps_the_text_so_far_and_estimates_its_tokens():
    fake = FakeBackend(Reply(" ".join(f"w{i}" for i in range(50))))
    p = fake.provider("openai")
    stream = p.stream(p.prepare(HI))
    pieces = iter(stream)
    first = [next(pieces) for _ in range(3)]
    stream.close()
    c = stream.completion
    assert c.text == "".join(first) == "w0 w1 w2 " and c.finish_reason is None
    assert c.usage.completion_tokens > 0 and "estimated (the stream was stopped" in c.warnings[0]


def test_a_backend_without_stream_usage_gets_counted_tokens_and_a_note():
    fake = FakeBackend(Reply("counted here"), stream_usage=False)
    p = fake.provider("openai")
    c = p.complete(HI, on_delta=lambda _: None)
    assert c.usage.prompt_tokens > 0 and c.usage.completion_tokens == count_text("counted here", "gpt-4o-mini")
    assert "the backend sent no usage" in c.warnings[0]


def test_an_error_event_in_the_stream_raises_the_sdk_error(fake):
    import httpx2

    from workbench.providers import Provider

    p = fake.provider("openai")

    class Broken(httpx2.SyncByteStream):
        def __iter__(self):
            yield b'data: {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m", "choices": '
            yield b'[{"index": 0, "delta": {"content": "par"}, "finish_reason": null}]}\n\n'
            yield b'data: {"error": {"message": "the model crashed", "code": "server_error"}}\n\n'

    transport = httpx2.MockTransport(lambda req: httpx2.Response(200, stream=Broken(),
                                                                  headers={"content-type": "text/event-stream"}))
    broken = Provider(p.profile, transport=transport, max_retries=0)
    with pytest.raises(openai.APIError, match="the model crashed"):
        broken.complete(HI, on_delta=lambda _: None)


def test_streams_over_real_http_from_the_fake_server():
    async def main():
        fake = FakeBackend(Reply("over the wire"), require_auth=False, chunk_delay=0.01)
        server = await FakeServer(fake).start()
        try:
            client = openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0)
            stream = await client.chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True,
                                                          stream_options={"include_usage": True})
            pieces, usage = [], None
            async for chunk in stream:
                pieces += [c.delta.content for c in chunk.choices if c.delta.content]
                usage = chunk.usage or usage
            await client.close()
            return pieces, usage
        finally:
            await server.close()

    pieces, usage = asyncio.run(main())
    assert pieces == ["over ", "the ", "wire"] and usage.completion_tokens == 3


# ------------------------------------------------------------------------------------------------- harness


def _exp(tmp_path) -> Experiment:
    return Experiment(name="s", dataset=[{"id": "a", "input": "x"}, {"id": "b", "input": "y"}],
                      variants=[Variant(name="v", user="{{ input }}")], targets=[Target(profile="fake")])


def test_the_harness_streams_only_when_asked(tmp_path):
    fake = FakeBackend(Reply("alpha beta gamma"), chunk_delay=0.01)
    providers = {"fake": fake.provider("openai")}
    seen: dict[str, list[str]] = {}
    results = run(_exp(tmp_path), providers=providers, out=tmp_path / "r1", cache=False, progress=False,
                  on_stream=lambda p, text: seen.setdefault(p.cell.case.id, []).append(text))
    assert seen["a"] == ["alpha ", "alpha beta ", "alpha beta gamma"] and set(seen) == {"a", "b"}
    for r in results.records:
        assert r.streamed and 0 < r.first_token_s <= r.latency_s and r.tokens_per_s > 0
    assert all(req.body.get("stream") for req in fake.chat_requests)

    plain = run(_exp(tmp_path), providers=providers, out=tmp_path / "r2", cache=False, progress=False)
    assert not any(req.body.get("stream") for req in fake.chat_requests[2:])  # default: whole answers
    for r in plain.records:
        assert not r.streamed and r.first_token_s is None and r.tokens_per_s > 0
    assert {"first_token_s", "tokens_per_s", "streamed"} <= set(plain.df.columns)
