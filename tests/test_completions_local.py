"""One real run on the embedded model: a prompt variant (llama.cpp's raw completion, no chat template) and a
chat variant in one experiment, with token log-probabilities recorded and scored."""

import math

import pytest

from workbench.experiment import Experiment
from workbench.harness import run
from workbench.tokens import count_prompt
from workbench.variants import Variant

pytestmark = pytest.mark.local_model

SEED = '"""\ncount to 5 in a for loop\n"""'  # (jinja drops a template's trailing newline)


def test_a_prompt_variant_and_a_chat_variant_on_the_local_model_with_logprobs(tmp_path):
    rows = [{"id": "seed", "input": "count to 5 in a for loop", "expected": "positive"},
            {"id": "review", "input": "I love this phone, it is great", "expected": "positive"}]
    exp = Experiment(
        name="local-completions", dataset=rows, targets=["local"], seed=0,
        scorers=[{"label_probability": ["positive", "negative"]}],
        variants=[
            Variant(name="raw", prompt='"""\n{{ input }}\n"""\n', params={"max_tokens": 8, "logprobs": 3,
                                                                         "temperature": 0}),
            Variant(name="chat", system="Answer with one word: positive or negative.", user="{{ input }}",
                    params={"max_tokens": 4, "logprobs": True, "top_logprobs": 5, "temperature": 0}),
        ])
    res = run(exp, out=tmp_path / "run", cache=tmp_path / "c.sqlite", progress=False)
    assert len(res) == 4 and res.n_errors == 0, res.errors()
    by = {(r.variant, r.case_id): r for r in res.records}
    raw = by[("raw", "seed")]
    assert raw.endpoint == "completions" and raw.prompt == SEED and raw.messages == []
    # exact prompt tokens: no chat template around a raw prompt
    assert raw.prompt_tokens == count_prompt(SEED, "local").total
    assert raw.prompt_tokens < by[("chat", "seed")].prompt_tokens
    for rec in res.records:
        lp = rec.logprobs
        assert lp is not None and len(lp) == rec.completion_tokens, rec
        assert "".join(lp.tokens) == rec.output
        assert all(x is not None and x <= 1e-6 for x in lp.logprobs)
        width = 3 if rec.variant == "raw" else 5
        assert all(len(top) >= width for top in lp.top)  # llama.cpp adds the chosen token when it is not in the top
        assert all(math.isclose(sum(math.exp(v) for _, v in top[:1]), math.exp(top[0][1])) for top in lp.top)
    # the label probability is a score in its own right (a real number or a fail with a reason, never a crash)
    scores = [s for r in res.records for s in r.scores]
    assert all(s.verdict in ("pass", "fail") for s in scores), [s.error for s in scores]
    for s in scores:  # a confidence exactly when the labels hold enough of the answer token (min_coverage 0.2)
        assert (s.metadata.get("confidence") is not None) == (s.metadata.get("coverage", 0) >= 0.2), s
        assert s.explanation
