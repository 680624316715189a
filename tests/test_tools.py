"""Tool calls and conversations as cases: the spec, the fake backend, the scorers, the loop and its resume."""

import json

import pytest

from workbench.errors import DataError, SpecError
from workbench.experiment import Experiment
from workbench.harness import run
from workbench.scorers import ScoreInput, build_scorer
from workbench.testing import FakeBackend, Reply, tool_reply
from workbench.tools import tool_call
from workbench.variants import Variant

WEATHER = {"name": "get_weather", "description": "Today's weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}
CONVERT = {"name": "convert_temperature", "description": "Celsius to another unit.",
           "parameters": {"type": "object", "properties": {"celsius": {"type": "number"},
                                                           "unit": {"type": "string"}}, "required": ["celsius"]}}


def score(spec, calls, **vars):
    return build_scorer(spec).score(ScoreInput.of("", tool_calls=calls, vars=vars))


# ------------------------------------------------------------------------------------------------ the spec

def test_a_bad_tool_schema_or_an_unknown_tool_name_is_refused_when_the_variant_is_built():
    with pytest.raises(SpecError, match=r"tools\[0\] \(get_weather\)\.parameters: invalid JSON Schema at "
                                        r"\$\.properties\.city\.type"):
        Variant(name="v", tools=[{**WEATHER, "parameters": {"type": "object",
                                                            "properties": {"city": {"type": "strin"}}}}])
    with pytest.raises(SpecError, match="tool_choice names 'get_wether'.*did you mean 'get_weather'"):
        Variant(name="v", tools=[WEATHER], tool_choice="get_wether")
    with pytest.raises(SpecError, match="tool_functions answers 'weather'"):
        Variant(name="v", tools=[WEATHER], tool_functions={"weather": "m:f"})
    with pytest.raises(SpecError, match="parallel_tool_calls is set but the variant has no tools"):
        Variant(name="v", parallel_tool_calls=False)


def test_an_expected_call_of_a_tool_the_variant_does_not_offer_is_refused_before_anything_is_sent(tmp_path):
    fake = FakeBackend()
    exp = Experiment(name="t", dataset=[{"id": "a", "input": "hi", "expected_tool_calls": [{"name": "get_wether"}]}],
                     variants=[Variant(name="v", tools=[WEATHER])], targets=["fake"], scorers=["tool_call"])
    with pytest.raises(DataError, match=r"case 'a' \(row 1 of inline\): expected_tool_calls names 'get_wether'.*"
                                        r"did you mean 'get_weather'"):
        run(exp, providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False, cache=False)
    assert fake.chat_requests == []


def test_tools_are_templated_and_sent_in_the_openai_shape(tmp_path):
    fake = FakeBackend("ok")
    tool = {**WEATHER, "description": "Weather in {{ country }}."}
    exp = Experiment(name="t", dataset=[{"id": "a", "input": "hi", "country": "France"}], targets=["fake"],
                     variants=[Variant(name="v", tools=[tool], tool_choice="required", parallel_tool_calls=False)])
    run(exp, providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False, cache=False)
    body = fake.chat_requests[0].body
    assert body["tools"] == [{"type": "function", "function": {**WEATHER, "description": "Weather in France."}}]
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False


# --------------------------------------------------------------------------------------------- the scorers

def test_a_single_call_scored_right_and_wrong_by_name_and_arguments():
    right = [tool_call("get_weather", {"city": "Paris"})]
    expected = [{"name": "get_weather", "arguments": {"city": "Paris"}}]
    s = score("tool_call", right, expected_tool_calls=expected)
    assert s.verdict == "pass" and s.value == 1.0 and s.evidence == 'get_weather({"city": "Paris"})'

    wrong_name = score("tool_call", [tool_call("get_time", {"city": "Paris"})], expected_tool_calls=expected)
    assert wrong_name.verdict == "fail" and "no call of 'get_weather'" in wrong_name.explanation
    assert wrong_name.evidence == 'get_time({"city": "Paris"})'

    wrong_args = score("tool_call", [tool_call("get_weather", {"city": "Lyon"})], expected_tool_calls=expected)
    assert wrong_args.verdict == "fail" and wrong_args.value == 0.0
    assert '{"city": "Lyon"} != {"city": "Paris"}' in wrong_args.explanation

    extra_key = [tool_call("get_weather", {"city": "Paris", "unit": "c"})]
    assert score("tool_call", extra_key, expected_tool_calls=expected).verdict == "fail"  # equal: exactly these
    assert score({"tool_call": {"match": "subset"}}, extra_key, expected_tool_calls=expected).verdict == "pass"
    missing = score({"tool_call": {"match": "subset"}}, [tool_call("get_weather", {})], expected_tool_calls=expected)
    assert missing.verdict == "fail" and "argument 'city' missing" in missing.explanation


def test_arguments_matching_a_json_schema():
    schema = {"type": "object", "properties": {"celsius": {"type": "number", "minimum": -90}},
              "required": ["celsius"]}
    spec = {"tool_call": {"function": "convert_temperature", "schema": schema, "match": "schema"}}
    assert score(spec, [tool_call("convert_temperature", {"celsius": 18})]).verdict == "pass"
    bad = score(spec, [tool_call("convert_temperature", {"celsius": "warm"})])
    assert bad.verdict == "fail" and "arguments $.celsius: 'warm' is not of type 'number'" in bad.explanation
    broken = score(spec, [tool_call("convert_temperature", '{"celsius": 18')])
    assert broken.verdict == "fail" and "not valid JSON" in broken.explanation
    with pytest.raises(DataError, match="invalid JSON Schema"):
        build_scorer({"tool_call": {"function": "f", "schema": {"type": "nope"}, "match": "schema"}})


def test_parallel_calls_match_in_any_order_and_extras_fail():
    expected = [{"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Oslo"}}]
    forward = [tool_call("get_weather", {"city": "Paris"}, "a"), tool_call("get_weather", {"city": "Oslo"}, "b")]
    assert score("tool_call", forward, expected_tool_calls=expected).verdict == "pass"
    assert score("tool_call", forward[::-1], expected_tool_calls=expected).verdict == "pass"
    half = score("tool_call", [forward[1]], expected_tool_calls=expected)
    assert half.verdict == "fail" and half.value == 0.5 and "expected get_weather" in half.explanation
    extra = forward + [tool_call("get_weather", {"city": "Lima"}, "c")]
    s = score("tool_call", extra, expected_tool_calls=expected)
    assert s.verdict == "fail" and "extra call get_weather" in s.explanation and s.value == pytest.approx(2 / 3)
    assert score({"tool_call": {"allow_extra": True}}, extra, expected_tool_calls=expected).verdict == "pass"


def test_no_call_made_and_no_tool_call_scorer():
    s = build_scorer("tool_call").score(ScoreInput.of("It is sunny in Paris.", vars={
        "expected_tool_calls": "get_weather"}))
    assert s.verdict == "fail" and "no tool call; the model answered 'It is sunny in Paris.'" in s.evidence
    refused = build_scorer("tool_call").score(ScoreInput.of("I'm sorry, I can't help with that.", vars={
        "expected_tool_calls": "get_weather"}))
    assert refused.verdict == "refused" and not refused.passed
    assert score("no_tool_call", []).verdict == "pass"
    called = score("no_tool_call", [tool_call("get_weather", {"city": "Paris"})])
    assert called.verdict == "fail" and called.evidence == 'get_weather({"city": "Paris"})'
    assert score("tool_call", [], expected_tool_calls="[]").verdict == "pass"  # expecting no call


# ------------------------------------------------------------------------------------------------ the loop

def get_weather(city):
    return {"city": city, "celsius": 18}


def convert_temperature(celsius, unit="fahrenheit"):
    return {"fahrenheit": celsius * 9 / 5 + 32}


def agent(req):
    """Step 1: call get_weather; step 2: convert what it said; step 3: answer with both results."""
    results = req.tool_results
    if not results:
        return tool_reply(("get_weather", {"city": req.user_text.split()[-1]}))
    if len(results) == 1:
        return tool_reply(("convert_temperature", {"celsius": json.loads(results[0]["content"])["celsius"]}))
    return Reply(text=f"It is {json.loads(results[1]['content'])['fahrenheit']:g} F.")


def loop_exp(**kw):
    variant = Variant(name="agent", user="Weather in {{ city }}", tools=[WEATHER, CONVERT], max_steps=3,
                      tool_functions={"get_weather": "tests.test_tools:get_weather",
                                      "convert_temperature": "tests.test_tools:convert_temperature"})
    return Experiment(name="loop", dataset=[{"id": "p", "city": "Paris", "expected": "64.4",
                                             "expected_tool_sequence": "get_weather, convert_temperature"}],
                      variants=[variant], targets=["fake"], scorers=["tool_sequence", "contains", "tool_call"], **kw)


def test_a_three_step_loop_with_tool_results_from_a_python_function(tmp_path):
    fake = FakeBackend(agent)
    exp = loop_exp()
    exp = exp.replace(dataset=[{**exp.load_cases().cases[0].vars,
                                "expected_tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]}])
    res = run(exp, providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False,
              cache=tmp_path / "cache.sqlite")
    rec = res.records[0]
    assert len(fake.chat_requests) == 3
    assert [s.step for s in rec.steps] == [1, 2, 3]
    assert rec.steps[0].tool_results[0].content == '{"city": "Paris", "celsius": 18}'
    assert rec.steps[1].tool_results[0].name == "convert_temperature"
    assert rec.output == "It is 64.4 F." and rec.tool_calls[0]["function"]["name"] == "get_weather"
    # the third request holds the whole conversation: both calls and both results
    last = fake.chat_requests[2].messages
    assert [m["role"] for m in last] == ["user", "assistant", "tool", "assistant", "tool"]
    assert rec.prompt_tokens == sum(s.prompt_tokens for s in rec.steps)
    assert rec.completion_tokens == sum(s.completion_tokens for s in rec.steps)
    assert rec.cost_usd == pytest.approx(sum(s.cost_usd for s in rec.steps))
    assert {s.scorer: s.verdict for s in rec.scores} == {"tool_sequence": "pass", "contains": "pass",
                                                        "tool_call": "pass"}
    # a rerun into a new folder is answered by the cache, step by step
    again = run(exp, providers={"fake": fake.provider()}, out=tmp_path / "run2", progress=False,
                cache=tmp_path / "cache.sqlite")
    assert len(fake.chat_requests) == 3 and again.records[0].cache_hit
    assert all(s.cache_hit for s in again.records[0].steps)


def test_the_step_limit_stops_the_loop_and_says_so(tmp_path):
    fake = FakeBackend(tool_reply(("get_weather", {"city": "Paris"})))  # calls forever
    exp = loop_exp().replace(variants=[loop_exp().variants[0].replace(max_steps=2)])
    rec = run(exp, providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False, cache=False).records[0]
    assert len(fake.chat_requests) == 2 and len(rec.steps) == 2
    assert any("stopped at max_steps = 2" in w for w in rec.warnings)


def test_static_tool_results_per_case_and_unknown_calls_get_an_error_result(tmp_path):
    fake = FakeBackend(agent)
    variant = Variant(name="agent", user="Weather in {{ city }}", tools=[WEATHER, CONVERT], max_steps=3,
                      tool_results={"get_weather": '{"celsius": {{ celsius }}}'})
    exp = Experiment(name="static", dataset=[{"id": "p", "city": "Paris", "celsius": 10}], variants=[variant],
                     targets=["fake"])
    rec = run(exp, providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False, cache=False).records[0]
    assert rec.steps[0].tool_results[0].content == '{"celsius": 10}'
    second = rec.steps[1].tool_results[0]
    assert second.name == "convert_temperature" and "no result for tool 'convert_temperature'" in second.error


# ------------------------------------------------------------------------------------- conversations (JSONL)

def test_a_conversation_case_from_jsonl_with_tool_calls_and_results(tmp_path):
    convo = [{"role": "user", "content": "Weather in Paris?"},
             {"role": "assistant", "content": None, "tool_calls": [tool_call("get_weather", {"city": "Paris"}, "c1")]},
             {"role": "tool", "tool_call_id": "c1", "content": '{"celsius": 18}'},
             {"role": "user", "content": "And in Fahrenheit?"}]
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps({"id": "c", "conversation": convo,
                                "expected_tool_calls": [{"name": "convert_temperature",
                                                         "arguments": {"celsius": 18}}]}) + "\n")
    fake = FakeBackend(tool_reply(("convert_temperature", {"celsius": 18.0})))
    exp = Experiment(name="conv", dataset={"path": str(path)}, variants=[Variant(name="v", tools=[WEATHER, CONVERT])],
                     targets=["fake"], scorers=["tool_call"])
    rec = run(exp, providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False, cache=False).records[0]
    sent = fake.chat_requests[0].messages
    assert sent[1]["tool_calls"][0]["function"]["name"] == "get_weather" and sent[2]["role"] == "tool"
    assert rec.scores[0].verdict == "pass"  # 18.0 == 18
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "b", "conversation": [{"role": "user", "content": "x"},
                                                           {"role": "tool", "tool_call_id": "zz", "content": "1"}]}))
    exp_bad = exp.replace(dataset={"path": str(bad)}, scorers=[])
    with pytest.raises(DataError, match=r"conversation\[1\]: a tool result answers tool_call_id 'zz'"):
        run(exp_bad, providers={"fake": fake.provider()}, out=tmp_path / "run-bad", progress=False, cache=False)


# ------------------------------------------------------------------------------------ kill -9 mid-cell

def test_kill_9_in_the_middle_of_a_multi_step_cell_pays_no_step_twice(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    from workbench.results import Results

    script = Path(__file__).parent / "scripts" / "fake_tool_loop.py"
    run_dir, cache, log1, log2 = tmp_path / "run", tmp_path / "cache.sqlite", tmp_path / "r1.log", tmp_path / "r2.log"
    proc = subprocess.Popen([sys.executable, str(script), str(run_dir), str(cache), str(log1), "Oslo:3"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:  # Paris done; Oslo's steps 1-2 answered, 3 in flight
        if log1.exists() and "Oslo 3" in log1.read_text().splitlines():
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the kill: " + proc.communicate()[1]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = sorted(log1.read_text().split("\n")[:-1])
    assert first == ["Oslo 1", "Oslo 2", "Oslo 3", "Paris 1", "Paris 2", "Paris 3"]
    out = subprocess.run([sys.executable, str(script), str(run_dir), str(cache), str(log2), "-"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "DONE 2 complete" in out.stdout
    # only the steps in flight at the kill were sent again; the finished steps came from the cache
    assert log2.read_text().split("\n")[:-1] == ["Oslo 3"]
    records = {r.case_id: r for r in Results.load(run_dir).records}
    assert [(s.step, s.cache_hit) for s in records["Oslo"].steps] == [(1, True), (2, True), (3, False)]
    assert [(s.step, s.cache_hit) for s in records["Paris"].steps] == [(1, False), (2, False), (3, False)]
    for rec in records.values():
        assert rec.output == f"{rec.case_id}: {'64.4' if rec.case_id == 'Paris' else '39.2'} F"


# ---------------------------------------------------------------------------------------------- tokens

def test_the_estimate_counts_tool_definitions_by_the_documented_rule():
    """facts §5 / docs/tokens-and-costs.md: gpt-4o family func_init 7, prop_init 3, prop_key 3, enum_init -3,
    enum_item 3, func_end 12; the name:description and key:type:description strings are encoded."""
    from workbench.harness import estimate
    from workbench.tokens import get_encoding

    enc = get_encoding("o200k_base")
    unit = {"type": "string", "description": "the unit", "enum": ["celsius", "fahrenheit"]}
    tool = {**WEATHER, "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": unit}}}
    by_rule = (7 + len(enc.encode("get_weather:Today's weather in a city"))  # the description's period dropped
               + 3 + 3 + len(enc.encode("city:string:"))
               + 3 + (-3) + (3 + len(enc.encode("celsius"))) + (3 + len(enc.encode("fahrenheit")))
               + len(enc.encode("unit:string:the unit")) + 12)
    fake = FakeBackend()
    rows = [{"id": "a", "input": "Weather in Paris?"}]

    def input_tokens(variant):
        exp = Experiment(name="t", dataset=rows, variants=[variant], targets=["fake"])
        return estimate(exp, providers={"fake": fake.provider()}).rows[0].input_tokens

    assert input_tokens(Variant(name="tools", tools=[tool])) - input_tokens(Variant(name="plain")) == by_rule
    assert fake.chat_requests == []  # an estimate sends nothing


# ------------------------------------------------------------------------------------------------ views

def test_the_results_viewer_shows_each_step_with_calls_arguments_and_results(tmp_path):
    from workbench.widgets.cells import cell_detail_html, cell_statuses

    fake = FakeBackend(agent)
    res = run(loop_exp(), providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False, cache=False)
    st = next(iter(cell_statuses(res.records).values()))
    html = cell_detail_html(st)
    assert "3 steps" in html and html.count('class="wb-step"') == 3
    assert "<b>step 1</b> · tool_calls" in html and "<b>step 3</b> · stop" in html
    assert "call <b>get_weather</b>" in html and "&quot;city&quot;: &quot;Paris&quot;" in html
    assert "result: " in html and "&quot;celsius&quot;: 18" in html
    assert "It is 64.4 F." in html


def test_a_single_call_cell_shows_its_call_as_the_output(tmp_path):
    from workbench.widgets.cells import output_text

    fake = FakeBackend(tool_reply(("get_weather", {"city": "Paris"})))
    exp = Experiment(name="one", dataset=[{"id": "a", "input": "Weather in Paris?"}], targets=["fake"],
                     variants=[Variant(name="v", tools=[WEATHER])])
    rec = run(exp, providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False, cache=False).records[0]
    assert rec.finish_reason == "tool_calls" and rec.steps == []
    assert output_text(rec) == '-> get_weather({"city": "Paris"})'


# ---------------------------------------------------------------------------------------- the local model

@pytest.mark.local_model
@pytest.mark.timeout(1800)  # a safety net, not a speed check: grammar-constrained sampling is slow on a busy machine
def test_the_shipped_tool_example_runs_on_the_local_model(tmp_path):
    """One real run: SmolLM2 through llama-cpp-python's chatml-function-calling, the Python tool answering.

    One case of the shipped example, with a shorter final answer, so it fits a shared machine's test run."""
    from workbench.examples import load_example

    exp = load_example("tools")
    variant = exp.variants[0]
    exp = exp.replace(dataset={"rows": [r.vars for r in exp.load_cases().cases if r.id == "w1"], "id_column": "id"},
                      variants=[variant.replace(params={**variant.params, "max_tokens": 16})])
    res = run(exp, out=tmp_path / "run", cache=tmp_path / "c.sqlite", progress=False)
    assert len(res) == 1 and res.n_errors == 0
    for rec in res.records:
        assert rec.system_fingerprint.startswith("fp_llamacpp") and rec.steps
        first = rec.steps[0]
        assert first.finish_reason == "tool_calls" and first.tool_calls[0]["function"]["name"] == "get_weather"
        assert first.tool_results and first.tool_results[0].name == "get_weather"
        assert {s.scorer for s in rec.scores} == {"tool_call", "contains"}
        tool_score = next(s for s in rec.scores if s.scorer == "tool_call")
        assert tool_score.verdict in ("pass", "fail", "refused") and tool_score.evidence
    steps_tokens = sum(s.completion_tokens for r in res.records for s in r.steps)
    assert steps_tokens == sum(r.completion_tokens for r in res.records)


def test_the_cost_explorer_prices_the_tool_definitions_per_call():
    from workbench.tokens import count_tools
    from workbench.widgets.cost_explorer import CostExplorer, tool_costs

    rows = {r["model"]: r for r in tool_costs([WEATHER], ["gpt-4o", "gpt-4o-mini"], calls=1000)}
    n = count_tools([{"type": "function", "function": WEATHER}], "gpt-4o")
    assert rows["gpt-4o"]["tokens"] == n and rows["gpt-4o"]["per_call_usd"] == pytest.approx(n * 2.5e-6)
    assert rows["gpt-4o"]["per_calls_usd"] == pytest.approx(1000 * n * 2.5e-6)
    ce = CostExplorer("Weather in Paris?", models=["gpt-4o"], tools=[WEATHER])
    assert "Tool definitions" in ce.tools_out.value and f"<td>{n}</td>" in ce.tools_out.value
    with pytest.raises(DataError, match="CostExplorer tools: tools\\[0\\].name"):
        CostExplorer("x", tools=[{"name": "bad name"}])


def test_the_shipped_tool_example_loads_and_loops_with_its_python_tool(tmp_path):
    """The whole example through the fake backend (its `local` target answered by the fake): every case's
    expected calls name a tool it offers, and weather.py answers the calls."""
    from workbench.examples import load_example

    def model(req):
        if req.tool_results:
            return Reply(text=f"It is {json.loads(req.tool_results[0]['content'])['celsius']} degrees.")
        city = next((c for c in ("Paris", "Oslo", "Tokyo", "Lima") if c in req.user_text), None)
        return tool_reply(("get_weather", {"city": city})) if city else Reply(text="hello")

    fake = FakeBackend(model)
    res = run(load_example("tools"), providers={"local": fake.provider()}, out=tmp_path / "run", progress=False,
              cache=False)
    assert len(res) == 5 and res.n_errors == 0
    by_case = {r.case_id: r for r in res.records}
    assert by_case["w1"].steps[0].tool_results[0].content == '{"city": "Paris", "celsius": 18, "sky": "cloudy"}'
    assert all(s.verdict == "pass" for r in res.records for s in r.scores if s.scorer == "tool_call")
    assert by_case["w1"].output == "It is 18 degrees." and by_case["w5"].steps[0].tool_calls == []


def test_parallel_calls_through_the_harness_score_in_any_order(tmp_path):
    calls = [("get_weather", {"city": "Oslo"}), ("get_weather", {"city": "Paris"})]  # the reverse of the case's
    fake = FakeBackend(lambda req: tool_reply(*(calls if "both" in req.user_text else calls[:1])))
    expected = [{"name": "get_weather", "arguments": {"city": "Paris"}},
                {"name": "get_weather", "arguments": {"city": "Oslo"}}]
    exp = Experiment(name="par", targets=["fake"], scorers=["tool_call"],
                     dataset=[{"id": "both", "input": "both", "expected_tool_calls": expected},
                              {"id": "one", "input": "one", "expected_tool_calls": expected}],
                     variants=[Variant(name="v", tools=[WEATHER], parallel_tool_calls=True)])
    res = run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path / "run", progress=False, cache=False)
    scores = {r.case_id: r.scores[0] for r in res.records}
    assert all(r.body["parallel_tool_calls"] is True for r in fake.chat_requests)
    assert scores["both"].verdict == "pass" and scores["both"].value == 1.0
    assert scores["one"].verdict == "fail" and scores["one"].value == 0.5
    assert "expected get_weather" in scores["one"].explanation and 'get_weather({"city": "Paris"})' in \
        scores["one"].explanation


def test_the_report_shows_each_steps_calls_and_results(tmp_path):
    from workbench.runs.manifest import Manifest, NotebookInfo
    from workbench.runs.report import build_report

    fake = FakeBackend(agent)
    res = run(loop_exp(), providers={"fake": fake.provider()}, out=tmp_path / "run", progress=False, cache=False)
    html = build_report(res, Manifest(run_id="r1", experiment="loop", notebook=NotebookInfo(path="", name="(none)")))
    assert '<div class="tool-call">step 1: → get_weather({&#34;city&#34;: &#34;Paris&#34;})' in html
    assert "⇒ <code>{&#34;city&#34;: &#34;Paris&#34;, &#34;celsius&#34;: 18}</code>" in html
    assert '<div class="tool-call">step 2: → convert_temperature({&#34;celsius&#34;: 18})' in html
    assert '<div class="tool-call">3 steps; final answer:</div>' in html and "It is 64.4 F." in html
