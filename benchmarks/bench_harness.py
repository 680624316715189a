"""Harness benchmarks against a loopback fake OpenAI-compatible server (separate process, fixed latency).

(a) throughput at concurrency 32 and 64: the harness vs a raw AsyncOpenAI + semaphore loop;
(b) a rate-limited server (RPM quota, 429 with retry-after): achieved throughput as a fraction of the quota,
    with the quota known to the harness (profile rpm) and unknown (adaptive), and the raw SDK loop for contrast;
(d) 5% HTTP 500s: cells lost by the harness and by the raw SDK loop;
(c) a cached re-run of a 2,000-cell experiment.

    .venv/bin/python benchmarks/bench_harness.py [--cases 1000] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
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
from workbench.providers import Provider  # noqa: E402
from workbench.variants import Variant  # noqa: E402

VARIANTS = [Variant(name="a", user="{{ text }}", params={"max_tokens": 16}),
            Variant(name="b", system="Answer briefly.", user="{{ text }}", params={"max_tokens": 16})]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def experiment(n_cases: int, concurrency: int, name: str = "bench") -> Experiment:
    rows = [{"id": f"c{i}", "text": f"Question number {i}: what is {i} plus {i}?"} for i in range(n_cases)]
    return Experiment(name=name, dataset=rows, variants=VARIANTS, targets=["bench"], concurrency=concurrency,
                      max_retries=6)


def provider(base_url: str, rpm: int | None = None) -> Provider:
    prof = Profile(name="bench", backend="openai", base_url=base_url, auth="none", model="gpt-4o-mini", rpm=rpm,
                   timeout=30)
    return Provider(prof, max_retries=0)


async def raw_loop(base_url: str, n_cases: int, concurrency: int, max_retries: int = 2) -> dict:
    client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=max_retries)
    sem = asyncio.Semaphore(concurrency)
    failed = 0

    async def one(i: int, v: Variant):
        nonlocal failed
        msgs = ([{"role": "system", "content": v.system}] if v.system else []) + \
               [{"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"}]
        async with sem:
            try:
                await client.chat.completions.create(model="gpt-4o-mini", messages=msgs, max_tokens=16)
            except openai.APIError:
                failed += 1

    c0, t0 = cpu(), time.perf_counter()
    await asyncio.gather(*(one(i, v) for i in range(n_cases) for v in VARIANTS))
    wall, used = time.perf_counter() - t0, cpu() - c0
    await client.close()
    n = 2 * n_cases
    return {"calls": n, "wall_s": wall, "rps": n / wall, "cpu_ms_per_call": 1000 * used / n, "failed": failed}


async def harness(base_url: str, n_cases: int, concurrency: int, rpm: int | None = None, cache=False,
                  out: Path | None = None) -> dict:
    exp = experiment(n_cases, concurrency)
    out = out or Path(tempfile.mkdtemp()) / "run"
    c0, t0 = cpu(), time.perf_counter()
    res = await arun(exp, providers={"bench": provider(base_url, rpm)}, out=out, cache=cache, progress=False)
    wall, used = time.perf_counter() - t0, cpu() - c0
    n = len(res)
    return {"calls": n, "wall_s": wall, "rps": n / wall, "cpu_ms_per_call": 1000 * used / n,
            "failed": res.n_errors, "rate_limited": res.info["rate_limited"], "cache_hits": res.info["cache_hits"]}


def show(label: str, r: dict) -> None:
    extra = "".join(f", {k} {r[k]}" for k in ("rate_limited", "cache_hits") if k in r)
    print(f"  {label:<34} {r['calls']:>5} calls in {r['wall_s']:6.2f} s = {r['rps']:6.1f} req/s, "
          f"{r['cpu_ms_per_call']:.2f} ms CPU/call, failed {r['failed']}{extra}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--quick", action="store_true", help="smaller runs")
    args = ap.parse_args()
    cases = 200 if args.quick else args.cases
    print(f"machine: {os.cpu_count()} cores; server latency {args.latency * 1000:.0f} ms; "
          f"2 variants x {cases} cases", flush=True)

    print("(a) throughput (ideal = concurrency / latency)")
    with fake_server(latency=args.latency) as url:
        for conc in (32, 64):
            raw = asyncio.run(raw_loop(url, cases, conc))
            show(f"raw AsyncOpenAI + semaphore @{conc}", raw)
            h = asyncio.run(harness(url, cases, conc))
            show(f"workbench harness @{conc}", h)
            print(f"    harness / raw = {h['rps'] / raw['rps']:.2f}x (ideal {conc / args.latency:.0f} req/s)")

    rpm = 1200
    rl_cases = 300 if args.quick else 1200
    print(f"(b) rate-limited server: {rpm} RPM over 10 s windows, 429 + retry-after; 2 x {rl_cases} calls")
    # A sliding 10 s window admits a first burst of rpm/6 calls at once, so a short run can beat the nominal
    # rate; the best any client can do is (calls - rpm/6) / (rpm/60) seconds after that first burst.
    burst = rpm / 6
    best_s = (2 * rl_cases - burst) / (rpm / 60)
    print(
        f"    best possible: {2 * rl_cases / best_s:.1f} req/s ({2 * rl_cases} calls in {best_s:.0f} s); "
        f"nominal {rpm / 60:.0f} req/s"
    )
    with fake_server(latency=args.latency, rpm=rpm) as url:
        h = asyncio.run(harness(url, rl_cases, 32, rpm=rpm))
        show("harness, quota known (profile rpm)", h)
        print(
            f"    fraction of nominal quota: {h['rps'] / (rpm / 60):.3f}; of best possible: {best_s / h['wall_s']:.3f}"
        )
    with fake_server(latency=args.latency, rpm=rpm) as url:
        h = asyncio.run(harness(url, rl_cases, 32))
        show("harness, quota unknown (adaptive)", h)
        print(
            f"    fraction of nominal quota: {h['rps'] / (rpm / 60):.3f}; of best possible: {best_s / h['wall_s']:.3f}"
        )
    with fake_server(latency=args.latency, rpm=rpm) as url:
        raw = asyncio.run(raw_loop(url, rl_cases, 32))
        show("raw SDK (default 2 retries)", raw)
        print(
            "    fraction of quota (completed calls): "
            f"{(raw['calls'] - raw['failed']) / raw['wall_s'] / (rpm / 60):.3f}"
        )

    print("(d) 5% HTTP 500s: cells lost")
    with fake_server(latency=args.latency, error_rate=0.05) as url:
        h = asyncio.run(harness(url, cases, 32))
        show("harness (6 retries, jittered backoff)", h)
        raw = asyncio.run(raw_loop(url, cases, 32))
        show("raw SDK (default 2 retries)", raw)
        raw0 = asyncio.run(raw_loop(url, cases, 32, max_retries=0))
        show("raw SDK, no retries", raw0)

    print("(c) cached re-run of a 2,000-cell experiment")
    with fake_server(latency=args.latency) as url, tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache.sqlite"
        first = asyncio.run(harness(url, 1000, 64, cache=cache, out=Path(tmp) / "r1"))
        show("first run (fills the cache)", first)
        again = asyncio.run(harness(url, 1000, 64, cache=cache, out=Path(tmp) / "r2"))
        show("re-run, new run folder, from cache", again)
        resumed = asyncio.run(harness(url, 1000, 64, cache=cache, out=Path(tmp) / "r1"))
        show("re-run into the finished folder", resumed)


if __name__ == "__main__":
    main()
