"""Run a 200-cell experiment against an in-process fake backend (used by the kill -9 and multi-process tests).

usage: fake_eval.py RUN_DIR CACHE_PATH REQUEST_LOG [LATENCY]
CACHE_PATH "-" runs without a response cache. Every request the fake receives is appended (and flushed) to
REQUEST_LOG as "case_id variant", so the parent test knows exactly which calls were paid for, even after a
kill -9. The last line printed is "DONE <cells> <status>", after "TOTALS <stored> <errors> <spent_usd>".
"""

import sys

from workbench.experiment import Experiment
from workbench.harness import run
from workbench.testing import FakeBackend
from workbench.variants import Variant

run_dir, cache_path, log_path = sys.argv[1:4]
latency = float(sys.argv[4]) if len(sys.argv) > 4 else 0.02
log = open(log_path, "a", buffering=1)


def answer(req):
    case = req.user_text.split()[-1]
    log.write(f"{case} {'sys' if req.system_text else 'plain'}\n")
    log.flush()
    return "positive" if "love" in req.user_text else "negative"


rows = [{"id": f"c{i:03d}", "text": ("I love " if i % 2 else "I hate ") + f"c{i:03d}"} for i in range(100)]
exp = Experiment(
    name="killme",
    dataset=rows,
    targets=["fake"],
    concurrency=4,
    variants=[Variant(name="plain", user="{{ text }}"), Variant(name="sys", system="S", user="{{ text }}")],
)
fake = FakeBackend(answer, latency=latency)
res = run(exp, providers={"fake": fake.provider("azure")}, out=run_dir,
          cache=False if cache_path == "-" else cache_path, progress=False)
print(f"TOTALS {len(res)} {res.n_errors} {res.info['spent_usd']:.8f}")
print(f"DONE {len(res)} {res.status}")
