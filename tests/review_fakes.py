"""Shared by the review and fine-tuning tests: a small run of the fake backend with passes, fails, a flaky case
and an ambiguous answer, and an experiment with a 1..5 review scale."""

from __future__ import annotations

from collections import Counter

from workbench.experiment import Experiment
from workbench.harness import run
from workbench.results import Results
from workbench.testing import FakeBackend
from workbench.variants import Variant

CASES = [
    {"id": "c1", "text": "I love it", "expected": "positive"},
    {"id": "c2", "text": "Terrible service", "expected": "negative"},
    {"id": "c3", "text": "It was fine I guess", "expected": "positive"},  # flaky on "careful"
    {"id": "c4", "text": "Not bad at all", "expected": "positive"},  # "positive or negative": ambiguous
]


def responder():
    seen = Counter()

    def answer(req):
        text = req.user_text
        if "fine" in text and "carefully" in req.system_text:
            seen[text] += 1
            return "positive" if seen[text] % 2 else "negative"
        if "Not bad" in text:
            return "positive or negative" if "carefully" in req.system_text else "Positive!"
        return "positive" if ("love" in text or "fine" in text) else "negative"

    return answer


def experiment(**changes) -> Experiment:
    exp = Experiment(
        name="review-test", dataset=CASES, repeats=2, concurrency=2, max_retries=0,
        variants=[Variant(name="terse", user="{{ text }}", params={"temperature": 0}),
                  Variant(name="careful", system="Read carefully. Answer positive or negative.",
                          user="Review: {{ text }}", params={"temperature": 0})],
        targets=["fake"], scorers=[{"label": {"labels": ["positive", "negative"]}}, "exact"],
        review={"scale": [1, 5], "pass_at": 4, "labels": {1: "wrong", 5: "right"},
                "instructions": "Is the sentiment label right?"},
    )
    return exp.replace(**changes) if changes else exp


def run_once(out, fake=None) -> Results:
    fake = fake or FakeBackend(responder())
    return run(experiment(), providers={"fake": fake.provider("azure")}, out=out, cache=False, progress=False)


def cell(results, case, variant="terse", repeat=0):
    return next(r for r in results.records if (r.case_id, r.variant, r.repeat) == (case, variant, repeat))
