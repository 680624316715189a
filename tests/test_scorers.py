"""Scorers on hand-built ScoreInput - no model (the judge and embedding scorers talk to the FakeBackend)."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from workbench.errors import DataError
from workbench.scorers import (
    SCORERS,
    EmbeddingScorer,
    JudgeParseError,
    JudgeScorer,
    LabelScorer,
    PythonScorer,
    Score,
    ScoreInput,
    Scorer,
    build_scorer,
    build_scorers,
    parse_grade,
    register_scorer,
)
from workbench.testing import FakeBackend, Reply, ServerError


def inp(output="", expected=None, **kw) -> ScoreInput:
    return ScoreInput.of(output, expected, **kw)


def score(spec, *args, **kw) -> Score:
    return build_scorer(spec).score(inp(*args, **kw))


# ------------------------------------------------------------------------------------------- exact


def test_exact_strips_by_default_but_respects_case():
    assert score("exact", " Paris\n", "Paris").passed is True
    s = score("exact", "paris", "Paris")
    assert (s.value, s.passed) == (0.0, False) and "does not equal" in s.explanation
    assert score({"exact": {"ignore_case": True}}, "paris", "Paris").value == 1.0


def test_exact_whitespace_options():
    assert score({"exact": {"strip": False}}, " Paris", "Paris").passed is False
    assert score("exact", "New   York", "New York").passed is False
    assert score({"exact": {"normalize_whitespace": True}}, " New \n York ", "New York").passed is True


def test_exact_list_expected_means_any_of():
    s = score("exact", "NYC", ["New York", "NYC"])
    assert s.passed and s.answer == "NYC"
    assert score("exact", "LA", ["New York", "NYC"]).passed is False


def test_exact_json_field_and_dotted_path():
    parsed = {"city": {"name": "Paris"}, "tags": ["a", "b"]}
    assert score({"exact": {"field": "city.name"}}, json.dumps(parsed), "Paris", parsed=parsed).passed
    assert score({"exact": {"field": "tags.1"}}, json.dumps(parsed), "b", parsed=parsed).passed
    # not parsed by the harness: the scorer parses the output itself (fences allowed)
    assert score({"exact": {"field": "city.name"}}, "```json\n" + json.dumps(parsed) + "\n```", "Paris").passed
    # a dict expected value: compare like with like
    assert score({"exact": {"field": "label"}}, '{"label": "pos", "x": 1}', {"label": "pos", "other": 2}).passed


def test_exact_field_missing_or_not_json_is_a_fail_not_an_error():
    s = score({"exact": {"field": "city"}}, '{"town": "Paris"}', "Paris")
    assert (s.value, s.passed, s.error) == (0.0, False, None) and "'city' is missing" in s.explanation
    s = score({"exact": {"field": "city"}}, "Paris", "Paris")
    assert (s.value, s.error) == (0.0, None) and "not JSON" in s.explanation


def test_exact_structures_and_numbers_compare_as_values():
    assert score("exact", '{"b": 2, "a": 1}', {"a": 1, "b": 2}).passed  # key order / spacing do not matter
    assert score("exact", '{"a": 1}', {"a": 2}).passed is False
    assert score("exact", "12", 12.0).passed  # a CSV column of ints read as floats
    assert score("exact", "12", np.int64(12)).passed


def test_missing_expected_is_a_scorer_error_naming_the_case():
    s = score("exact", "Paris", None, case_id="q7")
    assert s.value is None and s.passed is None
    assert s.error.startswith("ScoringError") and "'q7'" in s.error and "expected" in s.error
    assert score("exact", "Paris", float("nan")).error is not None  # an empty DataFrame cell


# ----------------------------------------------------------------------------------------- contains


def test_contains_options():
    assert score("contains", "The capital is Paris.", "Paris").passed
    assert score("contains", "The capital is paris.", "Paris").passed is False
    assert score({"contains": {"ignore_case": True}}, "the capital is PARIS", "paris").passed
    assert score("contains", "Paris or Lyon", ["Marseille", "Lyon"]).answer == "Lyon"
    s = score({"contains": {"match_all": True}}, "Paris and Lyon", ["Paris", "Lyon", "Nice"])
    assert s.passed is False and "'Nice'" in s.explanation
    assert score({"contains": {"match_all": True}}, "Paris and Lyon", ["Paris", "Lyon"]).passed


# ---------------------------------------------------------------------------------------------- regex


def test_regex_pattern_and_flags():
    assert score({"regex": r"\b\d{3}\b"}, "call 911 now").answer == "911"
    assert score({"regex": r"^paris$"}, "Paris").passed is False
    assert score({"type": "regex", "pattern": r"^paris$", "ignore_case": True}, " Paris\n").passed
    assert score({"type": "regex", "pattern": r"\d+", "fullmatch": True}, "12 apples").passed is False


def test_regex_template_inserts_expected_literally():
    spec = {"regex": r"\b{{ expected }}\b"}
    assert score(spec, "it costs 3.5 dollars", "3.5").passed
    assert score(spec, "it costs 305 dollars", "3.5").passed is False  # the dot is escaped
    assert score(spec, "it costs 4 dollars", ["3.5", "4"]).passed
    assert score(
        {"regex": r"capital of {{ vars.country }}"}, "the capital of France", vars={"country": "France"}
    ).passed


def test_regex_group_is_the_answer_compared_with_expected():
    spec = {"type": "regex", "pattern": r"ANSWER:\s*(\w+)", "group": 1, "ignore_case": True}
    s = score(spec, "reasoning...\nANSWER: Blue", "blue")
    assert s.passed and s.answer == "Blue"
    s = score(spec, "ANSWER: red", "blue")
    assert s.passed is False and s.answer == "red"
    assert score(spec, "no answer line", "blue").passed is False


def test_regex_bad_pattern_fails_at_build_time():
    with pytest.raises(DataError, match="invalid regex"):
        build_scorer({"regex": "(unclosed"})
    with pytest.raises(DataError, match="needs a `pattern`"):
        build_scorer("regex")


# ---------------------------------------------------------------------------------------------- label

LABELS = ["positive", "negative", "neutral"]


def label(output, expected, **options):
    return build_scorer({"type": "label", "labels": LABELS, **options}).score(inp(output, expected))


def test_label_whole_word_case_insensitive_with_its_evidence():
    s = label("Sentiment: POSITIVE.", "positive")
    assert s.passed and s.answer == "positive" and s.verdict == "pass"
    assert s.evidence == "POSITIVE" and s.span == (11, 19)  # quoted from the output, where it was read
    assert label("It is positively great", "positive").answer is None  # whole words only


def test_a_two_label_answer_is_ambiguous_and_fails_by_default():
    for output in ("Positive or Negative: positive", "Sentiment: POSITIVE. (Not negative.)"):
        s = label(output, "positive")
        assert (s.value, s.passed, s.verdict, s.answer) == (0.0, False, "ambiguous", None), output
        assert s.metadata["ambiguous"] is True and s.metadata["labels_found"] == ["positive", "negative"]
        assert "ambiguous" in s.explanation and s.evidence and output[s.span[0]:s.span[1]] == s.evidence
    # configurable: take the first label named (still marked ambiguous)
    s = label("Positive or Negative: positive", "positive", on_ambiguous="first")
    assert s.passed and s.verdict == "pass" and s.answer == "positive" and s.metadata["ambiguous"] is True
    with pytest.raises(DataError, match="on_ambiguous"):
        build_scorer({"label": {"labels": LABELS, "on_ambiguous": "maybe"}})


def test_a_refusal_fails_as_refused_with_the_phrase_as_evidence():
    refusal = ("I'm sorry, but I don't have the ability to provide a positive or negative review of this "
               "product.")
    s = label(refusal, "positive")
    assert (s.value, s.passed, s.verdict) == (0.0, False, "refused")
    assert s.evidence == "I don't have the ability to provide" and refusal[s.span[0]:s.span[1]] == s.evidence
    assert label("As an AI language model, I cannot determine the sentiment.", "negative").verdict == "refused"
    # the same detection protects the other answer scorers: "contains positive" does not pass a refusal
    assert score({"contains": {}}, refusal, "positive").verdict == "refused"
    assert score({"regex": r"positive"}, refusal).verdict == "refused"
    # ...and can be switched off
    assert label(refusal, "positive", on_refusal="score").verdict == "ambiguous"


def test_not_every_apology_is_a_refusal():
    assert label("I'm sorry to hear that, but the review is negative.", "negative").verdict == "pass"
    assert label("As an AI, I'd say this is positive.", "positive").verdict == "pass"
    # a refusal phrase the input itself contains is an echo of the review, not a refusal
    review = "I can't recommend this phone to anyone."
    s = build_scorer({"label": {"labels": LABELS}}).score(
        inp("The reviewer writes that I can't recommend this phone: negative", "negative", vars={"text": review}))
    assert s.verdict == "pass"


def test_every_built_in_scorer_says_what_it_saw():
    assert score("exact", "  Paris ", "Paris").evidence == "Paris"
    s = score({"regex": {"pattern": r"ANSWER:\s*(\w+)", "group": 1}}, "so... ANSWER: yes", "yes")
    assert s.evidence == "ANSWER: yes" and s.span == (6, 17)
    s = score("numeric", "It costs $1,250 in total", 1250)
    assert (s.verdict, s.evidence, s.span) == ("pass", "1,250", (10, 15))
    s = score({"json_schema": {"type": "object", "required": ["a"]}}, '{"b": 1}')
    assert s.verdict == "fail" and s.evidence == '{"b": 1}'
    s = score("json_valid", "nope")
    assert s.verdict == "fail" and s.passed is False


def test_label_longest_label_wins_at_the_same_position():
    s = LabelScorer(labels=["pass", "pass with notes"]).score(inp("Pass with notes.", "pass with notes"))
    assert s.answer == "pass with notes" and s.passed


def test_label_no_label_found_is_a_fail_with_no_answer():
    s = label("It is hard to say.", "neutral")
    assert (s.value, s.passed, s.answer, s.error, s.verdict) == (0.0, False, None, None, "fail")
    assert "no label" in s.explanation


def test_label_wrong_label():
    s = label("negative", "positive")
    assert s.passed is False and s.answer == "negative"


def test_label_whole_mode():
    assert label('"Positive."', "positive", mode="whole").passed
    s = label("positive, I think", "positive", mode="whole")
    assert s.passed is False and s.answer is None


def test_label_from_json():
    out = '{"reasoning": "not negative at all", "sentiment": "Positive"}'
    s = label(out, "positive")  # the one value that is exactly a label, not the first mention
    assert s.passed and s.answer == "positive"
    parsed = {"a": {"label": "neutral"}}
    s = build_scorer({"type": "label", "labels": LABELS, "field": "a.label"}).score(
        inp(json.dumps(parsed), "neutral", parsed=parsed)
    )
    assert s.passed and s.answer == "neutral"


def test_label_needs_labels():
    with pytest.raises(DataError, match="labels"):
        build_scorer("label")
    with pytest.raises(DataError, match="labels"):
        build_scorer({"label": "positive"})  # a string is not a list of labels


# ----------------------------------------------------------------------------------------------- JSON


def test_json_valid():
    assert score("json_valid", '{"a": 1}').passed
    assert score("json_valid", '```json\n{"a": 1}\n```').passed
    assert score({"json_valid": {"allow_fences": False}}, '```json\n{"a": 1}\n```').passed is False
    s = score("json_valid", '{"a": 1,}')
    assert s.passed is False and s.error is None and "line 1 column" in s.explanation
    assert "empty" in score("json_valid", "  ").explanation


SCHEMA = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {"type": "object", "properties": {"price": {"type": "number"}}, "required": ["price"]},
        }
    },
    "required": ["items"],
}


def test_json_schema_names_the_failing_path():
    ok = {"items": [{"price": 1}, {"price": 2.5}]}
    assert score({"json_schema": SCHEMA}, json.dumps(ok)).passed
    bad = {"items": [{"price": 1}, {"price": "abc"}]}
    s = score({"json_schema": SCHEMA}, json.dumps(bad))
    assert s.passed is False and s.explanation.startswith("$.items[1].price") and "'abc'" in s.explanation
    assert s.metadata["errors"][0]["path"] == "$.items[1].price"
    s = score({"json_schema": SCHEMA}, "{}")
    assert "'items' is a required property" in s.explanation
    assert "not valid JSON" in score({"json_schema": SCHEMA}, "nope").explanation


def test_json_schema_from_a_file_and_invalid_schemas(tmp_path):
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(SCHEMA))
    scorer = build_scorer({"json_schema": str(path)})
    assert scorer.score(inp('{"items": []}')).passed
    assert build_scorer(scorer.spec()).spec() == scorer.spec()
    with pytest.raises(DataError, match="invalid JSON Schema"):
        build_scorer({"json_schema": {"type": "objekt"}})
    with pytest.raises(DataError, match="cannot read"):
        build_scorer({"json_schema": str(tmp_path / "missing.json")})


# --------------------------------------------------------------------------------------------- numeric


def test_numeric_reads_the_last_number_by_default():
    s = score("numeric", "3 apples plus 4 apples make 7.", 7)
    assert s.passed and s.answer == "7"
    assert score({"numeric": {"which": "first"}}, "3 apples plus 4 apples make 7.", 3).passed
    s = score({"numeric": {"which": "only"}}, "3 then 7", 7)
    assert s.passed is False and "several numbers" in s.explanation


@pytest.mark.parametrize(
    "text,value",
    [
        ("Total: $1,234.50", 1234.5),
        ("about 45%", 45),
        ("\u22123.5 degrees", -3.5),
        ("1e-3", 0.001),
        ("the answer is .5", 0.5),
        ("version gpt4 says 12", 12),
    ],
)
def test_numeric_number_formats(text, value):
    s = score("numeric", text, value)
    assert s.passed, (text, s)


def test_numeric_tolerances():
    assert score("numeric", "3.14", 3.14159).passed is False
    assert score({"numeric": {"abs_tol": 0.01}}, "3.14", 3.14159).passed
    assert score({"numeric": {"rel_tol": 0.05}}, "104", 100).passed
    assert score({"numeric": {"rel_tol": 0.05}}, "106", "100").passed is False
    assert score("numeric", "0.30000000000000004", 0.3).passed  # default rel_tol absorbs float noise


def test_numeric_field_and_pattern():
    assert score({"numeric": {"field": "total"}}, '{"total": "1,000"}', 1000).passed
    assert score({"numeric": {"field": "total"}}, '{"total": 12}', {"total": 12}).passed
    assert score({"numeric": {"pattern": r"ANSWER:\s*(\S+)"}}, "step 1: 5\nANSWER: 42\nnote 3", 42).passed


def test_numeric_no_number_fails_and_bad_expected_errors():
    s = score("numeric", "I don't know", 3)
    assert (s.value, s.error) == (0.0, None) and "no number" in s.explanation
    s = score("numeric", "3", "three")
    assert s.value is None and "not a number" in s.error


# ----------------------------------------------------------------------------------- failure per cell


ALL_BUILTIN_SPECS = [
    "exact",
    "contains",
    {"regex": "x"},
    {"label": ["a", "b"]},
    "json_valid",
    {"json_schema": {"type": "object"}},
    "numeric",
]


@pytest.mark.parametrize("spec", ALL_BUILTIN_SPECS, ids=str)
@pytest.mark.parametrize("outcome", ["prompt_filtered", "completion_filtered"])
def test_filtered_cells_fail_with_an_explanation(spec, outcome):
    s = build_scorer(spec).score(inp("a", "a", outcome=outcome))
    assert (s.value, s.passed, s.error) == (0.0, False, None)
    assert outcome in s.explanation and s.metadata["outcome"] == outcome


def test_length_outcome_is_scored_and_noted():
    s = score("exact", "Paris", "Paris", outcome="length")
    assert s.passed and s.metadata["outcome"] == "length"


def test_an_exception_inside_a_scorer_becomes_an_error_score():
    def boom(inp):
        raise RuntimeError("kaput")

    s = build_scorer(boom).score(inp("x"))
    assert (s.value, s.passed, s.error) == (None, None, "RuntimeError: kaput")
    assert asyncio.run(build_scorer(boom).ascore(inp("x"))).error == "RuntimeError: kaput"


def test_ascore_and_score_agree_and_score_works_inside_a_running_loop():
    scorer = build_scorer({"exact": {"ignore_case": True}})

    async def main():
        a = await scorer.ascore(inp("PARIS", "paris"))
        b = scorer.score(inp("PARIS", "paris"))  # sync call from async code (as in a Jupyter cell)
        return a, b

    a, b = asyncio.run(main())
    assert a == b and a.passed


# ------------------------------------------------------------------------------------- python/custom


def has_citation(inp: ScoreInput, marker: str = "[1]") -> bool:
    return marker in inp.output


async def async_length(inp: ScoreInput) -> float:
    await asyncio.sleep(0)
    return min(1.0, len(inp.output) / 10)


def test_python_scorer_return_types():
    assert score(has_citation, "see [1]").value == 1.0
    assert build_scorer(has_citation).name == "has_citation"
    s = PythonScorer(function=async_length, threshold=0.5).score(inp("abcdef"))
    assert (s.value, s.passed) == (0.6, True)
    s = build_scorer(lambda i: {"score": 0.25, "explanation": "meh", "tokens": 3}).score(inp("x"))
    assert (s.value, s.passed, s.explanation, s.metadata) == (0.25, False, "meh", {"tokens": 3})
    s = build_scorer(lambda i: Score(scorer="whatever", value=1.0, passed=True)).score(inp("x"))
    assert s.scorer == "<lambda>"  # renamed to the scorer's name, so result columns line up
    s = build_scorer(lambda i: None).score(inp("x"))
    assert s.value is None and s.error.startswith("ScoringError") and "returned NoneType" in s.error


def test_python_scorer_sees_filtered_cells():
    s = build_scorer(lambda i: i.outcome == "prompt_filtered").score(inp("", outcome="prompt_filtered"))
    assert s.passed is True


def test_python_scorer_from_an_import_path_round_trips():
    scorer = build_scorer({"name": "cites", "python": f"{__name__}:has_citation"})
    assert scorer.name == "cites" and scorer.score(inp("x [1]")).passed
    assert scorer.spec() == {"type": "python", "name": "cites", "function": f"{__name__}:has_citation"}
    again = build_scorer(scorer.spec())
    assert again.spec() == scorer.spec() and again.score(inp("x [1]")).passed
    from_callable = build_scorer(has_citation)
    assert from_callable.spec() == {"type": "python", "function": f"{__name__}:has_citation"}
    with_kwargs = PythonScorer(function=has_citation, kwargs={"marker": "(a)"})
    assert build_scorer(with_kwargs.spec()).score(inp("see (a)")).passed


def test_python_scorer_errors():
    with pytest.raises(DataError, match="cannot import"):
        build_scorer({"python": "os.path:no_such_function"})
    with pytest.raises(DataError, match="import path"):
        build_scorer({"python": "nodots"})
    with pytest.raises(DataError, match="cannot be saved to YAML"):
        build_scorer(lambda i: True).spec()


def test_register_scorer_function_with_options():
    @register_scorer("mentions_var", replace=True)
    def mentions_var(inp, var="city"):
        return str(inp.vars[var]).lower() in inp.output.lower()

    try:
        scorer = build_scorer({"mentions_var": {"var": "country"}})
        assert scorer.name == "mentions_var"
        assert scorer.score(inp("I love france", vars={"country": "France"})).passed
        assert scorer.spec() == {"type": "mentions_var", "var": "country"}
        assert build_scorer(scorer.spec()).spec() == scorer.spec()
        named = build_scorer({"type": "mentions_var", "name": "has_city"})
        assert named.name == "has_city" and build_scorer(named.spec()).name == "has_city"
        with pytest.raises(DataError, match="already registered"):
            register_scorer("mentions_var")(has_citation)
    finally:
        SCORERS.pop("mentions_var", None)


def test_register_scorer_class():
    from dataclasses import dataclass

    @register_scorer("shorter_than", replace=True)
    @dataclass(kw_only=True, eq=False)
    class ShorterThan(Scorer):
        limit: int = 10

        def _score(self, inp):
            return self._verdict(len(inp.output) < self.limit)

    try:
        scorer = build_scorer({"shorter_than": {"limit": 3}})
        assert scorer.score(inp("ab")).passed and not scorer.score(inp("abcd")).passed
        assert scorer.spec() == {"type": "shorter_than", "limit": 3}
    finally:
        SCORERS.pop("shorter_than", None)


# ------------------------------------------------------------------------------------- build_scorer


ROUND_TRIP_SPECS = [
    {"type": "exact"},
    {"type": "exact", "ignore_case": True, "normalize_whitespace": True, "field": "a.b"},
    {"type": "contains", "name": "mentions", "match_all": True},
    {"type": "regex", "pattern": r"\b{{ expected }}\b", "ignore_case": True, "group": 0, "fullmatch": True},
    {"type": "label", "name": "sentiment", "labels": ["positive", "negative"], "mode": "whole", "field": "label"},
    {"type": "json_valid", "allow_fences": False},
    {"type": "json_schema", "schema": {"type": "object", "required": ["a"]}},
    {"type": "numeric", "abs_tol": 0.5, "rel_tol": 0.01, "which": "first", "pattern": r"=\s*(\S+)"},
    {"type": "embedding", "profile": "azure", "model": "text-embedding-3-small", "threshold": 0.9},
    {
        "type": "judge",
        "rubric": "Mentions {{ vars.city }}",
        "profile": "openai",
        "model": "gpt-4o-mini",
        "format": "grade",
        "partial_credit": True,
        "threshold": 0.5,
        "params": {"max_tokens": 50},
        "structured": False,
    },
    {"type": "python", "function": f"{__name__}:has_citation", "kwargs": {"marker": "*"}, "threshold": 0.5},
]


@pytest.mark.parametrize("spec", ROUND_TRIP_SPECS, ids=lambda s: s["type"])
def test_spec_round_trips(spec):
    scorer = build_scorer(spec)
    assert scorer.spec() == spec
    assert build_scorer(scorer.spec()).spec() == spec


def test_every_registered_builtin_is_in_the_round_trip_list():
    covered = {s["type"] for s in ROUND_TRIP_SPECS}
    builtins = {k for k, v in SCORERS.items() if isinstance(v, type) and v.__module__ == "workbench.scorers"}
    assert builtins - {"custom", "similarity"} <= covered


def test_build_scorer_forms():
    assert build_scorer("exact").spec() == {"type": "exact"}
    assert build_scorer({"exact": None}).spec() == {"type": "exact"}
    assert build_scorer({"exact": {"ignore_case": True}}).spec() == {"type": "exact", "ignore_case": True}
    assert build_scorer({"regex": r"\d"}).spec() == {"type": "regex", "pattern": r"\d"}
    assert build_scorer({"name": "sent", "label": {"labels": ["a"]}}).name == "sent"
    assert build_scorer({"custom": f"{__name__}:has_citation"}).name == "has_citation"
    instance = build_scorer("json_valid")
    assert build_scorer(instance) is instance
    assert build_scorer(LabelScorer(labels=["x"])).kind == "label"
    assert build_scorer(f"{__name__}:has_citation").score(inp("[1]")).passed


@pytest.mark.parametrize(
    "spec,message",
    [
        ("nope", "unknown scorer 'nope'; known: .*exact"),
        ({"type": "exact", "ignorecase": True}, "has no option 'ignorecase'; its options: .*ignore_case"),
        ({"exact": {}, "contains": {}}, "use {type: <scorer>"),
        ({"exact": 3}, "expected a mapping"),
        ({"type": "label", "labels": ["a"], "mode": "fuzzy"}, "mode must be"),
        ({"type": "judge"}, "needs a `rubric`"),
        ({"type": "judge", "rubric": "{{ output "}, "template error"),
        (42, "cannot build a scorer"),
    ],
)
def test_build_scorer_config_errors(spec, message):
    with pytest.raises(DataError, match=message):
        build_scorer(spec)


def test_build_scorers_rejects_duplicate_names():
    assert [s.name for s in build_scorers(["exact", {"name": "loose", "exact": {"ignore_case": True}}])] == [
        "exact",
        "loose",
    ]
    with pytest.raises(DataError, match="two scorers are named 'exact'"):
        build_scorers(["exact", {"exact": {"ignore_case": True}}])


# ------------------------------------------------------------------------------------------ embedding


def test_embedding_similarity_with_the_fake_backend():
    fake = FakeBackend()
    scorer = EmbeddingScorer(provider=fake.provider("openai"), model="text-embedding-3-small", threshold=0.8)
    same = scorer.score(inp("the cat sat on the mat", "The cat sat on the mat"))
    assert same.value == pytest.approx(1.0) and same.passed
    other = scorer.score(inp("quarterly revenue grew", "The cat sat on the mat"))
    assert other.value < 0.8 and other.passed is False
    best = scorer.score(inp("the cat sat", ["revenue grew", "the cat sat"]))
    assert best.value == pytest.approx(1.0) and len(best.metadata["similarities"]) == 2
    assert scorer.spec()["profile"] == "fake-openai" and "provider" not in scorer.spec()


def test_embedding_caches_vectors_per_scorer():
    fake = FakeBackend()
    scorer = EmbeddingScorer(provider=fake.provider("openai"), model="text-embedding-3-small")
    scorer.score(inp("a b", "a b c"))
    scorer.score(inp("a b", "a b c"))  # both texts cached: no request
    scorer.score(inp("a b d", "a b c"))  # only the new output is embedded
    embeds = [r for r in fake.requests if r.endpoint == "embeddings"]
    assert len(embeds) == 2 and embeds[1].body["input"] == ["a b d"]


def test_embedding_async_empty_output_and_provider_failure():
    fake = FakeBackend()
    scorer = EmbeddingScorer(provider=fake.provider("openai"), model="m")
    s = asyncio.run(scorer.ascore(inp("hello world", "hello world")))
    assert s.passed
    assert scorer.score(inp("  ", "x")).explanation == "output is empty"

    class Broken:
        def embed(self, texts, model=None):
            raise ConnectionError("embedding service down")

    s = EmbeddingScorer(provider=Broken()).score(inp("a", "b"))
    assert s.value is None and s.error == "ConnectionError: embedding service down"


# ---------------------------------------------------------------------------------------------- judge


def judge(fake: FakeBackend, **options) -> JudgeScorer:
    return JudgeScorer(provider=fake.provider("openai"), model="gpt-4o-mini", **{"rubric": "It is correct.", **options})


QUESTION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]


def test_judge_json_grade_with_usage_in_metadata():
    fake = FakeBackend(Reply('{"reasoning": "Names Paris.", "score": 8}', prompt_tokens=123, completion_tokens=9))
    s = judge(fake).score(inp("Paris", "Paris", messages=QUESTION))
    assert (s.value, s.passed, s.answer, s.explanation) == (0.8, True, "8/10", "Names Paris.")
    assert (s.verdict, s.evidence, s.span) == ("pass", "Names Paris.", None)  # the judge's reason is its evidence
    assert s.metadata["prompt_tokens"] == 123 and s.metadata["completion_tokens"] == 9
    from workbench.costs import token_cost

    assert s.metadata["cost_usd"] == pytest.approx(token_cost("gpt-4o-mini", 123, 9).usd) and s.metadata["cost_usd"] > 0
    assert s.metadata["judge_output"].startswith("{")


def test_judge_prompt_contains_rubric_input_output_and_expected():
    fake = FakeBackend('{"score": 3, "reasoning": "r"}')
    scorer = judge(fake, rubric="Must mention {{ vars.city }} (case {{ case_id }})")
    s = scorer.score(inp("It is Lyon", "Paris", messages=QUESTION, vars={"city": "Paris"}, case_id="c9"))
    assert s.value == pytest.approx(0.3) and s.passed is False
    sent = fake.requests[-1]
    text = sent.user_text
    for part in ("Must mention Paris (case c9)", "Capital of France?", "It is Lyon", "[Reference answer]\nParis"):
        assert part in text
    assert sent.body["temperature"] == 0
    assert sent.body["response_format"]["json_schema"]["schema"]["properties"]["score"]["enum"] == list(range(11))


def test_judge_structured_output_can_be_turned_off():
    fake = FakeBackend('{"score": 10}')
    judge(fake, structured=False).score(inp("x", messages=QUESTION))
    assert "response_format" not in fake.requests[-1].body
    judge(fake, format="grade").score(inp("x", messages=QUESTION))
    assert "response_format" not in fake.requests[-1].body


@pytest.mark.parametrize(
    "reply,value",
    [
        ("Looks right.\nGRADE: C", 1.0),
        ("Wrong city.\nGRADE: I", 0.0),
        ("Half of it.\nGRADE: P", 0.5),
    ],
)
def test_judge_inspect_style_grades(reply, value):
    fake = FakeBackend(reply)
    s = judge(fake, format="grade", partial_credit=True).score(inp("Paris", messages=QUESTION))
    assert s.value == value and s.error is None and s.answer in ("C", "I", "P")
    assert "GRADE: P" in fake.requests[-1].user_text


def test_judge_malformed_reply_is_a_per_cell_error_with_tokens():
    fake = FakeBackend(Reply("I would rather not say.", prompt_tokens=50, completion_tokens=6))
    s = judge(fake).score(inp("Paris", messages=QUESTION))
    assert s.value is None and s.passed is None
    assert s.error.startswith("JudgeParseError") and "no grade found" in s.error
    assert s.metadata["judge_output"] == "I would rather not say." and s.metadata["completion_tokens"] == 6
    s = judge(FakeBackend('{"score": 85}')).score(inp("Paris", messages=QUESTION))
    assert s.value is None and "outside 0..10" in s.error


def test_judge_backend_failure_does_not_raise_and_filtered_cells_cost_nothing():
    fake = FakeBackend('{"score": 10}')
    fake.fail(ServerError(500), times=1)
    s = judge(fake).score(inp("Paris", messages=QUESTION))
    assert s.value is None and s.error.startswith("InternalServerError")
    n = len(fake.requests)
    s = judge(fake).score(inp("", outcome="completion_filtered"))
    assert s.passed is False and len(fake.requests) == n


def test_judge_async_path_and_rubric_errors_per_cell():
    fake = FakeBackend('{"reasoning": "fine", "score": 10}')
    s = asyncio.run(judge(fake).ascore(inp("Paris", messages=QUESTION)))
    assert s.value == 1.0 and s.passed
    s = judge(fake, rubric="Mentions {{ vars.missing }}").score(inp("Paris"))
    assert s.value is None and "missing" in s.error


@pytest.mark.parametrize(
    "text,expected",
    [
        ('{"reasoning": "ok", "score": 7}', (0.7, "7/10", "ok")),
        ('```json\n{"Score": "9", "explanation": "good"}\n```', (0.9, "9/10", "good")),
        ('Sure! Here is my grade: {"score": 4, "reasoning": "partly"} Hope it helps.', (0.4, "4/10", "partly")),
        ('{"grade": "correct"}', (1.0, "correct", None)),
        ('{"verdict": false}', (0.0, "false", None)),
        ("Reasoning here.\nScore: 6/10", (0.6, "6/10", "Reasoning here.")),
        ("I'd say 3 out of 5.", (0.6, "3/5", "I'd say")),
        ("Reply in the form\nGRADE: C\nThe city is wrong.\nGRADE: I", (0.0, "I", None)),  # an echo, then the verdict
        ('{"score": 6, "reasoning": "this reply was cut at max_to', (0.6, "6/10", None)),
    ],
)
def test_parse_grade(text, expected):
    value, raw, reasoning = parse_grade(text)
    assert value == pytest.approx(expected[0]) and raw == expected[1]
    if expected[2] is not None:
        assert reasoning == expected[2]


def test_parse_grade_custom_scale_and_grades_and_failures():
    assert parse_grade('{"score": 4}', scale=5)[0] == pytest.approx(0.8)
    assert parse_grade("GRADE: meh", grades={"meh": 0.25})[0] == 0.25
    with pytest.raises(JudgeParseError, match="unknown grade"):
        parse_grade('{"score": "superb"}')
    with pytest.raises(JudgeParseError, match="outside"):
        parse_grade("Score: 11/10")
    with pytest.raises(JudgeParseError, match="no grade found"):
        parse_grade("")


@pytest.mark.local_model
def test_judge_on_the_embedded_model_returns_a_score():
    scorer = build_scorer({"judge": {"rubric": "The answer names Paris.", "params": {"max_tokens": 60}}})
    s = scorer.score(inp("Paris", "Paris", messages=QUESTION))
    assert s.error is None, s
    assert 0.0 <= s.value <= 1.0 and s.metadata["prompt_tokens"] > 0 and s.metadata["judge_model"]


@pytest.mark.local_model
def test_embedding_on_the_embedded_model_ranks_paraphrases_higher():
    scorer = build_scorer("embedding")
    close = scorer.score(inp("The cat is sitting on the mat.", "A cat sits on the mat."))
    far = scorer.score(inp("Quarterly revenue grew by ten percent.", "A cat sits on the mat."))
    assert close.error is None and far.error is None
    assert close.value > far.value
