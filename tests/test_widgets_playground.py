"""The playground, driven headless: set values, click buttons, assert on state, children and outputs.

Runs go to the fake backend (``Target(profile="fake")``), so they take milliseconds and are fully scripted.
"""

from __future__ import annotations

import re
import shutil

import pytest
from traitlets import TraitError

from workbench.examples import load_example
from workbench.experiment import load_experiment
from workbench.harness import run
from workbench.testing import CompletionFiltered, FakeBackend
from workbench.variants import Target, Turn, Variant
from workbench.widgets import Playground
from workbench.widgets.editing import (
    VariantFields,
    dataset_copy,
    estimate_variant,
    experiment_for_save,
    response_format_fields,
    response_format_value,
    unique_name,
)
from workbench.widgets.fallback import FALLBACK_CLASS


def sentiment(req) -> str:
    text = req.user_text.lower()
    return "positive" if any(w in text for w in ("love", "fantastic", "great", "superb")) else "negative"


@pytest.fixture
def fake():
    return FakeBackend(sentiment)


@pytest.fixture
def exp():
    return load_example().replace(targets=[Target(profile="fake")])


@pytest.fixture
def pg(exp, fake, tmp_path):
    return Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path / "runs")


def tokens(editor) -> int:
    m = re.search(r"([\d,]+) tokens in", editor.info.value)
    assert m, editor.info.value
    return int(m.group(1).replace(",", ""))


# ------------------------------------------------------------------------------------------------ editing


def test_one_card_per_variant_with_its_fields_and_estimate(pg, exp):
    assert [e.name.value for e in pg.editors] == [v.name for v in exp.variants]
    assert list(pg.cards.children) == pg.editors
    instructed = pg.editor("instructed")
    assert instructed.system.value.startswith("You are a sentiment classifier")
    assert instructed.max_tokens.value == 5 and instructed.temperature.value == 0
    assert pg.editor("json-schema").response_format.value == "json_schema"
    assert pg.editor("json-schema").schema in pg.editor("json-schema").children  # the schema box is shown
    assert pg.editor("bare").schema not in pg.editor("bare").children
    for e in pg.editors:
        assert tokens(e) > 0 and "$" in e.info.value and "gpt-4o-mini" in e.info.value
        assert e.warnings.value == ""
    assert set(pg.estimates) == {"bare", "instructed", "json-schema"}


def test_typing_updates_the_token_count(pg):
    e = pg.editor("instructed")
    before = tokens(e)
    e.user.value += " Think about each word of the review before you answer, then answer."
    assert tokens(e) > before
    e.system.value = ""
    assert tokens(e) < before


def test_the_count_follows_the_input_and_the_target(pg):
    e = pg.editor("bare")
    before = tokens(e)
    pg.set_input(text="word " * 200)
    assert tokens(e) > before + 150
    e.target.value = "local"
    assert "smollm2" in e.info.value


def test_missing_variable_warns_and_syntax_errors_say_where(pg):
    e = pg.editor("bare")
    e.user.value = "Review: {{ review }}"
    assert "{{ review }} is not in the data" in e.warnings.value and "text" in e.warnings.value
    assert [w.description for w in pg.inputs.children] == ["review", "text"]  # a field for every variable
    e.user.value = "Review: {{ text"
    assert "template syntax error" in e.warnings.value and "user" in e.warnings.value
    e.user.value = "{{ text }}"
    assert e.warnings.value == "" and tokens(e) > 0


def test_add_duplicate_rename_and_remove_variants(pg):
    pg.add_button.click()
    assert len(pg.editors) == 4 and pg.editors[-1].name.value == "variant"
    assert pg.editors[-1].user.value == pg.editors[-2].user.value  # starts from the last prompt

    inst = pg.editor("instructed")
    inst.duplicate_button.click()
    copy = pg.editors[2]
    assert copy.name.value == "instructed-2"
    assert copy.system.value == inst.system.value and copy.max_tokens.value == 5
    assert list(pg.cards.children) == pg.editors

    copy.name.value = "instructed"  # a clash is flagged on both cards, until one is renamed
    assert "used by another variant" in copy.warnings.value and "used by another variant" in inst.warnings.value
    assert pg.run() is None and "unique" in pg.status
    pg.rename_variant("variant", "terse")
    copy.name.value = "polite"
    assert "used by another" not in copy.warnings.value and "used by another" not in inst.warnings.value
    assert [v.name for v in pg.variants()] == ["bare", "instructed", "polite", "json-schema", "terse"]

    pg.editor("terse").remove_button.click()
    assert [e.name.value for e in pg.editors] == ["bare", "instructed", "polite", "json-schema"]


def test_the_last_variant_cannot_be_removed(fake, tmp_path):
    pg = Playground(variants=[Variant(name="only", user="{{ input }}")], target="fake",
                    providers={"fake": fake.provider("openai")}, out=tmp_path)
    pg.editors[0].remove_button.click()
    assert len(pg.editors) == 1 and "at least one variant" in pg.status
    assert pg.mode == "input" and pg.mode_toggle.disabled  # no dataset: one ad-hoc input only


def test_a_playground_without_an_experiment_runs_its_ad_hoc_input(fake, tmp_path):
    pg = Playground(variants=[Variant(name="a", system="Be brief.", user="Say {{ word }} about {{ topic }}")],
                    target="fake", providers={"fake": fake.provider("openai")}, out=tmp_path)
    assert [w.description for w in pg.inputs.children] == ["topic", "word"]
    pg.set_input(word="something great", topic="films")
    assert pg.editors[0].warnings.value == ""  # no dataset: every variable has its input field
    pg.run(wait=True)
    assert [r.output for r in pg.records] == ["positive"]
    assert fake.chat_requests[0].user_text == "Say something great about films"
    assert "wb-score" not in pg.grid_html() and pg.summary.value == ""
    with pytest.raises(TraitError, match="needs a dataset"):
        pg.mode = "dataset"


def test_mode_and_k_are_checked(pg):
    with pytest.raises(TraitError, match="use 'input'"):
        pg.mode = "batch"
    pg.k = 1000
    assert pg.k == 24 and pg.k_slider.value == 24


def test_invalid_schema_is_shown_and_blocks_the_run(pg, fake):
    e = pg.editor("json-schema")
    e.schema.value = '{"type": "object",'
    assert "JSON schema: not valid JSON" in e.warnings.value
    assert pg.run() is None
    assert "json-schema" in pg.status and "JSON schema" in pg.status
    assert fake.requests == []


# ------------------------------------------------------------------------------------------------ running


def test_run_on_one_input_shows_outputs_scores_latency_tokens_and_cost(pg, fake):
    pg.set_input(text="I love this phone, it is fantastic")
    pg.expected.value = "positive"
    pg.run_button.click()
    results = pg.wait()
    assert results is not None and len(results) == 3 and not pg.running
    assert pg.status.startswith("done: 3/3 calls")
    assert len(fake.chat_requests) == 3
    grid = pg.grid_html()
    assert grid.count("wb-cell ") == 3
    assert "positive" in grid and "✓ label" in grid
    assert "→" in grid and "tok" in grid and "$" in grid and re.search(r"\d\.\d\d s", grid)  # tokens, cost, latency
    assert "I love this phone" in grid and "expected: <b>positive</b>" in grid
    assert "score [95% CI]" in pg.summary.value  # the summary with confidence intervals
    assert not pg.run_button.disabled and pg.cancel_button.disabled


def test_run_on_the_first_k_cases(pg):
    pg.mode_toggle.value = "dataset"
    pg.k_slider.value = 4
    assert pg.mode == "dataset" and pg.k == 4
    assert "for 4 calls" in pg.editor("bare").info.value
    assert pg.expected not in pg.children  # the ad-hoc input is hidden in dataset mode
    pg.run(wait=True)
    assert len(pg.records) == 12
    for cid in ("s01", "s02", "s03", "s04"):
        assert f">{cid}<" in pg.grid_html()
    assert "s05" not in pg.grid_html()
    assert pg.results.summary()["n"].tolist() == [4, 4, 4]


def test_content_filter_flags_are_shown(exp, tmp_path):
    fake = FakeBackend(sentiment)
    fake.fail(CompletionFiltered({"violence": "high"}), times=3)
    pg = Playground(exp, providers={"fake": fake.provider("azure")}, out=tmp_path)
    pg.run(wait=True)
    assert pg.grid_html().count("wb-filtered") == 3
    assert "completion filtered" in pg.grid_html() and "flagged: completion:violence:high" in pg.grid_html()
    assert "3 filtered" in pg.status


def test_run_is_in_the_background_and_can_be_cancelled(exp, tmp_path):
    fake = FakeBackend(sentiment, latency=0.2)
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path, k=24, mode="dataset",
                    cache=False)
    pg.run_button.click()  # returns at once: the run is in its own thread
    assert pg.running and pg.run_button.disabled and not pg.cancel_button.disabled
    assert pg.run() is pg.handle  # a second click does not start a second run
    pg.cancel_button.click()
    pg.wait()
    assert not pg.running
    assert pg.status.startswith("cancelled")
    assert len(pg.records) < 72
    assert pg.results.status.startswith("stopped: cancelled")


def test_a_target_that_cannot_work_fails_before_anything_is_sent(exp, tmp_path):
    pg = Playground(exp.replace(targets=[Target(profile="nosuchprofile")]), out=tmp_path)
    assert "nosuchprofile" in pg.editors[0].info.value  # the estimate says so before any run
    assert pg.run() is None and pg.handle is None and not pg.running
    assert pg.results is None and pg.error is not None and "nosuchprofile" in pg.status

    keyless = Playground(exp.replace(targets=[Target(profile="openai", model="gpt-4o-mini")]), out=tmp_path)
    assert keyless.run() is None and keyless.handle is None  # at once: no call, no retries, no run folder
    assert "OPENAI_API_KEY" in keyless.status and not (tmp_path / exp.name).exists()


def test_on_finished_callbacks_get_the_results(pg):
    seen = []
    pg.on_finished(seen.append)
    pg.run(wait=True)
    assert seen == [pg.results]


# ---------------------------------------------------------------------------------------------- save/load


def test_save_then_load_gives_back_the_same_variants(pg, tmp_path):
    e = pg.editor("instructed")
    e.user.value = "Review: {{ text }}\nAnswer positive or negative:"
    e.temperature.value = 0.3
    e.max_tokens.value = 8
    pg.editor("bare").duplicate_button.click()
    pg.path.value = str(tmp_path / "specs" / "tuned.yaml")
    pg.save_button.click()
    assert "saved 4 variants" in pg.status

    loaded = load_experiment(tmp_path / "specs" / "tuned.yaml")
    assert [v.model_dump() for v in loaded.variants] == [v.model_dump() for v in pg.variants()]
    assert loaded.variants[2].params == {"temperature": 0.3, "max_tokens": 8}
    assert len(loaded.load_cases()) == 24  # the dataset path was rewritten for the new folder
    assert loaded.scorers == pg.template.scorers and [t.label for t in loaded.targets] == ["fake"]

    other = Playground(tmp_path / "specs" / "tuned.yaml", out=tmp_path)
    assert [e.name.value for e in other.editors] == ["bare", "bare-2", "instructed", "json-schema"]
    assert other.editor("instructed").user.value.endswith("Answer positive or negative:")

    pg.editor("bare-2").remove_button.click()
    pg.load_button.click()  # loads what the path field names
    assert len(pg.editors) == 4 and "loaded 4 variants" in pg.status


def test_the_batch_run_of_a_saved_spec_sends_what_the_playground_sent(pg, fake, tmp_path):
    pg.editor("instructed").user.value = "Review: {{ text }}\nOne word:"
    pg.mode = "dataset"
    pg.k = 2
    pg.run(wait=True)
    interactive = [(r.variant, r.case_id, r.messages, r.params) for r in pg.records]
    path = pg.save(tmp_path / "spec.yaml")
    batch = run(load_experiment(path), providers=pg.providers, out=tmp_path / "batch", cache=False, progress=False)
    sent = {(r.variant, r.case_id): (r.messages, r.params) for r in batch.records}
    assert len(batch) == 72
    for variant, case_id, messages, params in interactive:
        assert sent[(variant, case_id)] == (messages, params)


def test_loading_a_missing_file_says_so(pg, tmp_path):
    pg.path.value = str(tmp_path / "nope.yaml")
    pg.load_button.click()
    assert pg.status.startswith("not loaded") and "does not exist" in pg.status
    assert len(pg.editors) == 3


# ------------------------------------------------------------------------------------------------ snapshot


def test_static_snapshot_has_the_variants_and_the_outputs(pg):
    html = pg.static_html()
    assert "instructed" in html and "Review: {{ text }}" in html and "tokens in" in html
    pg.run(wait=True)
    bundle = pg.static_bundle()
    assert FALLBACK_CLASS in bundle["text/html"] and "wb-grid" in bundle["text/html"]
    assert "Playground" in bundle["text/plain"]
    assert pg.children[0].value.startswith("<style>")  # the live view hides the snapshot


# ---------------------------------------------------------------------------------------------- pure logic


def test_unique_names():
    assert unique_name("a", []) == "a"
    assert unique_name("a", ["a"]) == "a-2"
    assert unique_name("a-2", ["a", "a-2"]) == "a-3"
    assert unique_name(" ", []) == "variant"


def test_response_format_fields_round_trip():
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    rf = response_format_value("json_schema", '{"type": "object", "properties": {"label": {"type": "string"}}}')
    assert rf["json_schema"]["schema"] == schema
    kind, text = response_format_fields(rf)
    assert kind == "json_schema" and response_format_value(kind, text) == rf
    assert response_format_fields(None) == ("text", "") and response_format_value("text", "") is None
    assert response_format_value("json_object", "") == {"type": "json_object"}


def test_fields_keep_what_the_editor_does_not_show():
    v = Variant(name="fs", system="Classify.", turns=[Turn(role="user", content="good"), Turn(role="assistant",
                content="positive")], user="{{ text }}", params={"top_p": 0.5, "temperature": 0},
                description="few-shot", target="openai:gpt-4o")
    f = VariantFields.from_variant(v, default_target="local")
    assert f.target == "openai:gpt-4o" and f.temperature == 0 and f.max_tokens is None
    assert f.to_variant("local") == v
    f.temperature, f.max_tokens = None, 30
    out = f.to_variant("local")
    assert out.params == {"top_p": 0.5, "max_tokens": 30} and out.turns == v.turns and out.description == "few-shot"


def test_estimates_on_many_cases_count_a_few_and_scale(fake):
    v = Variant(name="v", user="{{ text }}", params={"max_tokens": 10})
    rows = [{"text": "same length text"}] * 100
    provider = fake.provider("openai")
    few = estimate_variant(v, Target(profile="fake"), rows[:5], provider, columns=["text"])
    many = estimate_variant(v, Target(profile="fake"), rows, provider, columns=["text"], max_cases=5)
    assert many.calls == 100 and many.input_tokens == few.input_tokens
    assert many.usd_max == pytest.approx(few.usd_max * 20)
    assert "first 5 of 100 cases" in many.warnings()[0]


def test_saved_dataset_paths_resolve_from_the_new_folder(tmp_path):
    (tmp_path / "data").mkdir()
    shutil.copy(load_example().base_dir / "sentiment.csv", tmp_path / "data" / "cases.csv")
    exp = load_example().replace(dataset={"path": "data/cases.csv"}, base_dir=tmp_path)
    saved = experiment_for_save(exp, exp.variants, tmp_path / "deep" / "x.yaml")
    assert saved.dataset.path == "../data/cases.csv" and dataset_copy(exp, tmp_path / "deep" / "x.yaml") is None
    assert (tmp_path / "deep" / saved.dataset.path).resolve() == (tmp_path / "data" / "cases.csv").resolve()


def test_saving_the_shipped_demo_copies_its_dataset_next_to_the_spec(pg, tmp_path):
    path = pg.save(tmp_path / "specs" / "tuned.yaml")
    text = path.read_text()
    assert "site-packages" not in text and "workbench/examples" not in text and "path: sentiment.csv" in text
    assert (tmp_path / "specs" / "sentiment.csv").is_file() and "dataset copied next to it" in pg.status
    assert len(load_experiment(path).load_cases()) == 24
    (tmp_path / "specs" / "sentiment.csv").write_text("id,text\nmine,my own file\n")  # never overwritten
    pg.save(tmp_path / "specs" / "again.yaml")
    assert (tmp_path / "specs" / "again-sentiment.csv").is_file()
    assert "mine" in (tmp_path / "specs" / "sentiment.csv").read_text()


def test_save_writes_next_to_the_notebook_and_keeps_every_field_shown(pg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a kernel runs in its notebook's folder
    fresh = pg.add_variant(Variant(name="fresh", user="{{ text }}"))  # no temperature of its own
    assert fresh.temperature.value == 1.0  # the card shows the profile's default...
    pg.repeats.value = 3
    path = pg.save()
    assert path == tmp_path / "sentiment-demo.yaml" and pg.path.value == str(path)
    saved = load_experiment(path)
    assert saved.variants[-1].params["temperature"] == 1.0 and saved.repeats == 3  # ...and the spec keeps it


# ----------------------------------------------------------------------------------------------- local model


@pytest.mark.local_model
def test_the_playground_runs_the_embedded_model(tmp_path):
    pg = Playground(load_example(), out=tmp_path)
    assert "smollm2" in pg.editor("bare").info.value
    pg.set_input(text="I loved every minute of it.")
    pg.run(wait=True)
    assert pg.results is not None and len(pg.results) == 3 and pg.results.n_errors == 0
    assert all(r.output for r in pg.records) and all(r.scores for r in pg.records)
    assert pg.grid_html().count("wb-score") == 3
