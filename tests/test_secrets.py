import logging

from workbench.secrets import MASK, install_log_redaction, redact, redact_obj, register_secret


def test_registered_secret_is_masked_everywhere():
    register_secret("s3cr3t-value-123")
    assert redact("key=s3cr3t-value-123 and more") == f"key={MASK} and more"


def test_key_shapes_are_masked_even_when_unregistered():
    fake_openai_key = "sk-" + "abcdefghijklmnopqrstuvwx"  # made up; split so scanners do not flag the file
    fake_azure_key = "abcdef0123456789" * 2
    assert "sk-" not in redact(f"use {fake_openai_key} please").replace(MASK, "")
    assert fake_azure_key not in redact(f"api-key: {fake_azure_key}")
    assert redact("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig").endswith(MASK)


def test_redact_obj_masks_secret_named_fields_but_not_token_counts():
    out = redact_obj(
        {"api_key": "x" * 10, "max_tokens": 5, "headers": {"Authorization": "Bearer abc"}, "prompt_tokens": 3}
    )
    assert out["api_key"] == MASK and out["headers"]["Authorization"] == MASK
    assert out["max_tokens"] == 5 and out["prompt_tokens"] == 3


def test_log_records_are_scrubbed(caplog):
    register_secret("log-secret-987654")
    install_log_redaction(("workbench.test",))
    log = logging.getLogger("workbench.test")
    with caplog.at_level(logging.INFO, logger="workbench.test"):
        log.info("calling with %s", "log-secret-987654")
    assert "log-secret-987654" not in caplog.text and MASK in caplog.text
