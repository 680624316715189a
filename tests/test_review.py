"""Human reviews: stored in the run folder by logical cell, surfaced as the `human` score, kept across re-runs and
reloads, exported with the results; the Review widget driven headless (verdicts, corrections, filters, keys)."""

from __future__ import annotations

import json

import pytest
from review_fakes import cell as _cell
from review_fakes import experiment, run_once

from workbench.errors import DataError, NotFoundError, SpecError
from workbench.experiment import Experiment
from workbench.harness import run
from workbench.records import HumanReview
from workbench.results import Results
from workbench.review import ReviewSpec, ReviewStore, read_reviews
from workbench.review.calibration import reviewer_agreement, scorer_agreement
from workbench.review.keys import key_action
from workbench.review.queue import review_queue
from workbench.testing import FakeBackend
from workbench.variants import Variant
from workbench.widgets import Review


@pytest.fixture
def results(tmp_path) -> Results:
    return run_once(tmp_path / "run")


# ------------------------------------------------------------------------------------------------- the store


def test_reviews_are_stored_by_logical_cell_and_become_the_human_score(results):
    store = ReviewStore(results.run_dir)
    store.add_review(_cell(results, "c1"), verdict="pass", reviewer="ann", comment="right")
    store.add_review(_cell(results, "c2"), verdict="fail", reviewer="ann", corrected_output="negative.")
    store.add_review(_cell(results, "c3", "careful"), value=2, scale=(1, 5), pass_at=4, reviewer="ann")
    loaded = Results.load(results.run_dir)
    assert "human" in loaded.scorers
    df = loaded.df.set_index(["case_id", "variant", "repeat"])
    assert df.loc[("c1", "terse", 0), "verdict.human"] == "pass"
    assert df.loc[("c1", "terse", 0), "reviewer.human"] == "ann"
    assert df.loc[("c1", "terse", 0), "comment.human"] == "right"
    assert df.loc[("c2", "terse", 0), "score.human"] == 0.0
    assert df.loc[("c2", "terse", 0), "corrected_output.human"] == "negative."
    # 2 on 1..5 -> (2 - 1) / (5 - 1) = 0.25, below pass_at 4: a fail
    assert df.loc[("c3", "careful", 0), "score.human"] == pytest.approx(0.25)
    assert df.loc[("c3", "careful", 0), "verdict.human"] == "fail"
    assert df["verdict.human"].notna().sum() == 3  # unreviewed cells have no human score
    summary = loaded.summary("human")
    assert summary["n"].sum() == 3


def test_latest_review_counts_history_is_kept_and_undo_withdraws(results):
    store = ReviewStore(results.run_dir)
    cell = _cell(results, "c1")
    store.add_review(cell, verdict="fail", reviewer="ann")
    store.add_review(cell, verdict="pass", reviewer="ann", comment="changed my mind")
    assert [r.verdict for r in store.reviews()] == ["pass"]
    assert [r.verdict for r in store.history()] == ["fail", "pass"]
    store.clear(cell, reviewer="ann")
    assert store.reviews() == [] and len(store.history()) == 3
    assert "human" not in Results.load(results.run_dir).scorers


def test_a_correction_equal_to_the_output_is_not_a_correction(results):
    cell = _cell(results, "c1")
    r = ReviewStore(results.run_dir).add_review(cell, verdict="pass", corrected_output=cell.output + "  ",
                                                reviewer="ann")
    assert r.corrected_output is None


def test_bad_reviews_are_refused_before_anything_is_written(results):
    store = ReviewStore(results.run_dir)
    cell = _cell(results, "c1")
    with pytest.raises(SpecError, match="verdict"):
        store.add_review(cell, verdict="maybe", reviewer="ann")
    with pytest.raises(SpecError, match="needs a verdict"):
        store.add_review(cell, reviewer="ann", comment="no verdict")
    with pytest.raises(SpecError, match="outside the review scale"):
        store.add_review(cell, value=9, scale=(1, 5), reviewer="ann")
    with pytest.raises(SpecError, match="needs the scale"):
        store.add_review(cell, value=3, reviewer="ann")
    assert store.history() == []
    with pytest.raises(DataError, match="not a run folder"):
        ReviewStore(results.run_dir / "nope")


def test_reading_a_run_without_reviews_creates_nothing(results, tmp_path):
    import sqlite3

    assert read_reviews(results.run_dir) == []
    assert read_reviews(tmp_path / "empty") == []
    with sqlite3.connect(results.run_dir / "results.sqlite") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "reviews" not in tables


def test_reviews_survive_a_rerun_into_the_same_folder_and_are_exported(results, tmp_path):
    ReviewStore(results.run_dir).add_review(_cell(results, "c2"), verdict="pass", reviewer="ann")
    again = run_once(results.run_dir)  # the same run folder: finished cells are kept, reviews too
    assert again.df.set_index(["case_id", "variant", "repeat"]).loc[("c2", "terse", 0), "verdict.human"] == "pass"
    from workbench.runs.finalize import export_results

    export_results(again, again.run_dir)
    lines = [json.loads(x) for x in (again.run_dir / "results.jsonl").read_text().splitlines()]
    human = [s for rec in lines for s in rec["scores"] if s["scorer"] == "human"]
    assert len(human) == 1 and human[0]["verdict"] == "pass" and human[0]["metadata"]["reviewer"] == "ann"
    import pandas as pd

    table = pd.read_parquet(again.run_dir / "results.parquet")
    assert (table["verdict.human"] == "pass").sum() == 1


def test_a_review_of_an_earlier_output_is_stale_not_a_verdict(results):
    cell = _cell(results, "c1")
    stale = HumanReview(experiment=cell.experiment, case_id=cell.case_id, variant=cell.variant, target=cell.target,
                         repeat=cell.repeat, reviewer="ann", verdict="pass", output_sha256="0" * 64)
    ReviewStore(results.run_dir).add(stale)
    score = next(s for s in _cell(Results.load(results.run_dir), "c1").scores if s.scorer == "human")
    assert score.value is None and score.verdict == "error" and "earlier output" in score.error


def test_the_review_spec_is_validated_and_saved_with_the_experiment():
    exp = experiment()
    assert exp.review.threshold == 4 and exp.review.values() == [1, 2, 3, 4, 5]
    assert "review" in exp.to_dict() and exp.to_dict()["review"]["scale"] == [1, 5]
    assert experiment(review=None).fingerprint() == exp.fingerprint()  # reviews do not change results
    with pytest.raises(SpecError, match="pass_at"):
        experiment(review={"scale": [1, 5], "pass_at": 7})
    with pytest.raises(SpecError, match="lowest"):
        ReviewSpec(scale=(5, 1))


# --------------------------------------------------------------------------------------------- agreement


def test_scorer_and_reviewer_agreement_on_reviewed_cells(results):
    store = ReviewStore(results.run_dir)
    for case, verdict in (("c1", "pass"), ("c2", "pass"), ("c3", "pass"), ("c4", "pass")):
        store.add_review(_cell(results, case), verdict=verdict, reviewer="ann")
    for case, verdict in (("c1", "pass"), ("c2", "fail"), ("c3", "pass")):
        store.add_review(_cell(results, case), verdict=verdict, reviewer="bob")
    loaded = Results.load(results.run_dir)
    # label on terse/repeat 0: c1 positive (pass), c2 negative (pass), c3 positive (pass), c4 "Positive!" (pass)
    a = scorer_agreement(loaded, "label", reviewer="ann")
    assert a.n == 4 and a.accuracy == 1.0 and a.confusion.counts == ((4, 0), (0, 0))
    assert not a.kappa.defined  # one label only: kappa cannot be measured, and says so
    b = reviewer_agreement(loaded, "ann", "bob")
    assert b.n == 3 and [d.key for d in b.disagreements] == [("c2", "terse", "fake", 0)]
    with pytest.raises(NotFoundError, match="no scorer"):
        scorer_agreement(loaded, "nope")
    with pytest.raises(NotFoundError, match="no reviews by"):
        scorer_agreement(loaded, "label", reviewer="carol")


# ------------------------------------------------------------------------------------------------- queue


def test_review_queue_filters(results):
    recs = results.records
    assert len(review_queue(recs, "all")) == len(recs) == 16
    failed = review_queue(recs, "failed")
    assert ("c4", "careful", "fake", 0) in failed  # ambiguous counts as failed
    assert ("c1", "terse", "fake", 0) not in failed
    flaky = review_queue(recs, "flaky")
    assert set(flaky) == {("c3", "careful", "fake", 0), ("c3", "careful", "fake", 1)}
    assert set(review_queue(recs, "ambiguous")) == {("c4", "careful", "fake", 0), ("c4", "careful", "fake", 1)}
    # label passes "Positive!" (c4 terse) but exact does not: the scorers disagree
    assert ("c4", "terse", "fake", 0) in review_queue(recs, "disagreeing")
    sample = review_queue(recs, "sample", sample_size=5, seed=3)
    assert len(sample) == 5 and sample == review_queue(recs, "sample", sample_size=5, seed=3)
    assert sample == sorted(sample, key=lambda k: (k[0], k[1], k[2], k[3]))
    done = {("c1", "terse", "fake", 0)}
    assert ("c1", "terse", "fake", 0) not in review_queue(recs, "unreviewed", reviewed=done)
    with pytest.raises(DataError, match="use one of"):
        review_queue(recs, "broken")


def test_keys_map_to_actions():
    assert key_action("p") == ("pass", None) and key_action("F").name == "fail"
    assert key_action("4", (1, 5)) == ("value", 4)
    assert key_action("7", (1, 5)) is None and key_action("4") is None
    assert key_action("?") is None


# ------------------------------------------------------------------------------------------------ widget


def test_widget_walks_unreviewed_cells_saves_verdicts_and_shows_progress(results):
    w = Review(results, reviewer="ann")
    assert w.show == "unreviewed" and len(w.queue) == 16
    assert w.progress.text() == "0 of 16 reviewed"
    first = w.current
    assert first.case_id in w.cell_html.value and "messages as sent" in w.cell_html.value
    assert "expected: <b>positive</b>" in w.cell_html.value or "expected:" in w.cell_html.value
    w.pass_button.click()
    assert w.position == 1 and w.progress.text() == "1 of 16 reviewed"
    assert "1 of 16 reviewed" in w.progress_html.value
    w.fail_button.click()
    saved = {r.cell: r.verdict for r in ReviewStore(results.run_dir).reviews()}
    assert saved[(first.case_id, first.variant, first.target, first.repeat)] == "pass"
    assert sorted(saved.values()) == ["fail", "pass"]
    # the notebook's Results object sees the reviews at once
    assert results.df["verdict.human"].notna().sum() == 2
    # the filter buttons count what is left, while the walk stays on its queue
    assert ("unreviewed (14)", "unreviewed") in w.filter_toggle.options and len(w.queue) == 16
    w.back()
    w.undo_button.click()
    assert ("unreviewed (15)", "unreviewed") in w.filter_toggle.options


def test_widget_saves_a_comment_and_a_correction_and_a_scale_value(results):
    w = Review(results, reviewer="ann", show="all")
    cell = w.current
    w.comment_box.value = "the label is right but the text is odd"
    w.correction_box.value = "positive"
    w.scale_buttons.value = 4  # clicking "4" on the 1..5 scale
    r = w.last_saved
    assert r.value == 4 and r.scale == (1.0, 5.0) and r.pass_at == 4 and r.label == "pass"
    assert r.comment.startswith("the label") and (r.corrected_output == "positive") == (cell.output != "positive")
    assert w.position == 1
    w.back()
    assert w.comment_box.value.startswith("the label") and w.scale_buttons.value == 4
    assert "reviewed:" in w.current_html.value and "by you" in w.current_html.value
    w.comment_box.value = "edited comment"
    w.save()  # the same verdict, the new comment
    assert ReviewStore(results.run_dir).reviews()[0].comment == "edited comment" and w.position == 0


def test_widget_keyboard_box_reviews_three_cells_and_undo(results):
    w = Review(results, reviewer="ann", show="all")
    w.keys_box.value = "p"
    w.keys_box.value = "f"
    w.keys_box.value = "5"
    assert w.keys_box.value == ""  # each key is consumed
    mine = ReviewStore(results.run_dir).reviews(reviewer="ann")
    assert [r.label for r in mine] == ["pass", "fail", "pass"] and mine[2].value == 5
    assert w.position == 3
    w.keys_box.value = "b"
    w.keys_box.value = "u"
    assert len(ReviewStore(results.run_dir).reviews(reviewer="ann")) == 2
    w.keys_box.value = "?"  # a key that means nothing does nothing
    assert w.position == 2


def test_widget_filters_and_blind_mode(results):
    w = Review(results, reviewer="ann", show="flaky", scorer="label")
    assert {k[0] for k in w.queue} == {"c3"}
    assert "flaky (2)" in [label for label, _ in w.filter_toggle.options]
    w.show = "ambiguous"
    assert {k[0] for k in w.queue} == {"c4"} and w.current.variant == "careful"
    assert "label: <b>ambiguous</b>" in w.cell_html.value
    w.blind = True
    assert "label:" not in w.cell_html.value and "expected:" not in w.cell_html.value
    w.filter_toggle.value = "sample"
    assert w.show == "sample" and len(w.queue) == 16  # sample of 20 from 16 calls: all of them
    w.sample_size = 3
    assert len(w.queue) == 3
    with pytest.raises(DataError):
        w.show = "everything"


def test_widget_state_persists_across_a_reload(results):
    w = Review(results, reviewer="ann", show="all")
    w.comment_box.value = "ok"
    w.verdict("pass")
    w.verdict("fail")
    again = Review(results.run_dir, reviewer="ann")  # a new kernel: load the folder again
    assert again.progress.run_reviewed == 2 and again.position == 0
    assert again.progress.text() == "0 of 14 reviewed (whole run: 2 of 16)"
    assert (again.current.case_id, again.current.variant, again.current.repeat) not in {
        (r.case_id, r.variant, r.repeat) for r in ReviewStore(results.run_dir).reviews()}
    assert len(again.queue) == 14  # unreviewed only
    other = Review(results.run_dir, reviewer="bob")
    assert other.progress.reviewed == 0 and len(other.queue) == 16  # a second reviewer starts fresh
    assert "2 of 16 calls reviewed" in again.static_html()


def test_widget_shows_tool_calls(tmp_path):
    from workbench.testing import Reply

    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "weather"}'}}
    fake = FakeBackend(lambda req: Reply(text="", tool_calls=[call]))
    exp = Experiment(name="tools", dataset=[{"id": "t1", "q": "weather?"}], variants=[Variant(
        name="v", user="{{ q }}", params={"tools": [{"type": "function", "function": {
            "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]})],
        targets=["fake"])
    res = run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path / "run", cache=False, progress=False)
    assert res.records[0].tool_calls == [call]
    w = Review(res, reviewer="ann", show="all")
    assert "lookup" in w.cell_html.value and "call_1" in w.cell_html.value


# ------------------------------------------------------------------------------------------- calibration


def _grading_judge(req):
    """A fake judge: under a rubric saying EXACTLY it compares the answer with the reference; else it passes all."""
    text = req.user_text
    if "EXACTLY" not in text:
        return '{"reasoning": "fine", "score": 10}'
    answer = text.split("[Assistant's answer]\n", 1)[1].split("\n", 1)[0].strip()
    reference = text.split("[Reference answer]\n", 1)[1].split("\n", 1)[0].strip()
    score = 10 if answer == reference else 0
    return f'{{"reasoning": "compared", "score": {score}}}'


def test_calibrate_reruns_a_judge_rubric_on_reviewed_cells_and_compares_agreement(results):
    from workbench.review import calibrate
    from workbench.scorers.model_graded import JudgeScorer

    store = ReviewStore(results.run_dir)
    for rec in results.records:
        if rec.repeat == 0:  # the reviewer passes exactly the outputs that equal the expected label
            store.add_review(rec, verdict="pass" if rec.output == {"c1": "positive", "c2": "negative",
                             "c3": "positive", "c4": "positive"}[rec.case_id] else "fail", reviewer="ann")
    fake = FakeBackend(_grading_judge)

    def judge(rubric):
        return JudgeScorer(name="judge", rubric=rubric, provider=fake.provider("openai"), model="gpt-4o-mini")

    lenient = calibrate(results, judge("The answer is a sentiment."))
    strict = calibrate(results, judge("The answer must equal the reference EXACTLY."))
    assert len(lenient.scores) == len(strict.scores) == 8  # only the reviewed cells were scored again
    assert len(fake.requests) == 16
    assert lenient.agreement.accuracy < strict.agreement.accuracy == 1.0
    assert strict.agreement.kappa.value == pytest.approx(1.0)
    assert lenient.agreement.disagreements and not strict.agreement.disagreements
    assert "re-run on 8 reviewed cells" in strict.summary()
    # the run's own scorer of the same name is the "before"
    relabel = calibrate(results, {"label": {"labels": ["positive", "negative"], "on_ambiguous": "fail"}})
    assert relabel.before is not None and relabel.before.n == relabel.agreement.n
    with pytest.raises(DataError, match="no reviewed cells"):
        calibrate(Results.load(run_once(results.run_dir.parent / "other").run_dir), judge("x"))


# ------------------------------------------------------------------------------------------------ report


def test_the_report_shows_review_coverage_and_agreement_and_escapes_comments(tmp_path):
    import nb_fakes

    from workbench import runs
    from workbench.runs.manifest import NotebookInfo

    exp = runs.resolve_experiment(None, targets=nb_fakes.PROFILE, sample_size=4)
    run_dir = tmp_path / "reports" / exp.name / "r1"
    res = runs.run_experiment(exp, run_dir, providers="nb_fakes:sentiment", progress=False)

    def finalize():
        return runs.finalize_run(run_dir, run_id="r1", experiment=exp.name,
                                 notebook=NotebookInfo(path="", name="(none)"), parameters={}).report.read_text()

    assert 'id="review"' not in finalize()  # no reviews, no section
    store = ReviewStore(run_dir)
    recs = [r for r in res.records if r.variant == "bare"]
    for i, rec in enumerate(recs):
        store.add_review(rec, verdict="pass" if i % 2 else "fail", reviewer="ann")
    store.add_review(recs[0], verdict="pass", reviewer="bob", comment="<script>window.__pwned=1</script>")
    html = finalize()
    assert 'id="review"' in html and 'href="#review"' in html
    assert f"{len(recs)} of {len(res)} calls reviewed" in html and "by ann, bob" in html
    assert "Cohen&#39;s kappa; SE of Fleiss, Cohen &amp; Everitt (1969)" in html
    assert "wb-confusion" in html and "label vs human" in html and "bob vs ann" in html
    assert "<script>window.__pwned" not in html  # a comment is text, never markup
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html  # shown next to the disagreement
    assert 'id="scores"' in html and ">human<" in html  # the human score has its own summary


def test_widget_on_a_folder_reads_the_stored_spec_for_the_scale_and_expected_answers(results):
    w = Review(results.run_dir, reviewer="ann", show="all")
    assert w.spec.scale == (1, 5) and "Is the sentiment label right?" in w.children[1].value
    assert "expected: <b>" in w.cell_html.value
    w.keys_box.value = "4"
    assert w.last_saved.value == 4
    with pytest.raises(DataError, match="not a run folder"):
        Review(results.run_dir / "missing")
