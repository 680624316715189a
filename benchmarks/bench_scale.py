"""The harness at the SDK's ceiling (issue #11): `workbench eval` as a whole process against a raw `AsyncOpenAI` +
semaphore script, on the same loopback fake server in the same run, and the 429 rate under a quota nobody told
the harness about.

(a) For N calls (2 variants x N/2 cases, max_tokens 16, concurrency 32, one `exact` scorer for the harness):
    wall time of the whole process, CPU per call, peak RSS (each a child process, measured with wait4), and the
    time from launch to the first chat request reaching the server. Ratios are raw / harness for speed (higher is
    better, 1.0 = as fast as the raw SDK) and harness / raw for CPU and memory.
(b) Unknown quota: a token-bucket server (RPM, 1 s burst) that sends x-ratelimit-* headers on every answer;
    `workbench eval` with no rpm in its profile. Printed: share of calls answered 429, and the request rate once
    the quota is known as a share of the quota.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 1000,2000,5000,20000] [--repeat 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import yaml  # noqa: E402
from _server import fake_server  # noqa: E402

RAW = textwrap.dedent('''
    import asyncio, sys
    import openai

    async def main(url, n_cases, concurrency):
        client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=2)
        sem = asyncio.Semaphore(concurrency)
        failed = 0

        async def one(i, system):
            nonlocal failed
            msgs = ([{"role": "system", "content": system}] if system else []) + [
                {"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"}]
            async with sem:
                try:
                    await client.chat.completions.create(model="gpt-4o-mini", messages=msgs, max_tokens=16)
                except openai.APIError:
                    failed += 1

        await asyncio.gather(*(one(i, s) for i in range(n_cases) for s in (None, "Answer briefly.")))
        await client.close()
        print(f"raw: {2 * n_cases} calls, {failed} failed")

    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
''')


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=60) as r:
        return json.loads(r.read())


def measure(cmd: list[str], cwd: Path, env: dict[str, str], root: str) -> dict:
    """Run ``cmd`` as a child process: wall, CPU (user + system), peak RSS, launch -> first chat request."""
    get(f"{root}/_fake/reset")
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.time() - t0
    out, err = proc.stdout.read().decode(), proc.stderr.read().decode()
    proc.stdout.close()
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} failed ({code}):\n{out[-2000:]}\n{err[-2000:]}")
    stats = get(f"{root}/_fake/stats")
    paid = [t for _key, _port, t in get(f"{root}/_fake/payments")["payments"]]
    first, any_first = stats.get("first_chat_at"), stats.get("first_request_at")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss_mb": usage.ru_maxrss / 1024,
            "first_s": (first - t0) if first else float("nan"),
            "any_s": (any_first - t0) if any_first else float("nan"), "statuses": stats["chat_status_counts"],
            # from the last chat request's arrival (its answer is one latency later) to the process's exit
            "tail_s": (t0 + wall - max(paid)) if paid else float("nan"),
            "out": out}


def write_spec(work: Path, n_calls: int, concurrency: int) -> Path:
    n_cases = n_calls // 2
    rows = [{"id": f"c{i}", "text": f"Question number {i}: what is {i} plus {i}?", "expected": "ok"}
            for i in range(n_cases)]
    data = work / f"cases-{n_calls}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = {"name": f"scale{n_calls}", "dataset": {"path": data.name}, "targets": ["bench"],
            "concurrency": concurrency, "scorers": ["exact"],
            "variants": [{"name": "a", "user": "{{ text }}", "params": {"max_tokens": 16}},
                         {"name": "b", "system": "Answer briefly.", "user": "{{ text }}",
                          "params": {"max_tokens": 16}}]}
    path = work / f"spec-{n_calls}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def setup(work: Path, url: str) -> dict[str, str]:
    (work / "workbench.toml").write_text(
        f'[profiles.bench]\nbackend = "openai"\nbase_url = "{url}"\nauth = "none"\nmodel = "gpt-4o-mini"\n'
        f"timeout = 60\n")
    (work / "raw.py").write_text(RAW)
    return {**os.environ, "WORKBENCH_HOME": str(work / "home")}


KEYS = ("wall", "cpu", "rss_mb", "first_s", "any_s", "tail_s")


def throughput(args) -> None:
    print(f"(a) harness (`workbench eval --no-cache`) vs raw AsyncOpenAI + semaphore, concurrency {args.concurrency}, "
          f"server latency {args.latency * 1000:.0f} ms; medians of {args.repeat}", flush=True)
    print(f"  {'calls':>6} | {'wall raw/wb s':>14} {'raw/wb':>6} | {'CPU ms/call raw/wb':>19} {'wb/raw':>6} | "
          f"{'peak RSS MB raw/wb':>19} {'wb/raw':>6} | {'1st chat s raw/wb':>18} | {'wb 1st request s':>16} | "
          f"{'last chat->exit s raw/wb':>24}", flush=True)
    print("  (the harness's first request is its preflight, GET /models; the raw loop has none)", flush=True)
    with fake_server(latency=args.latency) as url, tempfile.TemporaryDirectory() as tmp:
        root = url.rsplit("/v1", 1)[0]
        work = Path(tmp)
        env = setup(work, url)
        for n in args.sizes:
            spec = write_spec(work, n, args.concurrency)
            raws, wbs = [], []
            for i in range(args.repeat):
                raws.append(measure([sys.executable, "raw.py", url, str(n // 2), str(args.concurrency)],
                                    work, env, root))
                wbs.append(measure([sys.executable, "-m", "workbench", "eval", str(spec), "--no-cache", "-q",
                                    "--out", str(work / f"run-{n}-{i}")], work, env, root))
            r = {k: statistics.median(x[k] for x in raws) for k in KEYS}
            w = {k: statistics.median(x[k] for x in wbs) for k in KEYS}
            print(f"  {n:>6} | {r['wall']:6.2f} /{w['wall']:6.2f} {r['wall'] / w['wall']:5.2f}x | "
                  f"{1000 * r['cpu'] / n:8.2f} /{1000 * w['cpu'] / n:8.2f} {w['cpu'] / r['cpu']:5.2f}x | "
                  f"{r['rss_mb']:8.0f} /{w['rss_mb']:8.0f} {w['rss_mb'] / r['rss_mb']:5.2f}x | "
                  f"{r['first_s']:8.2f} /{w['first_s']:8.2f} | {w['any_s']:16.2f} | "
                  f"{r['tail_s']:11.2f} /{w['tail_s']:11.2f}   "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)


def unknown_quota(args) -> None:
    n = args.quota_calls
    print(f"(b) unknown quota: token bucket {args.rpm} RPM, 1 s burst, x-ratelimit-* headers on every answer; "
          f"{n} calls, concurrency {args.concurrency}, the profile has no rpm", flush=True)
    with fake_server(latency=args.latency, rpm=args.rpm, bucket=True, burst=1.0) as url, \
            tempfile.TemporaryDirectory() as tmp:
        root = url.rsplit("/v1", 1)[0]
        work = Path(tmp)
        env = setup(work, url)
        spec = write_spec(work, n, args.concurrency)
        m = measure([sys.executable, "-m", "workbench", "eval", str(spec), "--no-cache", "-q", "--out",
                     str(work / "run")], work, env, root)
        st = m["statuses"]
        ok, limited = st.get("200", 0), st.get("429", 0)
        rate = args.rpm / 60.0
        burst = rate  # 1 s worth
        first = m["first_s"] if m["first_s"] == m["first_s"] else 0.0
        # after the first burst, the best any client can do is the refill rate
        best = (ok - burst) / rate
        active = m["wall"] - first
        print(f"  {ok} answered, {limited} x 429 = {limited / max(1, ok + limited):.2%} of requests; "
              f"{ok / active:.1f} req/s from the first request to the end; quota {rate:.1f} req/s after a burst of "
              f"{burst:.0f}: {best / active:.1%} of the quota used", flush=True)
        m2 = measure([sys.executable, "raw.py", url, str(n // 2), str(args.concurrency)], work, env, root)
        st2 = m2["statuses"]
        print(f"  raw SDK (2 retries, no pacing): {st2.get('200', 0)} answered, {st2.get('429', 0)} x 429", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,2000,5000,20000", help="calls per run, comma-separated")
    ap.add_argument("--repeat", type=int, default=2, help="runs per size (medians)")
    ap.add_argument("--latency", type=float, default=0.05)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--rpm", type=int, default=1200)
    ap.add_argument("--quota-calls", type=int, default=1000)
    ap.add_argument("--quick", action="store_true", help="sizes 1000,2000 and one run each")
    ap.add_argument("--only", choices=["throughput", "quota"], default=None)
    args = ap.parse_args()
    args.sizes = [1000, 2000] if args.quick else [int(x) for x in args.sizes.split(",")]
    if args.quick:
        args.repeat = 1
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    if args.only in (None, "throughput"):
        throughput(args)
    if args.only in (None, "quota"):
        unknown_quota(args)


if __name__ == "__main__":
    main()
