"""The live playground, headless: streamed answers in cards and cells, clickable cells, the stale marker, few-shot
turns, chats with every variant, conversations saved as cases, and the prompt history. Fake backend throughout."""

from __future__ import annotations

import json
import threading

import pytest

from workbench.conversation import Conversation
from workbench.datasets import load_dataset
from workbench.errors import DataError
from workbench.examples import load_example
from workbench.experiment import Experiment
from workbench.harness import run
from workbench.testing import FakeBackend, Reply
from workbench.variants import Target, Turn, Variant
from workbench.widgets import Playground
from workbench.widgets.history import PromptHistory

STORY = " ".join(f"word{i}" for i in range(12))


def sentiment(req) -> str:
    return "positive" if "love" in req.user_text.lower() else "negative"


@pytest.fixture
def exp():
    return load_example().replace(targets=[Target(profile="fake")])


def _events(pg) -> list[tuple[tuple, str]]:
    """Record, in order, each grid cell's state changes (what a browser would see)."""
    log: list[tuple[tuple, str]] = []
    lock = threading.Lock()

    def watch(cell):
        def on(change):
            with lock:
                kind = "streaming" if "wb-cursor" in change["new"] else ("waiting" if "waiting" in change["new"]
                                                                         else "final")
                if not log or log[-1] != (cell.key, kind):
                    log.append((cell.key, kind))
        cell.body.observe(on, names="value")

    original = pg.grid.reset

    def reset(rows, variants):
        original(rows, variants)
        for cell in pg.grid.cells.values():
            watch(cell)

    pg.grid.reset = reset
    return log


# --------------------------------------------------------------------------------------------------- streaming


def test_every_card_and_cell_shows_its_answer_while_it_streams(exp, tmp_path):
    fake = FakeBackend(Reply(STORY), chunk_delay=0.05)
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path, cache=False)
    log = _events(pg)
    seen_in_cards: dict[str, str] = {}
    for e in pg.editors:
        e.output.observe(lambda c, n=e.name.value: seen_in_cards.setdefault(n, c["new"])
                         if "wb-cursor" in c["new"] else None, names="value")
    pg.run(wait=True)
    keys = list(pg.grid.cells)
    first_stream = {k: log.index((k, "streaming")) for k in keys}
    first_final = min(i for i, (_, kind) in enumerate(log) if kind == "final")
    assert all(i < first_final for i in first_stream.values()), log  # every cell streamed before any finished
    assert set(seen_in_cards) == {"bare", "instructed", "json-schema"}  # and every card
    assert all(fake_req.body["stream"] for fake_req in fake.chat_requests)
    for r in pg.records:
        assert r.streamed and r.first_token_s is not None and r.output == STORY
    card = pg.editor("bare").output.value
    assert "first " in card and "tok/s" in card and STORY in card  # the finished answer with its timing


def test_a_run_without_streaming_sends_whole_requests(exp, tmp_path):
    fake = FakeBackend(sentiment)
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path, stream=False)
    pg.run(wait=True)
    assert not any(r.body.get("stream") for r in fake.chat_requests) and not any(r.streamed for r in pg.records)


def test_clicking_a_cell_opens_its_details_inline_and_clicking_again_closes_them(exp, tmp_path):
    fake = FakeBackend(sentiment)
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path)
    pg.set_input(text="I love it")
    pg.run(wait=True)
    key = ("input", "instructed", "fake")
    cell = pg.grid.cells[key]
    cell.button.click()
    assert tuple(pg.grid.selected) == key and "wb-selected" in cell._dom_classes
    children = list(pg.grid.table.children)
    assert children.index(pg.grid.detail) == children.index(cell) + 2  # right below its row
    assert "messages as sent" in pg.grid.detail.value and "You are a sentiment classifier" in pg.grid.detail.value
    cell.button.click()
    assert pg.grid.selected == () and pg.grid.detail not in pg.grid.table.children


def test_an_edit_marks_the_outputs_stale_until_the_next_run(exp, tmp_path):
    pg = Playground(exp, providers={"fake": FakeBackend(sentiment).provider("openai")}, out=tmp_path)
    assert not pg.stale  # nothing shown yet, nothing stale
    pg.run(wait=True)
    pg.editor("bare").user.value += " (be brief)"
    assert pg.stale and "previous version" in pg.grid.banner.value and "wb-stale" in pg.grid._dom_classes
    pg.run(wait=True)
    assert not pg.stale and pg.grid.banner.value == ""
    pg.set_input(text="another input")
    assert pg.stale


def test_cells_a_cancelled_run_never_sent_say_not_run(exp, tmp_path):
    fake = FakeBackend(sentiment, latency=0.2)
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path, k=24, mode="dataset",
                    cache=False)
    pg.run()
    pg.cancel()
    pg.wait()
    html = {k: c.body.value for k, c in pg.grid.cells.items()}
    assert any("not run" in v for v in html.values()) and not any("waiting" in v for v in html.values())
    assert "not run" in pg.grid_html() and "…" not in pg.grid_html()


# ----------------------------------------------------------------------------------------------------- turns


def test_a_card_shows_and_edits_the_few_shot_turns(exp, tmp_path):
    few = exp.variants[1].replace(name="few-shot", turns=[Turn(role="user", content="Review: great"),
                                                        Turn(role="assistant", content="positive")])
    fake = FakeBackend(sentiment)
    pg = Playground(exp.replace(variants=[few]), providers={"fake": fake.provider("openai")}, out=tmp_path)
    e = pg.editors[0]
    assert e.turns.value() == [("user", "Review: great"), ("assistant", "positive")] and e.turns in e.children
    before = e.estimate.input_tokens
    e.turns.add_button.click()
    e.turns.rows[-1][1].value = "Review: awful"
    e.turns.add_turn(content="negative")
    assert e.turns.value()[-2:] == [("user", "Review: awful"), ("assistant", "negative")]
    assert e.estimate.input_tokens > before and "(4)" in e.turns_toggle.description
    assert [t.content for t in pg.variants()[0].turns][-1] == "negative"
    pg.run(wait=True)
    sent = fake.chat_requests[0].messages
    assert [m["content"] for m in sent[1:5]] == ["Review: great", "positive", "Review: awful", "negative"]
    e.turns.remove_turn(0)
    assert len(pg.variants()[0].turns) == 3


def test_a_reasoning_model_card_sends_and_saves_no_temperature(exp, tmp_path):
    fake = FakeBackend(sentiment)
    pg = Playground(exp.replace(targets=[Target(profile="fake", model="reasoner")]),
                    providers={"fake": fake.provider("azure", name="fake")}, out=tmp_path)
    e = pg.editors[0]
    assert e.temperature.disabled and e.fields().temperature is None
    assert "temperature" not in pg.variants()[0].params


# ------------------------------------------------------------------------------------------------------ chat


def test_a_chat_message_is_answered_by_every_variant_side_by_side(exp, tmp_path):
    fake = FakeBackend(lambda req: f"{req.system_text[:12]}|{req.user_text}")
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path)
    pg.set_input(text="I love it")
    pg.run(wait=True)
    n_run = len(fake.chat_requests)
    conv = pg.chat("And why?", wait=True)
    assert conv is not None and not pg.chatting
    replies = conv.exchanges[-1].replies
    assert set(replies) == {"bare", "instructed", "json-schema"} and all(r.state == "done" for r in replies.values())
    sent = {tuple(m["content"] for m in r.messages): r for r in fake.chat_requests[n_run:]}
    assert len(sent) == 3
    for req in fake.chat_requests[n_run:]:
        roles = [m["role"] for m in req.messages]
        assert roles[-3:] == ["user", "assistant", "user"] and req.messages[-1]["content"] == "And why?"
        assert req.body["stream"] is True  # chats stream too
    for e in pg.editors:  # each card shows its own side: the opening run, the question, its answer
        assert e.thread in e.children and "And why?" in e.thread.value and "wb-chat-reply wb-done" in e.thread.value
    assert "3 answered" in pg.status

    pg.regenerate(wait=True)
    assert len(fake.chat_requests) == n_run + 6 and len(conv.exchanges) == 1
    pg.chat("Thanks.", wait=True)
    for req in fake.chat_requests[-3:]:  # each variant hears its own earlier answer back
        assert [m["content"] for m in req.messages[-3:]] == ["And why?", f"{req.system_text[:12]}|And why?", "Thanks."]


def test_stop_keeps_what_came_so_far(exp, tmp_path):
    fake = FakeBackend(Reply(" ".join(f"w{i}" for i in range(200))), chunk_delay=0.02)
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path)
    pg.chat("Go on and on.")
    assert pg.chatting and not pg.chat_stop.disabled and pg.chat_send.disabled
    while not any(r.text for r in pg.conversation.exchanges[-1].replies.values()):
        threading.Event().wait(0.02)
    pg.chat_stop.click()
    pg.wait_chat()
    pg._chat_render.flush()
    for r in pg.conversation.exchanges[-1].replies.values():
        assert r.state == "stopped" and 0 < len(r.text.split()) < 200
    assert not pg.chatting


def test_empty_messages_are_not_sent(exp, tmp_path):
    fake = FakeBackend(sentiment)
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path)
    assert pg.chat("   ") is None and "empty message" in pg.status and fake.requests == []


def test_a_conversation_saved_as_a_case_replays_on_every_variant(exp, tmp_path):
    fake = FakeBackend(lambda req: f"answer to {req.user_text}")
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path)
    pg.chat("First question", wait=True)
    pg.chat("Second question", wait=True)
    path = pg.save_case(tmp_path / "convos.jsonl", variant="bare")
    pg.save_case(tmp_path / "convos.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["chat-1", "chat-2"]
    assert rows[0]["conversation"] == [{"role": "user", "content": "First question"},
                                       {"role": "assistant", "content": "answer to First question"},
                                       {"role": "user", "content": "Second question"}]
    batch = Experiment(name="replay", dataset=load_dataset(path), variants=exp.variants,
                       targets=[Target(profile="fake")])
    results = run(batch, providers=pg.providers, out=tmp_path / "replay", cache=False, progress=False)
    assert len(results) == 6 and results.n_errors == 0
    for r in results.records:
        assert r.messages[-1] == {"role": "user", "content": "Second question"}
        variant = next(v for v in exp.variants if v.name == r.variant)
        assert r.messages[0]["content"] == (variant.render({"text": ""})[0]["content"] if variant.system
                                            else "First question")  # each variant's own prefix


def test_conversation_rules_without_widgets():
    conv = Conversation({"a": [{"role": "system", "content": "A"}], "b": []}, opening={"a": ("hi", "hello")})
    conv.ask("x")
    assert conv.messages_for("a") == [{"role": "system", "content": "A"}, {"role": "user", "content": "hi"},
                                      {"role": "assistant", "content": "hello"}, {"role": "user", "content": "x"}]
    assert conv.messages_for("b") == [{"role": "user", "content": "x"}]
    with pytest.raises(DataError, match="still answering"):
        conv.ask("y")
    conv.reply("a").stream("par")
    conv.reply("a").fail("boom")
    conv.reply("b").stream("tial")
    assert not conv.settled
    conv.reply("b").state = "stopped"
    conv.ask("y")
    assert conv.history("b", upto_last_user=True)[-2:] == [{"role": "assistant", "content": "tial"},
                                                           {"role": "user", "content": "y"}]
    assert conv.to_case("b", "c1", expected="z") == {"id": "c1", "conversation": conv.history("b"), "expected": "z"}
    with pytest.raises(DataError, match="No variant"):
        conv.history("zzz")


def test_a_conversation_case_is_checked_where_it_is_written():
    v = Variant(name="v", system="S {{ tone }}", user="{{ text }}")
    ok = v.render({"tone": "calm", "conversation": json.dumps([{"role": "user", "content": "q"}])})
    assert ok == [{"role": "system", "content": "S calm"}, {"role": "user", "content": "q"}]
    with pytest.raises(DataError, match="ends with the user message"):
        v.render({"tone": "x", "conversation": [{"role": "user", "content": "q"},
                                                {"role": "assistant", "content": "a"}]})
    with pytest.raises(DataError, match=r"conversation\[0\]"):
        v.render({"tone": "x", "conversation": [{"role": "robot", "content": "q"}]})
    from workbench.datasets import Case
    from workbench.variants import check_variables

    cases = [Case("c", {"tone": "x", "conversation": [{"role": "user", "content": "q"}]})]
    assert check_variables([v], cases) == []  # no `text` needed: the conversation replaces the user template


# --------------------------------------------------------------------------------------------------- history


def test_every_run_keeps_its_variants_as_versions_that_can_be_restored(exp, tmp_path):
    fake = FakeBackend(sentiment)
    pg = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path)
    pg.run(wait=True)
    original = pg.editor("instructed").user.value
    pg.editor("instructed").user.value = "Review: {{ text }}\nOne word, positive or negative:"
    pg.run(wait=True)
    pg.run(wait=True)  # unchanged: no new version
    versions = pg.history.versions("instructed")
    assert [v.version for v in versions] == [1, 2] and len(pg.history.versions("bare")) == 1
    assert versions[0].run and versions[0].run != versions[1].run
    diff = pg.history.diff("instructed", 2)
    assert "-" + original.splitlines()[-1] in diff and "+One word, positive or negative:" in diff

    pg.history_button.value = True
    assert pg.history_panel in pg.children
    pg.history_variant.value = "instructed"
    pg.history_version.value = 1
    assert "the card now" in pg.history_diff.value and "One word" in pg.history_diff.value
    pg.restore_button.click()
    assert pg.editor("instructed").user.value == original and "restored instructed v1" in pg.status

    again = Playground(exp, providers={"fake": fake.provider("openai")}, out=tmp_path)
    assert [v.version for v in again.history.versions("instructed")] == [1, 2]  # kept on disk


def test_prompt_history_without_widgets(tmp_path):
    h = PromptHistory(tmp_path / "h.jsonl")
    a = Variant(name="a", user="one")
    assert [v.version for v in h.record([a], run="r1")] == [1]
    assert h.record([a], run="r2") == []
    h.record([a.replace(user="two", params={"temperature": 0.5})], run="r3")
    assert "-one" in h.diff("a", 1, 2) and "+two" in h.diff("a", 1, 2) and "temperature" in h.diff("a", 2)
    assert h.get("a", 2).to_variant().user == "two" and h.diff("a", 2, a.replace(user="two", params={
        "temperature": 0.5})) == ""
    assert PromptHistory(tmp_path / "h.jsonl").versions("a")[1].run == "r3"
