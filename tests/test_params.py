import warnings

import pytest

from workbench.catalog import resolve
from workbench.params import ParameterWarning, adapt_request

MSGS = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


def test_reasoning_model_drops_sampling_and_renames_max_tokens():
    with pytest.warns(ParameterWarning) as rec:
        out = adapt_request(resolve("o4-mini"), MSGS, {"temperature": 0.2, "top_p": 0.9, "max_tokens": 50,
                                                        "reasoning_effort": "low", "seed": 1})
    assert out.params == {"max_completion_tokens": 50, "reasoning_effort": "low", "seed": 1}
    assert out.messages[0]["role"] == "developer"
    assert len(rec) == len(out.warnings) == 4  # temperature, top_p, max_tokens, system->developer


def test_o1_mini_merges_system_into_first_user_turn():
    out = adapt_request(resolve("o1-mini"), MSGS, {"reasoning_effort": "high"}, warn=False)
    assert [m["role"] for m in out.messages] == ["user"]
    assert out.messages[0]["content"] == "Be brief.\n\nHi"
    assert "reasoning_effort" not in out.params
    assert any("merged" in w for w in out.warnings)


def test_non_reasoning_model_keeps_parameters_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = adapt_request(resolve("gpt-4o"), MSGS, {"temperature": 0.0, "max_tokens": 5})
    assert out.params == {"temperature": 0.0, "max_tokens": 5}
    assert out.messages == MSGS and out.warnings == []


def test_reasoning_effort_on_chat_model_is_dropped_with_a_note():
    out = adapt_request(resolve("gpt-4.1"), MSGS, {"reasoning_effort": "low"}, warn=False)
    assert "reasoning_effort" not in out.params and out.warnings


def test_developer_message_to_old_model_becomes_system():
    out = adapt_request(resolve("gpt-4"), [{"role": "developer", "content": "x"}], {}, warn=False)
    assert out.messages[0]["role"] == "system" and out.warnings


def test_input_is_not_mutated():
    msgs = [dict(m) for m in MSGS]
    adapt_request(resolve("o3"), msgs, {"temperature": 1}, warn=False)
    assert msgs == MSGS


def test_the_known_parameters_are_the_sdks():
    """params.CHAT_PARAMETERS is the SDK's Completions.create keywords minus what the workbench builds itself and
    the client-side options: a new SDK parameter fails this test until the table has it."""
    from workbench.params import CHAT_PARAMETERS
    from workbench.providers.provider import _sdk_create_params

    built_or_client_side = {"model", "messages", "extra_headers", "extra_query", "extra_body", "timeout"}
    assert CHAT_PARAMETERS == _sdk_create_params() - built_or_client_side


def test_extra_body_is_the_escape_hatch_and_is_sent_as_it_is():
    from workbench import Experiment
    from workbench.harness import run
    from workbench.testing import FakeBackend

    fake = FakeBackend()
    exp = Experiment(name="hatch", dataset={"rows": [{"id": "a", "input": "hi"}]}, targets=["fake-openai"],
                     variants=[{"name": "v", "params": {"temperature": 0, "extra_body": {"data_sources": [{"x": 1}],
                                                                                         "brand_new": True}}}])
    run(exp, providers={"fake-openai": fake.provider("openai")}, progress=False)
    body = fake.chat_requests[0].body
    assert body["data_sources"] == [{"x": 1}] and body["brand_new"] is True and body["temperature"] == 0
