"""Run a 3-step tool loop (model -> get_weather -> model -> convert_temperature -> model) on a fake backend.

usage: fake_tool_loop.py RUN_DIR CACHE_PATH REQUEST_LOG BLOCK_AT
Every chat request is appended (and flushed) to REQUEST_LOG as "case step" before it is answered, so the parent
test knows which steps were paid for even after a kill -9. BLOCK_AT "CASE:STEP": that request hangs (the parent
kills the process there); "-": nothing hangs. One cell at a time: Paris, then Oslo. Prints "DONE <cells> <status>"
at the end.
"""

import json
import sys
import time

from workbench.experiment import Experiment
from workbench.harness import run
from workbench.testing import FakeBackend, Reply, tool_reply
from workbench.variants import Variant

run_dir, cache_path, log_path, block_at = sys.argv[1:5]
log = open(log_path, "a", buffering=1)


def agent(req):
    results = req.tool_results
    step = len(results) + 1
    case = req.user_text.split()[-1]
    log.write(f"{case} {step}\n")
    log.flush()
    if f"{case}:{step}" == block_at:
        time.sleep(600)
    if step == 1:
        return tool_reply(("get_weather", {"city": case}))
    if step == 2:
        return tool_reply(("convert_temperature", {"celsius": json.loads(results[0]["content"])["celsius"]}))
    return Reply(text=f"{case}: {json.loads(results[1]['content'])['fahrenheit']:g} F")


weather = {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
convert = {"name": "convert_temperature",
           "parameters": {"type": "object", "properties": {"celsius": {"type": "number"}, "unit": {"type": "string"}}}}
variant = Variant(name="agent", user="Weather in {{ city }}", tools=[weather, convert], max_steps=3,
                  tool_functions={"get_weather": "workbench.examples.weather:get_weather",
                                  "convert_temperature": "workbench.examples.weather:convert_temperature"})
exp = Experiment(name="loop", dataset=[{"id": c, "city": c} for c in ("Paris", "Oslo")], variants=[variant],
                 targets=["fake"], concurrency=1)
fake = FakeBackend(agent)
res = run(exp, providers={"fake": fake.provider()}, out=run_dir, cache=cache_path, progress=False)
print(f"DONE {len(res)} {res.status}")
