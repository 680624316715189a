"""The 5,000-cell batch rehearsal (issue #15): wall time and client CPU of a whole Batch API run against the
loopback fake (``python -m workbench.testing``, its own process, so its CPU is not counted), next to the raw
openai SDK doing the same steps in the same run.

Both sides: write the JSONL lines, upload them (files.create, purpose="batch"), create the batches, poll until
they end, download the output and parse every line. The workbench also renders and keys every cell, records
each in the run ledger and the response cache, prices it at batch rates and scores it.

    .venv/bin/python benchmarks/bench_batch.py [--cells 5000] [--max-lines 3000] [--poll 0.05]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from _server import fake_server  # noqa: E402


def rows(n: int) -> list[dict]:
    return [{"id": f"c{i:05d}", "text": f"Review {i}: it was {'great' if i % 2 else 'awful'}.",
             "expected": "positive" if i % 2 else "negative"} for i in range(n)]


def raw_sdk(base_url: str, n: int, max_lines: int, poll: float) -> tuple[float, float, int]:
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="bench", max_retries=0)
    wall, cpu = time.perf_counter(), time.process_time()
    data = rows(n)
    ids = []
    for start in range(0, n, max_lines):
        chunk = data[start:start + max_lines]
        content = "".join(json.dumps({"custom_id": r["id"], "method": "POST", "url": "/v1/chat/completions",
                                      "body": {"model": "gpt-4o-mini", "max_tokens": 5, "messages": [
                                          {"role": "user", "content": r["text"]}]}}) + "\n" for r in chunk)
        f = client.files.create(file=("in.jsonl", content.encode(), "application/jsonl"), purpose="batch")
        ids.append(client.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                         completion_window="24h").id)
    answers = {}
    pending = set(ids)
    while pending:
        for bid in list(pending):
            b = client.batches.retrieve(bid)
            if b.status in ("completed", "failed", "expired", "cancelled"):
                pending.discard(bid)
                for line in client.files.content(b.output_file_id).read().splitlines():
                    row = json.loads(line)
                    answers[row["custom_id"]] = row["response"]["body"]["choices"][0]["message"]["content"]
        if pending:
            time.sleep(poll)
    return time.perf_counter() - wall, time.process_time() - cpu, len(answers)


def workbench_batch(base_url: str, n: int, max_lines: int, poll: float, tmp: Path) -> tuple[float, float, int]:
    from workbench.batch import BatchSettings
    from workbench.config import Profile
    from workbench.experiment import Experiment
    from workbench.harness import run
    from workbench.providers import Provider

    os.environ["WB_BENCH_KEY"] = "bench"
    profile = Profile(name="bench", backend="openai", base_url=base_url, api_key_env="WB_BENCH_KEY",
                      model="gpt-4o-mini", batch=True)
    exp = Experiment(name="bench-batch", dataset=rows(n), targets=["bench"], scorers=["exact"],
                     variants=[{"name": "v", "user": "{{ text }}", "params": {"max_tokens": 5}}])
    wall, cpu = time.perf_counter(), time.process_time()
    res = run(exp, providers={"bench": Provider(profile, max_retries=0)}, out=tmp / "run",
              cache=tmp / "cache.sqlite", progress=False, mode="batch",
              batch=BatchSettings(poll_interval_s=poll, max_lines=max_lines))
    took = time.perf_counter() - wall, time.process_time() - cpu
    assert res.status == "complete", res.status
    return took[0], took[1], len(res)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, default=5000)
    p.add_argument("--max-lines", type=int, default=3000)
    p.add_argument("--poll", type=float, default=0.05)
    args = p.parse_args()
    import workbench.harness  # noqa: F401  (imports are not part of the run's time)

    with tempfile.TemporaryDirectory() as tmp, fake_server(latency=0.0) as base_url:
        sdk = raw_sdk(base_url, args.cells, args.max_lines, args.poll)
        wb = workbench_batch(base_url, args.cells, args.max_lines, args.poll, Path(tmp))
    print(f"batch rehearsal: {args.cells} cells, files of at most {args.max_lines} lines, poll every {args.poll} s, "
          f"loopback fake in its own process")
    print(f"  raw openai SDK : wall {sdk[0]:6.2f} s  client CPU {sdk[1]:6.2f} s  ({sdk[2]} answers)")
    print(f"  workbench      : wall {wb[0]:6.2f} s  client CPU {wb[1]:6.2f} s  ({wb[2]} cells in the ledger)")
    print(f"  ratio workbench / raw SDK: wall {wb[0] / sdk[0]:.2f}x, CPU {wb[1] / sdk[1]:.2f}x")


if __name__ == "__main__":
    main()
