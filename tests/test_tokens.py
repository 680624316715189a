"""Text and chat token counts: compared with tiktoken's own encodings, the cookbook formula and API-confirmed counts."""

from __future__ import annotations

import gzip
import random
import socket
from pathlib import Path

import pytest
import tiktoken

from workbench import tokens
from workbench.catalog import load_catalog
from workbench.errors import DataError, UnknownModelError
from workbench.tokens import (
    ENCODINGS,
    VocabularyError,
    count_messages,
    count_text,
    count_tools,
    encode,
    get_encoding,
    load_bpe_file,
    token_pieces,
)

VOCAB = Path(tokens.__file__).parent / "data" / "tiktoken"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """tiktoken's own encodings, built by tiktoken_ext's constructors with tiktoken.load from the shipped files.

    Independent of workbench.tokens: the split patterns and special tokens come from the installed tiktoken_ext,
    the ranks from tiktoken.load.load_tiktoken_bpe (which checks the published sha256 itself).
    """
    from tiktoken import load
    from tiktoken_ext import openai_public

    folder = tmp_path_factory.mktemp("reference-vocab")
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # no cache: read the local file directly
        for name, spec in ENCODINGS.items():
            path = folder / f"{name}.tiktoken"
            path.write_bytes(gzip.decompress((VOCAB / spec.file).read_bytes()))

            def local(url, expected_hash=None, _path=str(path), _name=name):
                assert url.endswith(f"{_name}.tiktoken")
                return load.load_tiktoken_bpe(_path, expected_hash=expected_hash)

            mp.setattr(openai_public, "load_tiktoken_bpe", local)
            out[name] = tiktoken.Encoding(**getattr(openai_public, name)())
    return out


def _corpus() -> dict[str, str]:
    rng = random.Random(1234)
    scripts = {
        "english": "The quick brown fox jumps over the lazy dog. It's 9:45 - isn't it? I'll see; we've won!",
        "german": "Größere Übungen für Straßenbahnfahrer: Ärger, Öl und Müßiggang.",
        "french": "L'élève a reçu où la forêt s'étend, déjà çà et là… «Ça va?»",
        "russian": "Съешь же ещё этих мягких французских булок, да выпей чаю.",
        "greek": "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
        "arabic": "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر",
        "hebrew": "דג סקרן שט בים מאוכזב ולפתע מצא חברה",
        "hindi": "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले",
        "chinese": "我能吞下玻璃而不伤身体。汉字是世界上最古老的文字之一。",
        "japanese": "いろはにほへと ちりぬるを カタカナ 漢字交じり文。",
        "korean": "다람쥐 헌 쳇바퀴에 타고파. 한국어 문장입니다.",
        "thai": "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า",
        "emoji": "Hi 👋🏽 family: 👨‍👩‍👧‍👦, flags 🇫🇷🇯🇵, hearts ❤️‍🔥 and 🧑🏿‍💻 end.",
        "code": 'def f(x: int) -> dict[str, int]:\n    """Doc."""\n    return {"a": x ** 2, \'b\': [1, 2, 3]}\n\n'
                "for (let i = 0; i < n; i++) { console.log(`${i}`); }\n<div class=\"x\">&amp;</div>\n",
        "json": '{"id": 12345678901, "ok": true, "items": [{"k": "v\\n"}], "pi": 3.14159}',
        "whitespace": "a  b   c    d\t\te\n\n\n   \n\t \nf     \r\n  g   ",
        "only_spaces": " " * 57,
        "only_newlines": "\n" * 13,
        "numbers": "0 1 12 123 1234 12345 123456 3.1415926535 -42 1e10 0x1F",
        "mixed_case": "HTTPServerError XMLHttpRequest iPhone McDonald's ALLCAPS camelCaseWord",
        "specials": "<|endoftext|> and <|endofprompt|> are plain text here <|fim_prefix|>",
        "url": "https://example.com/path?q=1&r=%20x#frag mailto:a.b@c.de",
        "empty": "",
    }
    pool = "".join(scripts.values())
    scripts["random_pool"] = "".join(rng.choice(pool) for _ in range(5000))
    # random code points from several planes (no surrogates): tokenizers must round-trip anything
    codepoints = [c for c in range(0x20, 0x3000)] + list(range(0x1F300, 0x1FAFF))
    scripts["random_unicode"] = "".join(chr(rng.choice(codepoints)) for _ in range(3000))
    scripts["long"] = " ".join(scripts[k] for k in ("english", "code", "chinese", "emoji", "whitespace")) * 400
    return scripts


CORPUS = _corpus()


@pytest.mark.parametrize("name", sorted(ENCODINGS))
def test_split_patterns_and_special_tokens_match_tiktoken_ext(reference, name):
    ref = reference[name]
    assert ENCODINGS[name].pat_str == ref._pat_str
    assert dict(ENCODINGS[name].special_tokens) == ref._special_tokens


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("key", sorted(CORPUS))
def test_encodings_equal_tiktoken_on_a_varied_corpus(reference, encoding, key):
    text = CORPUS[key]
    ours = get_encoding(encoding).encode_ordinary(text)
    assert ours == reference[encoding].encode_ordinary(text)
    assert get_encoding(encoding).decode(ours) == text


def test_models_encode_with_their_catalog_encoding(reference):
    text = CORPUS["english"] + CORPUS["emoji"]
    for info in load_catalog().models.values():
        if info.encoding in ENCODINGS:
            assert encode(text, info.name) == reference[info.encoding].encode_ordinary(text), info.name
            assert count_text(text, info.name) == len(reference[info.encoding].encode_ordinary(text))


def test_well_known_ids():
    assert encode("hello world", "gpt-4") == [15339, 1917]  # cl100k_base, tiktoken's README
    assert encode("hello world", "gpt-4o") == [24912, 2375]  # o200k_base
    assert count_text("", "gpt-4o") == 0


def test_aliases_and_azure_deployments_resolve_to_their_encoding():
    assert get_encoding("gpt-3.5-turbo").name == "cl100k_base"
    assert get_encoding("gpt-4o-2024-08-06").name == "o200k_base"
    assert get_encoding("o200k_base").name == "o200k_base"
    deployments = {"chat-prod": "gpt-4", "vision": "gpt-4o"}
    assert encode("hello world", "chat-prod", deployments) == [15339, 1917]
    assert get_encoding("vision", deployments).name == "o200k_base"


def test_deployments_from_the_configured_profiles_resolve_without_a_map(tmp_path, monkeypatch):
    (tmp_path / "workbench.toml").write_text(
        '[profiles.work]\nbackend = "azure"\n[profiles.work.deployments]\n"prod-chat" = "gpt-4"\n', "utf-8")
    monkeypatch.chdir(tmp_path)
    assert encode("hello world", "prod-chat") == [15339, 1917]
    assert count_messages([{"role": "user", "content": "hi"}], "prod-chat").model == "gpt-4"
    with pytest.raises(UnknownModelError, match="'prod-chta'"):
        count_text("hi", "prod-chta")


def test_unknown_model_suggests_close_matches():
    with pytest.raises(UnknownModelError, match="Did you mean: gpt-4o"):
        count_text("hi", "gpt4o")


def test_special_token_text_is_counted_as_plain_text(reference):
    text = "<|endoftext|>"
    assert encode(text, "gpt-4o") == reference["o200k_base"].encode_ordinary(text)
    assert len(encode(text, "gpt-4o")) > 1


def test_offline_build_never_uses_tiktoken_registry_or_network(monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("network or tiktoken registry used")

    monkeypatch.setattr(tiktoken, "get_encoding", forbidden)
    monkeypatch.setattr(tiktoken.registry, "get_encoding", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    monkeypatch.setattr(tokens, "_encodings", {})  # force a fresh build
    assert count_text("hello world", "gpt-4o") == 2
    assert count_text("hello world", "gpt-4") == 2


# ----------------------------------------------------------------------------------------------- vocab files


def test_vocabulary_hash_mismatch_is_refused(tmp_path):
    raw = gzip.decompress((VOCAB / "cl100k_base.tiktoken.gz").read_bytes())
    tampered = tmp_path / "cl100k_base.tiktoken"
    tampered.write_bytes(raw.replace(b" 100\n", b" 101\n", 1))
    with pytest.raises(VocabularyError, match="sha256 .* expected 2239"):
        load_bpe_file(tampered, ENCODINGS["cl100k_base"].sha256)
    good = tmp_path / "good.tiktoken"
    good.write_bytes(raw)
    assert len(load_bpe_file(good, ENCODINGS["cl100k_base"].sha256)) == 100256


def test_corrupt_or_missing_vocabulary_gives_a_clear_error(tmp_path, monkeypatch):
    broken = tmp_path / "o200k_base.tiktoken.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(VocabularyError, match="cannot be read"):
        load_bpe_file(broken, ENCODINGS["o200k_base"].sha256)
    with pytest.raises(VocabularyError, match="missing"):
        load_bpe_file(tmp_path / "absent.tiktoken.gz", "0" * 64)
    # and through get_encoding: a wrong expected hash stops the build
    spec = ENCODINGS["o200k_base"]
    monkeypatch.setitem(ENCODINGS, "o200k_base", tokens.EncodingSpec(spec.name, spec.file, "0" * 64, spec.pat_str,
                                                                      spec.special_tokens))
    monkeypatch.setattr(tokens, "_encodings", {})
    with pytest.raises(VocabularyError, match="corrupt"):
        count_text("hi", "gpt-4o")


# ----------------------------------------------------------------------------------------------- chat messages


def cookbook_count(messages, enc) -> int:
    """num_tokens_from_messages from the OpenAI cookbook (encode_ordinary: the corpus holds special-token text)."""
    n = 0
    for message in messages:
        n += 3
        for key, value in message.items():
            n += len(enc.encode_ordinary(value))
            if key == "name":
                n += 1
    return n + 3


JARGON = [  # the cookbook's example; the API reported 129 (gpt-3.5-turbo, gpt-4) and 124 (gpt-4o, gpt-4o-mini)
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon "
                                  "into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base "
                                                          "on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to "
                                                               "do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client "
                                "deliverable."},
]

WEATHER_TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "description": "The unit of temperature to return",
                         "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}]
WEATHER_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


@pytest.mark.parametrize("model,expected",
                         [("gpt-35-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)])
def test_chat_counts_match_the_counts_the_api_reported(model, expected):
    assert count_messages(JARGON, model).total == expected


@pytest.mark.parametrize(
    "model,expected", [("gpt-35-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101), ("gpt-4o-mini", 101)]
)
def test_tool_definitions_match_the_counts_the_api_reported(model, expected):
    counted = count_messages(WEATHER_MESSAGES, model, tools=WEATHER_TOOLS)
    assert counted.total == expected
    assert counted.tools == count_tools(WEATHER_TOOLS, model) > 0
    assert any("estimate" in n for n in counted.notes)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4", "o3-mini", "gpt-4.1-nano"])
def test_chat_counts_follow_the_published_formula_on_the_corpus(reference, model):
    enc = reference[load_catalog().get(model).encoding]
    keys = sorted(CORPUS)
    messages = [{"role": ("system", "user", "assistant")[i % 3], "content": CORPUS[k]} for i, k in enumerate(keys)]
    messages[1]["name"] = "alice"
    counted = count_messages(messages, model)
    assert counted.total == cookbook_count(messages, enc)
    assert counted.text == sum(len(enc.encode_ordinary(CORPUS[k])) for k in keys) + len(enc.encode("alice"))
    assert counted.overhead == 3 * len(messages) + sum(len(enc.encode(m["role"])) for m in messages) + 1 + 3


def test_content_parts_and_tool_calls_are_counted():
    parts = [{"role": "user", "content": [{"type": "text", "text": "hello"}, {"type": "text", "text": " world"}]}]
    assert count_messages(parts, "gpt-4o").text == count_text("hello", "gpt-4o") + count_text(" world", "gpt-4o")
    calls = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_current_weather", "arguments": '{"location":"Paris"}'},
                }
            ],
        }
    ]
    counted = count_messages(calls, "gpt-4o")
    assert counted.text == count_text("get_current_weather", "gpt-4o") + count_text('{"location":"Paris"}', "gpt-4o")
    assert any("tool calls" in n for n in counted.notes)


def test_bad_messages_say_where():
    with pytest.raises(DataError, match=r"messages\[1\]"):
        count_messages([{"role": "user", "content": "a"}, "oops"], "gpt-4o")
    with pytest.raises(DataError, match=r"messages\[0\].content\[0\] has type 'input_audio'"):
        count_messages([{"role": "user", "content": [{"type": "input_audio"}]}], "gpt-4o")


def test_token_pieces_rebuild_the_text_and_keep_characters_whole():
    for text in (CORPUS["emoji"], CORPUS["hindi"], CORPUS["whitespace"], CORPUS["random_unicode"][:500]):
        pieces = token_pieces(text, "gpt-4")
        assert "".join(p for _, p in pieces) == text
        assert [i for ids, _ in pieces for i in ids] == encode(text, "gpt-4")
    assert any(len(ids) > 1 for ids, _ in token_pieces("👨‍👩‍👧‍👦", "gpt-4"))


# ----------------------------------------------------------------------------------------------- local model


@pytest.mark.local_model
@pytest.mark.filterwarnings("ignore:smollm2-135m-instruct has no developer role")
def test_local_model_count_equals_the_prompt_tokens_it_reports():
    from workbench.providers import get_provider

    local = get_provider("local")
    for messages in (
        [{"role": "user", "content": "hi"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "  2+2?\n\nThink. 🙂 日本語"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "Sure?"},
        ],
        [
            {"role": "developer", "content": "x"},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        ],
    ):
        counted = count_messages(messages, "local")
        reported = local.complete(messages, max_tokens=1).usage.prompt_tokens
        assert counted.total == reported
        assert counted.encoding == "gguf" and counted.overhead > 0


@pytest.mark.local_model
def test_local_model_text_uses_its_own_vocabulary():
    from workbench.providers.local import get_local_model

    assert encode("hello world", "local") == get_local_model().tokenize("hello world")
    with pytest.raises(DataError, match="reads text only"):
        count_messages([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}], "local")
    # the local model takes tools (llama-cpp-python's chatml-function-calling): its function list is counted
    plain = count_messages([{"role": "user", "content": "x"}], "local")
    with_tools = count_messages([{"role": "user", "content": "x"}], "local", tools=WEATHER_TOOLS)
    assert with_tools.tools > 0 and with_tools.total == plain.total + with_tools.tools
    assert any("chatml-function-calling" in n and "estimate" in n for n in with_tools.notes)
