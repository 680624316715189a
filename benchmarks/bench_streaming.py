"""Streaming benchmarks: the embedded model and the harness, each against its raw baseline in the same run.

(a) the local model, one call at a time: raw ``llama_cpp.Llama.create_chat_completion`` vs the provider's whole
    answers (``Provider.complete``: SDK + in-process transport + worker thread) vs the provider's streams
    (``Provider.stream``): output tokens/s, and time to first token for the streams;
(b) the local model, four streams at once (what four playground cards do): time to first token of each, the
    time until the last one ends, against the same four one after the other; context switches;
(c) the harness on a loopback fake server: a 400-cell run with whole answers (the default) vs streamed
    (``on_stream``), cells per second, against the raw AsyncOpenAI loop.

    .venv/bin/python benchmarks/bench_streaming.py [--quick]

Benchmarks print numbers; these machines are shared and noisy, so nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import openai  # noqa: E402
from _server import fake_server  # noqa: E402

from workbench.config import Profile  # noqa: E402
from workbench.experiment import Experiment  # noqa: E402
from workbench.harness import arun  # noqa: E402
from workbench.providers import Provider, get_provider  # noqa: E402
from workbench.providers.local import get_local_model  # noqa: E402
from workbench.variants import Variant  # noqa: E402

PROMPTS = ["Write a short poem about the sea.", "List five fruits and their colours.",
           "Explain what a lighthouse does.", "Describe a rainy afternoon in a city."]


def _msgs(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def local_sequential(max_tokens: int, rounds: int) -> None:
    model = get_local_model()
    llm = model._load()  # the worker is idle here: the raw calls have the model to themselves
    raw_rates, whole_rates, stream_rates, ttfts = [], [], [], []
    provider = get_provider("local")
    for _ in range(rounds):
        for text in PROMPTS:
            t = time.perf_counter()
            out = llm.create_chat_completion(messages=_msgs(text), max_tokens=max_tokens, temperature=0)
            raw_rates.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
            c = provider.complete(_msgs(text), max_tokens=max_tokens)
            whole_rates.append(c.usage.completion_tokens / c.latency_s)
            with provider.stream(provider.prepare(_msgs(text), max_tokens=max_tokens)) as s:
                for _ in s:
                    pass
            stream_rates.append(s.completion.usage.completion_tokens / s.completion.latency_s)
            ttfts.append(s.completion.first_token_s)
    raw, whole, streamed = (statistics.median(x) for x in (raw_rates, whole_rates, stream_rates))
    print(f"(a) local model, one call at a time, {len(raw_rates)} calls each, median output tokens/s:")
    print(f"    raw llama-cpp-python        {raw:6.1f}")
    print(f"    Provider.complete (whole)   {whole:6.1f}   ratio {whole / raw:.2f}")
    print(f"    Provider.stream             {streamed:6.1f}   ratio {streamed / raw:.2f}"
          f"   first token: median {statistics.median(ttfts):.3f} s")


def local_concurrent(max_tokens: int) -> None:
    provider = get_provider("local")
    worker = get_local_model()._worker

    async def together():
        starts, firsts, ends = {}, {}, {}

        async def one(i: int, text: str):
            starts[i] = time.perf_counter()
            s = await provider.astream(provider.prepare(_msgs(text), max_tokens=max_tokens))
            firsts[i] = time.perf_counter()
            async for _ in s:
                pass
            ends[i] = time.perf_counter()

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i, p) for i, p in enumerate(PROMPTS)))
        return t0, firsts, ends

    t = time.perf_counter()
    for text in PROMPTS:
        with provider.stream(provider.prepare(_msgs(text), max_tokens=max_tokens)) as s:
            for _ in s:
                pass
    sequential = time.perf_counter() - t
    switches = worker.switches
    t0, firsts, ends = asyncio.run(together())
    print(f"(b) local model, {len(PROMPTS)} streams at once (max_tokens {max_tokens}):")
    print(f"    first tokens after (s): {', '.join(f'{firsts[i] - t0:.2f}' for i in sorted(firsts))}"
          f"   (one after the other, the last would start after {sequential * 3 / 4:.2f} s)")
    print(f"    all ended after {max(ends.values()) - t0:.2f} s, one after the other {sequential:.2f} s "
          f"(ratio {(max(ends.values()) - t0) / sequential:.2f}); {worker.switches - switches} context switches")


async def harness_runs(n_cases: int) -> None:
    variants = [Variant(name="a", user="{{ text }}", params={"max_tokens": 16})]
    rows = [{"id": f"c{i}", "text": f"Question {i}: tell me a story in about twelve words."} for i in range(n_cases)]
    with fake_server(latency=0.02) as base_url:  # a server process: a plain context manager
        prof = Profile(name="bench", backend="openai", base_url=base_url, auth="none", model="gpt-4o-mini", timeout=30)
        exp = Experiment(name="bench", dataset=rows, variants=variants, targets=["bench"], concurrency=32)
        out = {}
        for label, on_stream in (("whole answers (default)", None), ("streamed (on_stream)", lambda p, t: None)):
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                r = await arun(exp, out=Path(d) / "r", cache=False, progress=False,
                               providers={"bench": Provider(prof, max_retries=0)}, on_stream=on_stream)
                out[label] = (len(r) / (time.perf_counter() - t), r.n_errors)
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
        sem = asyncio.Semaphore(32)

        async def one(i):
            async with sem:
                await client.chat.completions.create(model="gpt-4o-mini", messages=_msgs(rows[i]["text"]),
                                                     max_tokens=16)

        t = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n_cases)))
        raw = n_cases / (time.perf_counter() - t)
        await client.close()
    print(f"(c) harness, {n_cases} cells on a loopback fake server (20 ms latency), concurrency 32, cells/s:")
    print(f"    raw AsyncOpenAI loop        {raw:7.1f}")
    for label, (rate, errors) in out.items():
        print(f"    harness, {label:<23} {rate:7.1f}   ratio {rate / raw:.2f}   errors {errors}")


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer calls (a smoke run)")
    args = ap.parse_args(argv)
    local_sequential(max_tokens=24 if args.quick else 48, rounds=1 if args.quick else 2)
    local_concurrent(max_tokens=24 if args.quick else 48)
    asyncio.run(harness_runs(100 if args.quick else 400))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
