"""The label-probability score and calibration (reliability bins, expected calibration error), checked against
values computed by hand on fixed tables - and end to end through the fake backend's logprobs."""

import math

import pytest

from workbench.errors import DataError
from workbench.experiment import Experiment
from workbench.harness import run
from workbench.records import TokenLogprobs
from workbench.scorers import LabelProbabilityScorer, ScoreInput, build_scorer
from workbench.stats import calibration, calibration_table
from workbench.testing import FakeBackend, Reply
from workbench.variants import Variant

# Ten answers, five bins of 0.2. By hand:
#   bin [0.2, 0.4): 0.3 (wrong), 0.2 (right)          n=2  confidence 0.25   accuracy 0.5   gap 0.25
#   bin [0.4, 0.6): 0.45 (wrong), 0.55 (right)        n=2  confidence 0.5    accuracy 0.5   gap 0
#   bin [0.6, 0.8): 0.75 (right), 0.65 (wrong)        n=2  confidence 0.7    accuracy 0.5   gap 0.2
#   bin [0.8, 1.0]: 0.95, 0.9, 1.0 (right), 0.85 (w)  n=4  confidence 0.925  accuracy 0.75  gap 0.175
#   ECE = 0.2*0.25 + 0.2*0 + 0.2*0.2 + 0.4*0.175 = 0.16;  MCE = 0.25;  accuracy 0.6;  mean confidence 0.66
#   Brier = (0.05² + 0.1² + 0.85² + 0.25² + 0.65² + 0.45² + 0.45² + 0.3² + 0² + 0.8²) / 10 = 0.2355
CONFIDENCE = [0.95, 0.9, 0.85, 0.75, 0.65, 0.55, 0.45, 0.3, 1.0, 0.2]
CORRECT = [1, 1, 0, 1, 0, 1, 0, 0, 1, 1]


def test_calibration_matches_the_hand_computed_table():
    cal = calibration(CONFIDENCE, CORRECT, bins=5)
    assert cal.n == 10 and cal.accuracy == pytest.approx(0.6) and cal.mean_confidence == pytest.approx(0.66)
    assert cal.ece == pytest.approx(0.16) and cal.mce == pytest.approx(0.25) and cal.brier == pytest.approx(0.2355)
    got = [(b.lower, b.upper, b.n, b.mean_confidence, b.accuracy) for b in cal.bins]
    assert got[0] == (0.0, 0.2, 0, None, None)  # an empty bin says so
    expected = [(0.2, 0.4, 2, 0.25, 0.5), (0.4, 0.6, 2, 0.5, 0.5), (0.6, 0.8, 2, 0.7, 0.5), (0.8, 1.0, 4, 0.925, 0.75)]
    for (lo, hi, n, conf, acc), (glo, ghi, gn, gconf, gacc) in zip(expected, got[1:]):
        assert (glo, ghi, gn) == pytest.approx((lo, hi, n)) and gconf == pytest.approx(conf)
        assert gacc == pytest.approx(acc)
    assert cal.bins[4].gap == pytest.approx(-0.175)  # overconfident at the top
    frame = cal.to_frame()
    assert list(frame["n"]) == [0, 2, 2, 2, 4] and "gap" in frame


def test_perfect_and_worst_calibration_and_bad_input():
    assert calibration([1.0, 1.0, 0.0], [1, 1, 0], bins=10).ece == 0.0
    assert calibration([1.0, 1.0], [0, 0]).ece == 1.0
    for conf, right, msg in (([1.2], [1], "between 0 and 1"), ([0.5], [1, 0], "1 confidences but 2"),
                             ([], [], "no answers")):
        with pytest.raises(DataError, match=msg):
            calibration(conf, right)
    with pytest.raises(DataError, match="bins must be"):
        calibration([0.5], [1], bins=0)


def _lp(first_alternatives: dict[str, float], prefix: tuple[str, ...] = ()) -> TokenLogprobs:
    chosen = max(first_alternatives, key=first_alternatives.get)
    top = [[] for _ in prefix] + [[(t, math.log(p)) for t, p in first_alternatives.items()]]
    logprobs = [-0.01] * len(prefix) + [math.log(first_alternatives[chosen])]
    return TokenLogprobs(tokens=[*prefix, chosen], logprobs=logprobs, top=top)


def test_label_probability_sums_a_labels_spellings_and_normalises_over_the_labels():
    scorer = build_scorer({"label_probability": {"labels": ["positive", "negative"]}})
    assert isinstance(scorer, LabelProbabilityScorer)
    # by hand: positive = 0.5 + 0.1 = 0.6, negative = 0.25; coverage 0.85 ("The" counts for neither)
    lp = _lp({" Positive": 0.5, "positive": 0.1, " negative": 0.25, "The": 0.1}, prefix=("\n",))
    s = scorer.score(ScoreInput.of("\n Positive", "positive", logprobs=lp))
    assert s.verdict == "pass" and s.answer == "positive" and s.evidence == "Positive"
    assert s.metadata["coverage"] == pytest.approx(0.85) and s.metadata["token_index"] == 1
    assert s.value == pytest.approx(0.6 / 0.85) and s.metadata["confidence"] == pytest.approx(0.6 / 0.85)
    wrong = scorer.score(ScoreInput.of("\n Positive", "negative", logprobs=lp))
    assert wrong.verdict == "fail" and wrong.value == pytest.approx(0.25 / 0.85)
    assert wrong.metadata["confidence"] == pytest.approx(0.6 / 0.85)  # the model's confidence in its own answer


def test_label_probability_reads_the_token_where_the_label_is_chosen_and_refuses_a_thin_one():
    scorer = LabelProbabilityScorer(labels=["positive", "negative"])
    # "A positive": the first token is no label; the label is chosen at " positive" (0.7 vs 0.2 there)
    lp = TokenLogprobs(tokens=["\n", "A", " positive"], logprobs=[-0.01, math.log(0.5), math.log(0.7)],
                       top=[[], [("A", math.log(0.5)), (" Positive", math.log(0.03))],
                            [(" positive", math.log(0.7)), (" negative", math.log(0.2))]])
    s = scorer.score(ScoreInput.of("\nA positive", "positive", logprobs=lp))
    assert s.metadata["token_index"] == 2 and s.value == pytest.approx(0.7 / 0.9) and s.evidence == "positive"
    # a first token where the labels hold 3%: normalising would claim certainty; it is a fail with no confidence
    thin = TokenLogprobs(tokens=["A"], logprobs=[math.log(0.5)], top=[[("A", math.log(0.5)),
                                                                        (" Positive", math.log(0.03))]])
    t = scorer.score(ScoreInput.of("A", "positive", logprobs=thin))
    assert t.verdict == "fail" and "hold only 3%" in t.explanation and "confidence" not in t.metadata
    loose = LabelProbabilityScorer(labels=["positive", "negative"], min_coverage=0)
    assert loose.score(ScoreInput.of("A", "positive", logprobs=thin)).value == pytest.approx(1.0)
    with pytest.raises(DataError, match="min_coverage"):
        LabelProbabilityScorer(labels=["positive", "negative"], min_coverage=2)


def test_label_probability_fails_or_errors_with_a_reason():
    scorer = LabelProbabilityScorer(labels=["positive", "negative"])
    none = scorer.score(ScoreInput.of("Maybe", "positive", logprobs=_lp({"Maybe": 0.7, "I": 0.2})))
    assert none.verdict == "fail" and "none of the labels" in none.explanation and "confidence" not in none.metadata
    missing = scorer.score(ScoreInput.of("positive", "positive"))
    assert missing.verdict == "error" and "top_logprobs: 5" in missing.error
    with pytest.raises(DataError, match="at least two"):
        LabelProbabilityScorer(labels=["positive"])


# Two variants of equal accuracy (3 of 4) on a fixed set; their first-token alternatives, by hand:
#   sure  (chat):      always 0.9 on its answer -> confidence 0.9 x4, accuracy 0.75: ECE |0.75 - 0.9| = 0.15
#   hedge (prompt):    always 0.7 on its answer -> confidence 0.7 x4, accuracy 0.75: ECE |0.75 - 0.7| = 0.05
#   label_probability means: sure (0.9 + 0.9 + 0.9 + 0.1) / 4 = 0.7; hedge (0.7 + 0.7 + 0.7 + 0.3) / 4 = 0.6
ANSWERS = {"c1": "positive", "c2": "positive", "c3": "negative", "c4": "positive"}  # c4 is wrong for both


def _reply(req):
    case = next(c for c in ANSWERS if c in req.user_text)
    p = 0.9 if req.prompt is None else 0.7
    said = ANSWERS[case]
    other = "negative" if said == "positive" else "positive"
    script = [(f" {said}", math.log(p), {f" {said}": math.log(p), f" {other}": math.log(1 - p)})]
    return Reply(f" {said}", logprobs=script)


def test_calibration_per_variant_end_to_end_through_both_logprobs_shapes(tmp_path):
    rows = [{"id": c, "text": f"review {c}", "expected": e}
            for c, e in (("c1", "positive"), ("c2", "positive"), ("c3", "negative"), ("c4", "negative"))]
    scorers = [{"label_probability": ["positive", "negative"]}]
    exp = Experiment(name="cal", dataset=rows, targets=["fake"], scorers=scorers,
                     variants=[Variant(name="sure", user="{{ text }}", params={"logprobs": True, "top_logprobs": 5}),
                               Variant(name="hedge", prompt="{{ text }}\nSentiment:", target="fake:instruct",
                                       params={"logprobs": 5, "max_tokens": 2})])
    res = run(exp, providers={"fake": FakeBackend(_reply).provider("azure")}, out=tmp_path / "run", progress=False)
    summary = res.summary("label_probability").set_index("variant")
    assert summary.loc["sure", "mean"] == pytest.approx(0.7) and summary.loc["hedge", "mean"] == pytest.approx(0.6)
    table = calibration_table(res.df, "label_probability", by="variant").set_index("variant")
    assert table.loc["sure", "n"] == 4 and table.loc["sure", "accuracy"] == pytest.approx(0.75)
    assert table.loc["sure", "ece"] == pytest.approx(0.15) and table.loc["hedge", "ece"] == pytest.approx(0.05)
    assert table.loc["hedge", "mean_confidence"] == pytest.approx(0.7)
    bins = table.loc["hedge", "bins"].bins
    assert [b.n for b in bins] == [0] * 7 + [4, 0, 0]  # all four answers at 0.7


def _cal_experiment():
    rows = [{"id": c, "text": f"review {c} <b>", "expected": e}
            for c, e in (("c1", "positive"), ("c2", "positive"), ("c3", "negative"), ("c4", "negative"))]
    return Experiment(name="cal", dataset=rows, targets=["fake"],
                      scorers=[{"label_probability": ["positive", "negative"]}],
                      variants=[Variant(name="sure", user="{{ text }}", params={"logprobs": True, "top_logprobs": 5}),
                                Variant(name="hedge", prompt="{{ text }}\nSentiment:", target="fake:instruct",
                                        params={"logprobs": 5, "max_tokens": 2})])


def test_results_calibration_and_the_reliability_chart(tmp_path):
    from workbench.viz import plot_reliability

    res = run(_cal_experiment(), providers={"fake": FakeBackend(_reply).provider("azure")}, out=tmp_path / "run",
              progress=False)
    table = res.calibration().set_index("variant")
    assert table.loc["hedge", "ece"] == pytest.approx(0.05) and table.loc["hedge", "target"] == "fake:instruct"
    fig = plot_reliability(res.df, "label_probability")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "sure: ECE 0.150 (n=4)" in labels and "hedge: ECE 0.050 (n=4)" in labels
    assert len(fig.axes[0].collections) == 2  # one set of bin points per variant


def test_the_report_shows_calibration_and_token_probabilities_without_scripts(tmp_path):
    import re

    from workbench import runs
    from workbench.runs.manifest import NotebookInfo

    run_dir = tmp_path / "reports" / "cal" / "r1"
    runs.run_experiment(_cal_experiment(), run_dir, providers={"fake": FakeBackend(_reply).provider("azure")},
                        progress=False)
    out = runs.finalize_run(run_dir, run_id="r1", experiment="cal", notebook=NotebookInfo(path="", name="(none)"),
                            parameters={})
    html = out.report.read_text()
    assert 'id="calibration"' in html and 'id="probabilities"' in html
    assert "reliability diagram per variant" in html and "0.050" in html  # hedge's ECE in the table
    # each token coloured, its alternatives in a title= attribute (hover works with no script)
    assert re.search(r'<span title="&#x27; positive&#x27;: p = 70.0% \(logprob -0.357\)\nalternatives:', html)
    assert "<script" not in html.lower()
    assert "review c1 &lt;b&gt;" in html  # a prompt variant's input is its raw prompt, escaped


def test_a_label_probability_scorer_on_variants_without_logprobs_is_refused_before_the_run():
    from workbench.errors import SpecError

    with pytest.raises(SpecError) as e:
        Experiment(name="e", dataset=[{"input": "a", "expected": "positive"}],
                   variants=[Variant(name="chat"), Variant(name="raw", prompt="{{ input }}"),
                             Variant(name="ok", params={"logprobs": True, "top_logprobs": 5})],
                   scorers=[{"label_probability": ["positive", "negative"]}])
    assert [p for p, _ in e.value.problems] == ["variants[0].params", "variants[1].params"]
    assert "logprobs: true, top_logprobs: 5" in str(e.value) and "add logprobs: 5" in str(e.value)
