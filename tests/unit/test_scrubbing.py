import logging

import pytest

from apps.core.scrubbing import MASK, SecretsFilter, scrub_text, sentry_before_send
from apps.keys.key_format import new_key

KEY = new_key("abcdefghijkl")


@pytest.mark.parametrize(
    "secret",
    [
        KEY,
        "sk-proj-AbCdEfGhIjKlMnOpQrStUv012345",
        "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUv012345",
        "sk_live_51HxYzAbCdEfGhIjK",
        "whsec_dGVzdHNlY3JldA==",
        "sk-lf-1234abcd-5678-efgh",
        "lsv2_pt_0123456789abcdef0123456789abcdef",
    ],
)
def test_secrets_are_masked_wherever_they_appear(secret):
    assert scrub_text(f"calling with {secret}, failed") == f"calling with {MASK}, failed"


def test_credentials_keep_their_scheme():
    assert scrub_text("Authorization: Bearer abc.def-ghi_jkl") == f"Authorization: Bearer {MASK}"
    assert scrub_text("authorization: basic dXNlcjpwYXNzd29yZA==") == f"authorization: basic {MASK}"


def test_ordinary_text_is_untouched():
    text = "delivered 120 spans to https://api.langfuse.com/api/public/ingestion in 0.2 s (task-key sk-1)"
    assert scrub_text(text) == text


def test_log_records_are_scrubbed_with_their_arguments_and_tracebacks(caplog):
    logger = logging.getLogger("tests.scrubbing")
    logger.addFilter(SecretsFilter())
    try:
        with caplog.at_level(logging.INFO, logger="tests.scrubbing"):
            logger.warning("key %s refused", KEY)
            try:
                raise ValueError(f"upstream said no to Bearer {KEY}")
            except ValueError:
                logger.exception("proxy failed")
    finally:
        logger.filters.clear()
    text = caplog.text
    assert KEY not in text
    assert f"key {MASK} refused" in text
    assert f"Bearer {MASK}" in text


def test_sentry_events_are_scrubbed_everywhere():
    event = {
        "message": f"refused {KEY}",
        "exception": {"values": [{"value": "Authorization: Bearer sk-proj-AbCdEfGhIjKlMnOpQrStUv"}]},
        "request": {"headers": {"Referer": f"https://x.test/?key={KEY}"}},
        "extra": {"attempts": 3},
    }
    scrubbed = sentry_before_send(event, {})
    assert KEY not in str(scrubbed)
    assert "sk-proj" not in str(scrubbed)
    assert scrubbed["extra"] == {"attempts": 3}
