"""Fine-tuning data from reviewed cells: the JSONL against the format rules, the seeded split by case, the token
count and cost against tiktoken, the CLI's flags, and the format checks on hand-built bad examples."""

from __future__ import annotations

import json

import pytest
from review_fakes import cell as _cell
from review_fakes import run_once

from workbench.cli import main
from workbench.errors import DataError, SpecError
from workbench.finetune import default_epochs, export_finetune_data, finetune_data, validate_examples, validate_jsonl
from workbench.finetune.select import parse_where
from workbench.review import ReviewStore

ROLES = {"system", "user", "assistant", "tool"}


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory):
    """A run of 4 cases x 2 variants x 2 repeats; 6 cells approved, 1 corrected, 1 failed."""
    res = run_once(tmp_path_factory.mktemp("ft") / "run")
    store = ReviewStore(res.run_dir)
    for case in ("c1", "c2", "c3"):
        store.add_review(_cell(res, case, "terse"), verdict="pass", reviewer="ann")
        store.add_review(_cell(res, case, "careful"), verdict="pass", reviewer="ann")
    store.add_review(_cell(res, "c4", "careful"), verdict="fail", corrected_output="positive", reviewer="ann")
    store.add_review(_cell(res, "c4", "terse"), verdict="fail", reviewer="ann")
    return res


def _lines(path):
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def _check_format(example):
    """The fine-tuning chat format, checked here independently of the exporter's own validator."""
    assert set(example) <= {"messages", "tools", "parallel_tool_calls"}
    msgs = example["messages"]
    assert isinstance(msgs, list) and msgs
    for m in msgs:
        assert m["role"] in ROLES
        assert set(m) <= {"role", "content", "name", "weight", "tool_calls", "tool_call_id"}
        if not (m["role"] == "assistant" and m.get("tool_calls")):
            assert isinstance(m["content"], str) and m["content"].strip()
    assert msgs[-1]["role"] == "assistant"
    assert any(m["role"] == "user" for m in msgs)


def test_export_writes_valid_chat_jsonl_split_by_case(reviewed, tmp_path):
    data = export_finetune_data(reviewed, tmp_path / "ft", validation=0.25, seed=1)
    train, valid = _lines(tmp_path / "ft" / "train.jsonl"), _lines(tmp_path / "ft" / "validation.jsonl")
    assert data.selected == 7  # 6 passes + the corrected cell; the plain fail is not approved
    assert len(train) + len(valid) == 7 and len(valid) >= 1
    for ex in train + valid:
        _check_format(ex)
    assert validate_jsonl(tmp_path / "ft" / "train.jsonl", "gpt-4o-mini") == []
    assert validate_jsonl(tmp_path / "ft" / "validation.jsonl", "gpt-4o-mini") == []
    # the corrected cell trains on the correction, not on the ambiguous output
    answers = {json.dumps(ex["messages"][:-1]): ex["messages"][-1]["content"] for ex in train + valid}
    assert "positive" in answers.values() and "positive or negative" not in answers.values()
    # the system message of the "careful" variant is kept
    assert any(ex["messages"][0]["role"] == "system" for ex in train + valid)
    # split by case: no case on both sides; the same seed gives the same split
    summary = json.loads((tmp_path / "ft" / "finetune.json").read_text())
    train_cases = {s["case_id"] for s in summary["lines"]["train.jsonl"]}
    valid_cases = {s["case_id"] for s in summary["lines"]["validation.jsonl"]}
    assert train_cases and valid_cases and not train_cases & valid_cases
    again = finetune_data(reviewed, validation=0.25, seed=1)
    assert [e.source() for e in again.validation] == summary["lines"]["validation.jsonl"]
    assert summary["selected_cells"] == 7 and summary["where"] == ["human=approved"]
    assert "fewer than 10 training examples" in data.summary()


def test_token_count_and_cost_match_tiktoken(reviewed):
    import tiktoken

    from workbench.tokens import get_encoding

    data = finetune_data(reviewed, validation=0, epochs=4)
    enc = get_encoding("o200k_base")  # gpt-4o-mini's encoding, loaded from the shipped file
    assert isinstance(enc, tiktoken.Encoding)

    def cookbook(messages, enc):  # OpenAI cookbook: 3 per message + every value's tokens + 3 for the reply
        return sum(3 + sum(len(enc.encode(v)) for v in m.values() if isinstance(v, str)) for m in messages) + 3

    expected_tokens = sum(cookbook(e.data["messages"], enc) for e in data.train)
    est = data.estimate
    assert est.model == "gpt-4o-mini" and est.file_tokens == expected_tokens and est.epochs == 4
    assert est.training_tokens == expected_tokens * 4
    assert est.usd == pytest.approx(expected_tokens * 4 * 3.00 / 1_000_000)  # $3.00 per 1M training tokens
    assert est.as_of == "2026-08"
    by_model = {e.model: e for e in data.estimates}
    gpt35 = by_model["gpt-35-turbo"]  # another encoding: cl100k_base
    assert gpt35.file_tokens == sum(cookbook(e.data["messages"], get_encoding("cl100k_base")) for e in data.train)
    assert gpt35.usd == pytest.approx(gpt35.file_tokens * 4 * 8.00 / 1_000_000)
    assert by_model["gpt-4"].usd is None  # no public training price: unknown, not $0
    assert "unknown" in by_model["gpt-4"].describe()


def test_default_epochs_follow_the_cookbook_rule():
    assert default_epochs(5) == 20  # 100 // 5
    assert default_epochs(2) == 25  # capped at 25
    assert default_epochs(40) == 3
    assert default_epochs(10_000) == 2  # 25,000 // 10,000


def test_selection_terms_answers_and_system(reviewed):
    corrected = finetune_data(reviewed, where="human=corrected", answer="corrected", validation=0)
    assert len(corrected.train) == 1 and corrected.train[0].data["messages"][-1]["content"] == "positive"
    expected = finetune_data(reviewed, where=["expected", "variant=terse", "repeat=0"], answer="expected",
                             validation=0, system="You label sentiment.")
    assert len(expected.train) == 4
    assert all(e.data["messages"][0] == {"role": "system", "content": "You label sentiment."} for e in expected.train)
    assert sorted(e.data["messages"][-1]["content"] for e in expected.train) == \
        ["negative", "positive", "positive", "positive"]
    passed = finetune_data(reviewed, where="exact=pass", answer="output", validation=0, system="drop")
    assert passed.train and all(e.data["messages"][0]["role"] == "user" for e in passed.train)
    # identical examples (the same request and answer on two repeats) are written once
    assert passed.duplicates > 0


def test_bad_selections_and_options_are_refused_naming_what_is_wrong(reviewed, tmp_path):
    with pytest.raises(DataError, match="not a scorer of this run"):
        parse_where(["judge=pass"], ["label", "exact"])
    with pytest.raises(DataError, match="human= takes one of"):
        parse_where("human=great")
    with pytest.raises(DataError, match="a scorer's verdict"):
        parse_where("exact=good", ["exact"])
    with pytest.raises(SpecError, match="validation"):
        finetune_data(reviewed, validation=1.5)
    with pytest.raises(SpecError, match="answer"):
        finetune_data(reviewed, answer="best")
    with pytest.raises(DataError, match="not a fine-tunable base model"):
        finetune_data(reviewed, base_model="o3")
    with pytest.raises(DataError, match="no training examples"):
        export_finetune_data(reviewed, tmp_path / "none", where=["human=fail", "variant=terse"], answer="corrected")
    assert not (tmp_path / "none").exists()


def test_examples_over_the_token_limit_are_left_out_and_said(reviewed, tmp_path, monkeypatch):
    override = tmp_path / "prices.toml"
    override.write_text('as_of = "2026-12"\n[fine_tuning]\nas_of = "2026-12"\nsource = "test"\n'
                        '[fine_tuning.models]\n"gpt-4o-mini" = { example_tokens = 20 }\n')
    monkeypatch.setenv("WORKBENCH_PRICES", str(override))
    data = finetune_data(reviewed, validation=0)
    long_ones = [why for _, why in data.left_out if why.startswith("too_many_tokens")]
    assert long_ones and len(data.train) + len(long_ones) == 7
    assert data.estimate.price_per_1m == 3.00  # the shipped price stays; only the limit was overridden
    with pytest.raises(DataError, match="--strict"):
        export_finetune_data(reviewed, tmp_path / "strict", strict=True)


def test_validator_codes_on_hand_built_examples():
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    good_tools = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [call]},
                               {"role": "tool", "tool_call_id": "c1", "content": "42"},
                               {"role": "assistant", "content": "It is 42."}]}
    bad = [
        "not an object",
        {"messages": []},
        {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user", "content": "  "}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user", "content": "x"}]},
        {"messages": [{"role": "user", "content": "x", "colour": 1}, {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y", "weight": 2}]},
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "z"}]}]},
        {"messages": [{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "q", "content": "1"},
                      {"role": "assistant", "content": "y"}]},
        {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], "extra": 1},
    ]
    codes = [sorted({p.code for p in validate_examples([ex]) if p.severity == "error"}) for ex in bad]
    assert codes == [["data_type"], ["missing_messages_list"], ["unrecognized_role"], ["missing_content"],
                     ["example_missing_assistant_message"], ["message_unrecognized_key"], ["invalid_weight"],
                     ["invalid_tool_call"], ["tool_message_without_call"], ["unrecognized_key"]]
    assert validate_examples([good_tools]) == []
    over = validate_examples([good_tools], token_counts=[100], limit=50)
    assert [p.code for p in over] == ["too_many_tokens"]


def test_tool_calls_are_kept_in_the_example(tmp_path):
    from workbench.experiment import Experiment
    from workbench.harness import run
    from workbench.testing import FakeBackend, Reply
    from workbench.variants import Variant

    call = {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": '{"q": "rain"}'}}
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {
        "type": "object", "properties": {"q": {"type": "string"}}}}}]
    fake = FakeBackend(lambda req: Reply(text="", tool_calls=[call]))
    exp = Experiment(name="tools", dataset=[{"id": "t1", "q": "rain?"}],
                     variants=[Variant(name="v", user="{{ q }}", params={"tools": tools})], targets=["fake"])
    res = run(exp, providers={"fake": fake.provider("azure")}, out=tmp_path / "run", cache=False, progress=False)
    ReviewStore(res.run_dir).add_review(res.records[0], verdict="pass", reviewer="ann")
    data = finetune_data(res.run_dir, validation=0)
    ex = data.train[0].data
    assert ex["messages"][-1] == {"role": "assistant", "content": None, "tool_calls": [call]}
    assert ex["tools"] == tools
    assert validate_examples([ex]) == []
    assert data.estimate.file_tokens > 0


def test_cli_exports_and_refuses_bad_flags_with_one_error_line(reviewed, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["finetune-data", str(reviewed.run_dir), "--out", str(out), "--where", "human=approved"]) == 0
    printed = capsys.readouterr().out
    assert "training and" in printed and "gpt-4o-mini" in printed and (out / "train.jsonl").is_file()
    assert main(["finetune-data", str(reviewed.run_dir), "--out", str(out), "--json", "--validation", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["validation_examples"] == 0
    assert not (out / "validation.jsonl").exists()  # no stale validation file from the first export
    for flags, named in ((["--validation", "2"], "--validation"), (["--epochs", "0"], "--epochs"),
                         (["--answer", "best"], "--answer"), (["--where", "nope=1"], "nope"),
                         (["--model", "o3"], "o3")):
        code = main(["finetune-data", str(reviewed.run_dir), "--out", str(tmp_path / "bad"), *flags])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and err[0].startswith("error:") and named in err[0], (flags, err)
    assert not (tmp_path / "bad").exists()
    assert main(["finetune-data", str(tmp_path / "missing"), "--out", str(tmp_path / "bad")]) == 1
    assert "not a run folder" in capsys.readouterr().err
