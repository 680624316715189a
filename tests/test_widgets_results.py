"""The results viewer, driven headless over a run of the fake backend with passes, fails, a flaky case,
a filtered call and an error."""

from __future__ import annotations

from collections import Counter

import pytest

from workbench.experiment import Experiment
from workbench.harness import run
from workbench.results import Results
from workbench.testing import CompletionFiltered, FakeBackend, HTTPError
from workbench.variants import Variant
from workbench.widgets import ResultsViewer
from workbench.widgets.cells import cell_statuses, filter_cases, filter_counts, output_diff_html, unified_diff
from workbench.widgets.fallback import FALLBACK_CLASS

CASES = [
    {"id": "c1", "text": "I love it", "expected": "positive"},
    {"id": "c2", "text": "Terrible service", "expected": "negative"},
    {"id": "c3", "text": "It was fine I guess", "expected": "positive"},  # flaky on "careful"
    {"id": "c4", "text": "violent review", "expected": "negative"},  # filtered on "careful"
    {"id": "c5", "text": "crash me", "expected": "negative"},  # an error on "terse"
]


def responder():
    seen = Counter()

    def answer(req):
        text = req.user_text
        if "violent" in text and "carefully" in req.system_text:
            return CompletionFiltered({"violence": "high"}).reply()
        if "crash" in text and "carefully" not in req.system_text:
            return HTTPError(400, "invalid_request_error", "bad request for this case")
        if "fine" in text and "carefully" in req.system_text:
            seen[text] += 1
            return "positive" if seen[text] % 2 else "negative"  # repeats disagree
        if "fine" in text:
            return "I would say negative overall"
        return "positive" if "love" in text else "negative"

    return answer


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Results:
    fake = FakeBackend(responder())
    exp = Experiment(
        name="viewer-test", dataset=CASES, repeats=3, concurrency=2, max_retries=0,
        variants=[Variant(name="terse", user="{{ text }}", params={"temperature": 0}),
                  Variant(name="careful", system="Read carefully. Answer positive or negative.",
                          user="Review: {{ text }}", params={"temperature": 0})],
        targets=["fake"], scorers=[{"label": {"labels": ["positive", "negative"]}}, "exact"],
    )
    return run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path_factory.mktemp("run"), cache=False,
               progress=False)


@pytest.fixture
def viewer(results):
    return ResultsViewer(results)


def buttons(viewer):
    return {k: b for k, b in viewer.cell_buttons.items()}


def test_a_button_per_cell_coloured_by_outcome(viewer):
    assert viewer.variants == ["terse", "careful"] and viewer.scorer == "label"
    cells = buttons(viewer)
    assert len(cells) == 10  # 5 cases x 2 variants, repeats folded into one cell
    assert viewer.grid.children[0].value == "<b>case</b>"
    assert cells[("c1", "terse", "fake")].button_style == "success"
    assert cells[("c3", "careful", "fake")].button_style == "warning"  # flaky
    assert cells[("c4", "careful", "fake")].button_style == "info"  # filtered
    assert cells[("c5", "terse", "fake")].button_style == "danger"  # error
    assert cells[("c1", "terse", "fake")].description.startswith("✓ positive")


def test_filters_for_failed_filtered_and_flaky_cells(viewer):
    counts = dict(viewer.filter_toggle.options)
    assert {"all (10)": "all", "flaky (1)": "flaky", "filtered (1)": "filtered"}.items() <= counts.items()
    viewer.filter_toggle.value = "flaky"
    assert viewer.show == "flaky" and viewer.visible_cases == ["c3"]
    assert {k[0] for k in viewer.cell_buttons} == {"c3"}
    viewer.show = "filtered"
    assert viewer.filter_toggle.value == "filtered" and viewer.visible_cases == ["c4"]
    viewer.show = "failed"
    assert viewer.visible_cases == ["c3", "c4", "c5"]  # flaky has fails; filtered counts as fail; errors fail
    viewer.show = "all"
    assert viewer.visible_cases == ["c1", "c2", "c3", "c4", "c5"]
    with pytest.raises(ValueError, match="use one of"):
        viewer.show = "broken"


def test_clicking_a_cell_shows_messages_full_output_and_a_diff(viewer):
    viewer.cell_buttons[("c3", "terse", "fake")].click()
    assert viewer.selected == ("c3", "terse", "fake")
    detail = viewer.detail.value
    assert "It was fine I guess" in detail and "<b>user</b>" in detail  # the messages as sent
    assert "I would say negative overall" in detail and "repeat 2" in detail  # every repeat's full output
    assert "label: <b>fail</b>" in detail and "prompt + " in detail
    assert viewer.diff_pick.options == ("careful",)
    assert "<del" in viewer.diff.value and "<ins" in viewer.diff.value and "similarity" in viewer.diff.value

    viewer.cell_buttons[("c4", "careful", "fake")].click()
    assert "completion_filtered" in viewer.detail.value and "content filter results" in viewer.detail.value
    assert "system" in viewer.detail.value and "Read carefully" in viewer.detail.value


def test_select_by_name_and_unknown_cells(viewer):
    viewer.select("c2", "careful")
    assert viewer.selected == ("c2", "careful", "fake") and "Terrible service" in viewer.detail.value
    with pytest.raises(KeyError, match="nope"):
        viewer.select("nope", "careful")


def test_switching_the_scorer_recomputes_verdicts(viewer):
    assert viewer.cell_buttons[("c1", "terse", "fake")].button_style == "success"
    viewer.scorer_pick.value = "exact"
    assert viewer.scorer == "exact" and "exact" in viewer.summary.value
    assert viewer.cell_buttons[("c3", "terse", "fake")].button_style == "danger"


def test_summary_with_intervals_and_the_paired_comparison(viewer):
    for column in ("score [95% CI]", "ambiguous", "refused", "errors", "cost"):
        assert f">{column}</th>" in viewer.summary.value, column
    assert "95% confidence" in viewer.summary.value and "%]" in viewer.summary.value  # pass rates in percent
    assert viewer.compare_a.value == "terse" and viewer.compare_b.value == "careful"
    assert "paired cases" in viewer.comparison.value and "p = " in viewer.comparison.value
    viewer.compare_b.value = "terse"
    assert "two different variants" in viewer.comparison.value


def test_pages(results):
    v = ResultsViewer(results, page_size=2)
    assert v.n_pages == 3 and v.prev_button.disabled and not v.next_button.disabled
    assert {k[0] for k in v.cell_buttons} == {"c1", "c2"}
    v.next_button.click()
    v.next_button.click()
    assert v.page == 2 and v.next_button.disabled and {k[0] for k in v.cell_buttons} == {"c5"}
    v.show = "flaky"
    assert v.page == 0 and v.n_pages == 1


def test_a_run_folder_can_be_opened_directly(results):
    v = ResultsViewer(str(results.run_dir))
    assert len(v.cell_buttons) == 10 and v.variants == ["terse", "careful"]
    assert "It was fine" in v.grid.children[len(v.variants) + 1 + 2 * (len(v.variants) + 1)].value


def test_static_snapshot_has_the_grid_and_the_statistics(viewer):
    bundle = viewer.static_bundle()
    html = bundle["text/html"]
    assert FALLBACK_CLASS in html and "wb-grid" in html and "score [95% CI]" in html and "paired cases" in html
    assert "I would say negative overall" in html and "flaky" in html


# ---------------------------------------------------------------------------------------------- pure logic


def test_cell_statuses_and_filters(results):
    st = cell_statuses(results.records, "label", {("c3", "careful", "fake")})
    assert st[("c1", "terse", "fake")].kind == "pass" and st[("c1", "terse", "fake")].n == 3
    assert st[("c3", "careful", "fake")].kind == "flaky" and st[("c3", "careful", "fake")].failed
    assert st[("c5", "terse", "fake")].kind == "error"
    assert filter_cases(st, "filtered") == ["c4"]
    assert filter_counts(st)["all"] == 10


def test_output_diffs():
    html = output_diff_html("the cat sat on the mat", "the dog sat on the mat", "a", "b")
    assert ">cat</del>" in html and ">dog</ins>" in html and "similarity 83%" in html
    assert "<script>" not in output_diff_html("<script>", "x")
    assert unified_diff("a\nb\n", "a\nc\n").splitlines()[-2:] == ["-b", "+c"]


def test_several_targets_show_one_at_a_time(tmp_path):
    a, b = FakeBackend("positive"), FakeBackend("negative")
    exp = Experiment(name="two-targets", dataset=CASES[:2], variants=[Variant(name="v", user="{{ text }}")],
                     targets=["fa", "fb"], scorers=["exact"])
    res = run(exp, providers={"fa": a.provider("openai"), "fb": b.provider("openai")}, out=tmp_path, progress=False)
    v = ResultsViewer(res)
    assert not v.target_pick.disabled and v.target_pick.options == ("fa", "fb") and v.target == "fa"
    assert {k[2] for k in v.cell_buttons} == {"fa"}
    assert v.cell_buttons[("c1", "v", "fa")].button_style == "success"
    v.target_pick.value = "fb"
    assert v.target == "fb" and {k[2] for k in v.cell_buttons} == {"fb"}
    assert v.cell_buttons[("c1", "v", "fb")].button_style == "danger"
    assert v.selected[2] == "fb" and "negative" in v.detail.value


def test_the_viewer_and_the_results_show_how_fast_the_answers_came(tmp_path):
    from workbench.examples import load_example
    from workbench.harness import run
    from workbench.testing import FakeBackend
    from workbench.variants import Target
    from workbench.widgets import ResultsViewer

    fake = FakeBackend("positive")
    exp = load_example().replace(targets=[Target(profile="fake")], sample=4)
    streamed = run(exp, providers={"fake": fake.provider("openai")}, out=tmp_path / "s", cache=False, progress=False,
                   on_stream=lambda p, text: None)
    lat = streamed.latency()
    assert list(lat["variant"]) == [v.name for v in exp.variants] and (lat["n"] == 4).all()
    assert (lat["first_token_p50"] > 0).all() and (lat["latency_p95"] >= lat["latency_p50"]).all()
    viewer = ResultsViewer(streamed)
    assert "first token p50" in viewer.latency.value and "tok/s" in viewer.latency.value
    key = next(iter(viewer.statuses))
    viewer.select(*key)
    assert "first token after" in viewer.detail.value and "tok/s" in viewer.detail.value
    whole = run(exp, providers={"fake": fake.provider("openai")}, out=tmp_path / "w", cache=False, progress=False)
    assert whole.latency()["first_token_p50"].isna().all()  # not measured without streaming: shown as "-"
    assert "-" in ResultsViewer(whole).latency.value


def test_ambiguous_and_refused_answers_are_counted_and_shown_as_such(tmp_path):
    replies = {"hedge": "Positive or negative: positive", "refuse": "I'm sorry, but I can't help with that.",
               "plain": "positive"}
    fake = FakeBackend(lambda req: replies[req.user_text])
    exp = Experiment(name="honest", dataset=[{"id": k, "text": k, "expected": "positive"} for k in replies],
                     variants=[Variant(name="v", user="{{ text }}")], targets=["fake"],
                     scorers=[{"label": {"labels": ["positive", "negative"]}}])
    res = run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path / "run", cache=False, progress=False)
    summary = res.summary("label").iloc[0]
    assert (summary["n"], summary["mean"], summary["n_ambiguous"], summary["n_refused"]) == (3, 1 / 3, 1, 1)
    assert res.df.set_index("case_id")["verdict.label"].to_dict() == {
        "hedge": "ambiguous", "plain": "pass", "refuse": "refused"}
    v = ResultsViewer(res)
    assert v.statuses[("hedge", "v", "fake")].kind == "ambiguous"
    assert v.statuses[("refuse", "v", "fake")].kind == "refused"
    assert v.cell_buttons[("refuse", "v", "fake")].description.startswith("⊗")
    assert v.cell_buttons[("hedge", "v", "fake")].description.startswith("?")
    counts = dict(v.filter_toggle.options)
    assert counts["ambiguous (1)"] == "ambiguous" and counts["refused (1)"] == "refused"
    v.show = "refused"
    assert v.visible_cases == ["refuse"]
    v.select("refuse", "v")
    assert "refused" in v.detail.value
    assert "<mark>I&#x27;m sorry, but I can&#x27;t</mark>" in v.detail.value  # the evidence, marked in the output
    snapshot = v.static_html()
    assert "refused" in snapshot and "wb-refused" in snapshot
