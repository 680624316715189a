"""Prompts and completions (the seeds' text-in, text-out endpoint) and token log-probabilities, through the fake
backend: the completions endpoint on OpenAI and Azure URLs, both endpoints' logprobs shapes, refusals at plan
time, and a chat and a prompt variant in one run."""

import math
import warnings

import pytest

from workbench.catalog import load_catalog
from workbench.costs import load_prices
from workbench.errors import DataError, ParameterWarning, SpecError
from workbench.experiment import Experiment, load_experiment
from workbench.harness import estimate, run
from workbench.testing import FakeBackend, Reply
from workbench.tokens import count_prompt, encode
from workbench.variants import Variant

SEED_PROMPT = '"""\ncount to 5 in a for loop\n"""'


def test_the_catalog_has_the_seeds_completion_models_with_limits_encodings_and_dated_prices():
    cat, prices = load_catalog(), load_prices()
    expected = {"gpt-35-turbo-instruct": (4_096, 1.50, 2.00), "davinci-002": (16_384, 2.00, 2.00),
                "babbage-002": (16_384, 0.40, 0.40)}
    for name, (context, price_in, price_out) in expected.items():
        info = cat.get(name)
        assert info.endpoints == ("completions",) and info.encoding == "cl100k_base"
        assert info.context_window == context and info.max_output_tokens == context
        price = prices.get(name)
        assert (price.input, price.output) == (price_in, price_out) and price.as_of == "2026-12" and price.source
    assert cat.get("gpt-3.5-turbo-instruct").name == "gpt-35-turbo-instruct"  # OpenAI's spelling
    assert cat.get("gpt-4o-mini").endpoints == ("chat",)
    assert cat.get("local").endpoints == ("chat", "completions")  # llama.cpp serves both


@pytest.mark.parametrize("style, model, path", [
    ("openai", "gpt-35-turbo-instruct", "/v1/completions"),
    ("azure", "instruct", "/openai/deployments/instruct/completions"),
    ("azure-v1", "instruct", "/openai/v1/completions"),
])
def test_a_raw_prompt_goes_to_the_completions_endpoint(style, model, path):
    fake = FakeBackend(Reply("for i in range(1, 6):\n    print(i)", prompt_tokens=11, completion_tokens=13))
    c = fake.provider(style).complete_prompt(SEED_PROMPT, model, max_tokens=50)
    req = fake.requests[-1]
    assert req.path == path and req.endpoint == "completions"
    assert req.body["prompt"] == SEED_PROMPT and "messages" not in req.body and req.body["max_tokens"] == 50
    assert (req.api_version is not None) == (style == "azure")
    assert c.text == "for i in range(1, 6):\n    print(i)" and c.outcome == "ok"
    assert (c.usage.prompt_tokens, c.usage.completion_tokens) == (11, 13)
    assert c.logprobs is None  # not asked for


def test_completions_logprobs_shape_is_recorded_as_tokens_with_alternatives():
    script = [("positive", -0.105, {"positive": -0.105, "negative": -2.4}), ("!", -0.5, {"!": -0.5, ".": -1.2})]
    fake = FakeBackend(Reply("positive!", logprobs=script))
    c = fake.provider("azure").complete_prompt("Review: great. Sentiment:", "instruct", logprobs=2)
    raw = fake.requests[-1]
    assert raw.body["logprobs"] == 2
    assert c.logprobs.tokens == ["positive", "!"] and c.logprobs.logprobs == [-0.105, -0.5]
    assert c.logprobs.top[0] == [("positive", -0.105), ("negative", -2.4)]  # most likely first
    alts = c.logprobs.alternatives(0)
    assert alts["positive"] == pytest.approx(math.exp(-0.105)) and alts["negative"] == pytest.approx(math.exp(-2.4))


def test_chat_logprobs_shape_is_recorded_the_same_way():
    script = [("Paris", -0.01, {"Paris": -0.01, "Lyon": -4.6, "paris": -6.0})]
    fake = FakeBackend(Reply("Paris", logprobs=script))
    c = fake.provider("openai").complete([{"role": "user", "content": "Capital of France?"}],
                                         logprobs=True, top_logprobs=2)
    body = fake.requests[-1].body
    assert body["logprobs"] is True and body["top_logprobs"] == 2
    assert c.logprobs.tokens == ["Paris"] and c.logprobs.top == [[("Paris", -0.01), ("Lyon", -4.6)]]


def test_default_fake_logprobs_are_deterministic_and_shaped_per_endpoint():
    a = FakeBackend().provider("openai").complete([{"role": "user", "content": "hi there"}], logprobs=True,
                                                  top_logprobs=3)
    b = FakeBackend().provider("openai").complete([{"role": "user", "content": "hi there"}], logprobs=True,
                                                  top_logprobs=3)
    assert a.logprobs == b.logprobs and "".join(a.logprobs.tokens) == a.text
    assert all(len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1] for top in a.logprobs.top)
    assert all(lp is not None and lp <= 0 for lp in a.logprobs.logprobs)


def test_a_prompt_variant_is_refused_with_a_chat_field_or_a_chat_only_parameter():
    with pytest.raises(SpecError, match=r"system: variant 'p' has a `prompt`"):
        Variant(name="p", prompt=SEED_PROMPT, system="You are helpful.")
    with pytest.raises(SpecError, match=r"params\.logprobs: the completions endpoint takes logprobs as the number"):
        Variant(name="p", prompt=SEED_PROMPT, params={"logprobs": True})
    with pytest.raises(SpecError, match=r"params\.top_logprobs: not a completions parameter"):
        Variant(name="p", prompt=SEED_PROMPT, params={"top_logprobs": 3})
    with pytest.raises(SpecError, match=r"params\.suffix: a completions-endpoint parameter"):
        Variant(name="chat", params={"suffix": "x"})
    ok = Variant(name="p", prompt=SEED_PROMPT, params={"logprobs": 3, "max_tokens": 20})
    assert ok.endpoint == "completions" and Variant(name="c").endpoint == "chat"


def test_the_same_refusal_from_yaml_names_the_variant_field(tmp_path):
    spec = tmp_path / "e.yaml"
    spec.write_text("name: e\ndataset: {rows: [{input: a}]}\nvariants:\n  - {name: chat}\n"
                    "  - {name: raw, prompt: 'Q: {{ input }}\\nA:', user: '{{ input }}!'}\n")
    with pytest.raises(SpecError, match=r"variants\[1\]\.user: variant 'raw' has a `prompt`"):
        load_experiment(spec)


def test_a_prompt_variant_round_trips_through_yaml(tmp_path):
    from workbench.examples import load_example

    exp = load_example("probabilities")
    text = exp.to_yaml()
    assert "prompt: 'Review: {{ text }}" in text and "user: '{{ input }}'" not in text
    (tmp_path / "e.yaml").write_text(text)
    (tmp_path / "sentiment.csv").write_text((exp.base_dir / "sentiment.csv").read_text())
    again = load_experiment(tmp_path / "e.yaml")
    assert again.variants == exp.variants and again.variants[0].endpoint == "completions"


def _exp(variants, **kw):
    rows = [{"id": "c1", "input": "count to 5 in a for loop"}, {"id": "c2", "input": "count to 3"}]
    return Experiment(name="mixed", dataset=rows, variants=variants, targets=["fake"], **kw)


def test_a_prompt_variant_on_a_chat_only_model_is_refused_at_plan_time_naming_both(tmp_path):
    fake = FakeBackend()
    exp = _exp([Variant(name="chatty"), Variant(name="raw-seed", prompt='"""\n{{ input }}\n"""')])
    with pytest.raises(DataError) as e:
        run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path / "run", progress=False)
    msg = str(e.value)
    assert "Variant 'raw-seed'" in msg and "chat (gpt-4o-mini)" in msg and "no completions endpoint" in msg
    assert "gpt-35-turbo-instruct" in msg  # says where it could go
    assert fake.requests == []  # before anything was sent


def test_a_chat_variant_on_a_completions_model_is_refused_at_plan_time_naming_both(tmp_path):
    fake = FakeBackend()
    exp = _exp([Variant(name="chatty", target="fake:instruct")])
    with pytest.raises(DataError, match=r"Variant 'chatty' on target 'fake:instruct'.*instruct "
                                        r"\(gpt-35-turbo-instruct\).*no chat endpoint"):
        run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path / "run", progress=False)
    assert fake.requests == []


def test_a_prompt_variant_and_a_chat_variant_in_one_run(tmp_path):
    fake = FakeBackend(lambda req: Reply("for i in range(1, 6): print(i)") if req.prompt else "ok, here you go")
    exp = _exp([Variant(name="chat", user="{{ input }}", params={"logprobs": True, "top_logprobs": 2}),
                Variant(name="seed-prompt", prompt='"""\n{{ input }}\n"""', target="fake:instruct",
                        params={"logprobs": 2, "max_tokens": 40})])
    providers = {"fake": fake.provider("azure")}
    res = run(exp, providers=providers, out=tmp_path / "run", cache=tmp_path / "c.sqlite", progress=False)
    assert len(res) == 4 and res.n_errors == 0
    assert len(fake.chat_requests) == 2 and len(fake.completion_requests) == 2
    assert {r.body["prompt"] for r in fake.completion_requests} == {'"""\ncount to 5 in a for loop\n"""',
                                                                    '"""\ncount to 3\n"""'}
    by = {(r.variant, r.case_id): r for r in res.records}
    raw = by[("seed-prompt", "c1")]
    assert raw.endpoint == "completions" and raw.messages == [] and raw.prompt.startswith('"""')
    assert raw.deployment == "instruct" and raw.model == "gpt-35-turbo-instruct"
    assert raw.output == "for i in range(1, 6): print(i)" and raw.logprobs.tokens[0] == "for"
    assert len(raw.logprobs.top[0]) == 2
    # priced at the completion model's own (dated) price
    price = load_prices().get("gpt-35-turbo-instruct")
    paid = (raw.prompt_tokens * price.input + raw.completion_tokens * price.output) / 1e6
    assert raw.cost_usd == pytest.approx(paid)
    chat = by[("chat", "c1")]
    assert chat.endpoint == "chat" and chat.prompt is None
    assert chat.logprobs.tokens == ["ok,", " here", " you", " go"]
    # stored and read back whole (the run store keeps the tokens and alternatives)
    again = run(exp, providers=providers, out=tmp_path / "run2", cache=tmp_path / "c.sqlite", progress=False)
    assert len(fake.chat_requests) + len(fake.completion_requests) == 4  # all from the cache: nothing paid twice
    cached = {(r.variant, r.case_id): r for r in again.records}[("seed-prompt", "c1")]
    assert cached.cache_hit and cached.logprobs == raw.logprobs and cached.prompt == raw.prompt


def test_a_raw_prompt_is_estimated_at_its_exact_token_count_with_no_chat_overhead():
    count = count_prompt(SEED_PROMPT, "gpt-35-turbo-instruct")
    assert count.total == len(encode(SEED_PROMPT, "gpt-35-turbo-instruct")) and count.overhead == 0
    exp = _exp([Variant(name="raw", prompt="{{ input }}", target="fake:instruct", params={"max_tokens": 10})])
    est = estimate(exp, providers={"fake": FakeBackend().provider("azure")})
    price = load_prices().get("gpt-35-turbo-instruct")
    tokens = [len(encode(t, "gpt-35-turbo-instruct")) for t in ("count to 5 in a for loop", "count to 3")]
    assert est.input_tokens == sum(tokens)
    assert est.usd == pytest.approx((sum(tokens) * price.input + 2 * 10 * price.output) / 1e6)


def test_a_reasoning_model_has_no_logprobs_dropped_with_a_warning_recorded_on_the_cell(tmp_path):
    fake = FakeBackend("positive")
    exp = _exp([Variant(name="lp", target="fake:reasoner", params={"logprobs": True, "top_logprobs": 3})])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ParameterWarning)
        res = run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path / "run", progress=False)
    assert all("logprobs" not in r.body and "top_logprobs" not in r.body for r in fake.chat_requests)
    cell = res.records[0]
    assert any("o4-mini does not accept logprobs (reasoning models return no token probabilities)" in w
               for w in cell.warnings), cell.warnings
    assert cell.logprobs is None
