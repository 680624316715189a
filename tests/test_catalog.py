import pytest

from workbench.catalog import LOCAL_MODEL, load_catalog, resolve
from workbench.errors import UnknownModelError

# Every model family named in the seed documents, plus the embedded local model.
SEED_FAMILIES = [
    "o4-mini", "o3", "o3-mini", "o1", "o1-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "gpt-4o",
    "gpt-4o-mini", "gpt-4-turbo", "gpt-4", "gpt-35-turbo", "computer-use-preview", "text-embedding-3-small",
    "text-embedding-3-large", "text-embedding-ada-002", LOCAL_MODEL,
]


@pytest.mark.parametrize("name", SEED_FAMILIES)
def test_every_seed_family_is_in_the_catalog(name):
    info = resolve(name)
    assert info.name == name
    assert info.encoding in ("o200k_base", "cl100k_base", "gguf")
    assert info.context_window > 0


def test_encodings_follow_tiktoken():
    assert resolve("gpt-4o").encoding == "o200k_base"
    assert resolve("o3-mini").encoding == "o200k_base"
    assert resolve("gpt-4").encoding == "cl100k_base"
    assert resolve("gpt-3.5-turbo").encoding == "cl100k_base"  # alias of gpt-35-turbo
    assert resolve("text-embedding-3-large").encoding == "cl100k_base"


def test_image_rules_match_published_tables():
    assert resolve("gpt-4o").image.rule == "tile" and resolve("gpt-4o").image.base == 85
    assert resolve("gpt-4o-mini").image.per_tile == 5667
    assert resolve("o1").image.per_tile == 150
    assert resolve("computer-use-preview").image.base == 65
    assert resolve("gpt-4.1-nano").image.rule == "patch" and resolve("gpt-4.1-nano").image.multiplier == 2.46
    assert resolve("o4-mini").image.multiplier == 1.72
    assert resolve("o3-mini").image is None  # no vision


def test_reasoning_models_are_marked():
    for name in ("o1", "o1-mini", "o3", "o3-mini", "o4-mini"):
        assert resolve(name).is_reasoning
    assert not resolve("gpt-4o").is_reasoning
    assert resolve("o1-mini").system_role == "user"
    assert resolve("o3").system_role == "developer"


def test_aliases_and_case():
    assert resolve("GPT-4O-2024-08-06").name == "gpt-4o"
    assert resolve("local").name == LOCAL_MODEL


def test_deployment_mapping():
    assert resolve("my-chat", {"my-chat": "gpt-4o-mini"}).name == "gpt-4o-mini"


def test_unknown_model_suggests_close_matches():
    with pytest.raises(UnknownModelError) as e:
        resolve("gpt-4o-mni")
    msg = str(e.value)
    assert "gpt-4o-mini" in msg and "deployments" in msg


def test_deployment_mapped_to_unknown_model():
    with pytest.raises(UnknownModelError, match="mapped to model 'gpt-5o'"):
        resolve("prod", {"prod": "gpt-5o"})


def test_catalog_is_versioned():
    cat = load_catalog()
    assert cat.schema_version == 1 and cat.catalog_version
