"""How much does ``count_messages`` cost over a bare tiktoken loop doing the same arithmetic?

Counts 10,000 chat messages (2,500 four-message conversations: system / user / assistant / user, some with
``name``) both ways, on the same tiktoken Encoding, and prints the best of several rounds:

- **raw**: the OpenAI cookbook's ``num_tokens_from_messages`` loop (``encoding.encode`` on every value);
- **raw (encode_ordinary)**: the same loop with ``encode_ordinary``, which is what the workbench uses
  (user text that looks like ``<|endoftext|>`` is plain text to the API, and it skips the special-token scan);
- **count_messages**: the workbench, one call per conversation (model resolution and a typed record each time),
  and once over all 10,000 messages in one call.

Run: ``.venv/bin/python benchmarks/bench_tokens.py [--model gpt-4o] [--rounds 7]``. Target: within 10% of raw.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workbench.tokens import count_messages, get_encoding  # noqa: E402

WORDS = ("the model answers questions about invoices, contracts and shipping dates; it must cite the clause "
         "and say when it is unsure. Größe, naïve café, 東京, 🙂, def f(x): return x ** 2, {\"id\": 42}").split()


def conversations(n_messages: int = 10_000, seed: int = 7) -> list[list[dict[str, str]]]:
    """Varied, reproducible chats: short system prompts, user turns of 5-120 words, a few names."""
    rng = random.Random(seed)
    say = lambda lo, hi: " ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi)))  # noqa: E731
    chats = []
    for i in range(n_messages // 4):
        chat = [
            {"role": "system", "content": "You are a careful assistant. " + say(3, 30)},
            {"role": "user", "content": say(5, 120)},
            {"role": "assistant", "content": say(5, 80)},
            {"role": "user", "content": say(2, 40)},
        ]
        if i % 5 == 0:
            chat[1]["name"] = "alice"
        chats.append(chat)
    return chats


def raw_loop(chats, encode) -> int:
    """The cookbook's formula, written out by hand."""
    total = 0
    for messages in chats:
        n = 0
        for message in messages:
            n += 3
            for key, value in message.items():
                n += len(encode(value))
                if key == "name":
                    n += 1
        total += n + 3
    return total


def best_of(rounds: int, runs: dict[str, Callable[[], int]]) -> dict[str, tuple[float, int]]:
    """Best time and result of each run. Rounds are interleaved (a, b, c, a, b, c...) so that a burst of load
    on a shared machine hits every contender alike instead of ruining one of them."""
    results = {name: fn() for name, fn in runs.items()}  # warm up (vocabulary built, caches filled)
    best = {name: float("inf") for name in runs}
    for _ in range(rounds):
        for name, fn in runs.items():
            t = time.perf_counter()
            results[name] = fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return {name: (best[name], results[name]) for name in runs}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="gpt-4o")
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)

    chats = conversations(args.messages)
    flat = [m for chat in chats for m in chat]
    enc = get_encoding(args.model)
    runs = {
        "raw (cookbook, encode)": lambda: raw_loop(chats, enc.encode),
        "raw (encode_ordinary)": lambda: raw_loop(chats, enc.encode_ordinary),
        "count_messages, per conversation": lambda: sum(count_messages(c, args.model).total for c in chats),
        "count_messages, one call": lambda: count_messages(flat, args.model).total,
    }
    results = best_of(args.rounds, runs)
    per_chat_total = results["raw (cookbook, encode)"][1]
    assert results["raw (encode_ordinary)"][1] == per_chat_total
    assert results["count_messages, per conversation"][1] == per_chat_total, "counts differ from the formula"
    assert results["count_messages, one call"][1] == per_chat_total - 3 * (len(chats) - 1)  # one reply priming

    n_tokens = per_chat_total
    print(f"{len(flat):,} messages in {len(chats):,} conversations, {n_tokens:,} tokens, {args.model} "
          f"({enc.name}); best of {args.rounds} rounds")
    base = results["raw (encode_ordinary)"][0]
    for name, (seconds, _) in results.items():
        print(f"  {name:<34} {seconds * 1000:8.1f} ms   {len(flat) / seconds:>10,.0f} msg/s   "
              f"x{seconds / base:.3f} of raw (encode_ordinary)")
    cookbook = results["raw (cookbook, encode)"][0]
    ours = results["count_messages, per conversation"][0]
    print(f"overhead of count_messages (per conversation) vs raw encode_ordinary loop: {100 * (ours / base - 1):+.1f}%")
    print(
        "overhead of count_messages (per conversation) vs the cookbook loop:        "
        f"{100 * (ours / cookbook - 1):+.1f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
