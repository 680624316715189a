"""Token log-probabilities and the completions endpoint: what they cost, against raw baselines in the same run.

(a) the local model: raw ``Llama.create_completion`` (default context) vs ``Provider.complete_prompt`` (SDK +
    in-process transport + worker), then the same with ``logprobs: 5`` - which needs a ``logits_all=True``
    context (made lazily, on the first ask) - against raw ``create_completion(logprobs=5)`` on such a context:
    output tokens/s, and the process's peak memory before and after the logprobs context exists;
(b) the fake backend in process (no model): a chat request with ``top_logprobs: 5`` and a completions request
    with ``logprobs: 5`` through the raw openai SDK vs through the Provider (which parses them into a
    ``TokenLogprobs`` record): calls per second and the ratio.

    .venv/bin/python benchmarks/bench_logprobs.py [--quick]

Benchmarks print numbers; these machines are shared and noisy, so nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import httpx2
import openai

from workbench.providers import get_provider
from workbench.providers.local import _import_llama, get_local_model
from workbench.testing import FAKE_API_KEY, FAKE_OPENAI_BASE_URL, FakeBackend, Reply

PROMPT = '"""\ncount to 5 in a for loop\n"""\n'


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def local(max_tokens: int, rounds: int) -> None:
    model = get_local_model()
    llm = model._load()
    provider = get_provider("local")
    raw, whole = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        out = llm.create_completion(prompt=PROMPT, max_tokens=max_tokens, temperature=0)
        raw.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
        c = provider.complete_prompt(PROMPT, max_tokens=max_tokens, temperature=0)
        whole.append(c.usage.completion_tokens / c.latency_s)
    before = _peak_mb()
    lp_llm = _import_llama().Llama(model_path=str(model.path), n_ctx=model.n_ctx, n_threads=model.n_threads,
                                   verbose=False, seed=0, logits_all=True)
    raw_lp, with_lp = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        out = lp_llm.create_completion(prompt=PROMPT, max_tokens=max_tokens, temperature=0, logprobs=5)
        raw_lp.append(out["usage"]["completion_tokens"] / (time.perf_counter() - t))
        c = provider.complete_prompt(PROMPT, max_tokens=max_tokens, temperature=0, logprobs=5)
        with_lp.append(c.usage.completion_tokens / c.latency_s)
    lp_llm.close()
    med = statistics.median
    print(f"(a) local model, {max_tokens} tokens, {rounds} rounds (median output tokens/s):")
    print(f"    raw create_completion          {med(raw):7.1f}")
    print(f"    Provider.complete_prompt       {med(whole):7.1f}   ratio {med(whole) / med(raw):.2f}")
    print(f"    raw, logits_all + logprobs=5   {med(raw_lp):7.1f}   (vs raw without: {med(raw_lp) / med(raw):.2f})")
    print(f"    Provider, logprobs=5           {med(with_lp):7.1f}   ratio {med(with_lp) / med(raw_lp):.2f}")
    print(f"    peak RSS: {before:.0f} MB before a logits_all context, {_peak_mb():.0f} MB after (two made here: "
          "the benchmark's raw one and the provider's)")


def fake(calls: int) -> None:
    script = [(f" tok{i}", -0.1 * i, {f" tok{i}": -0.1 * i, f" alt{i}": -1.0 - 0.1 * i}) for i in range(20)]
    backend = FakeBackend(Reply("".join(t for t, _, _ in script), logprobs=script), require_auth=False)
    raw = openai.OpenAI(base_url=FAKE_OPENAI_BASE_URL, api_key=FAKE_API_KEY, max_retries=0,
                        http_client=httpx2.Client(transport=backend.transport))
    provider = backend.provider("openai")
    msgs = [{"role": "user", "content": "hello"}]
    cases = {
        "chat, top_logprobs=5": (
            lambda: raw.chat.completions.create(model="gpt-4o-mini", messages=msgs, logprobs=True, top_logprobs=5),
            lambda: provider.complete(msgs, logprobs=True, top_logprobs=5)),
        "completions, logprobs=5": (
            lambda: raw.completions.create(model="gpt-35-turbo-instruct", prompt=PROMPT, logprobs=5),
            lambda: provider.complete_prompt(PROMPT, "gpt-35-turbo-instruct", logprobs=5)),
    }
    print(f"(b) fake backend in process, {calls} calls each (calls/s):")
    for name, (sdk, ours) in cases.items():
        rates = []
        for fn in (sdk, ours):
            fn()
            t = time.perf_counter()
            for _ in range(calls):
                fn()
            rates.append(calls / (time.perf_counter() - t))
        print(f"    {name:26s} raw SDK {rates[0]:7.0f}   Provider {rates[1]:7.0f}   ratio {rates[1] / rates[0]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and tokens")
    args = ap.parse_args()
    fake(100 if args.quick else 500)
    local(16 if args.quick else 48, 2 if args.quick else 4)


if __name__ == "__main__":
    main()
