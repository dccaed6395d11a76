"""The keyed subject hash and the suppression check, without a database."""

from __future__ import annotations

import hashlib
import hmac

from apps.privacy.hashing import subject_hash
from apps.privacy.suppression import is_suppressed


def test_the_hash_is_an_hmac_of_kind_and_value_with_the_server_key(settings):
    settings.UNTRACE_PRIVACY_HASH_KEY = "k1"
    expected = hmac.new(b"k1", b"user:alice", hashlib.sha256).hexdigest()
    assert subject_hash("user", "alice") == expected
    assert subject_hash("session", "alice") != expected  # a session id is another subject
    settings.UNTRACE_PRIVACY_HASH_KEY = "k2"
    assert subject_hash("user", "alice") != expected  # nothing to match without the key


def test_the_hash_is_of_the_value_as_stored():
    assert subject_hash("user", "a\x00b") == subject_hash("user", "a\ufffdb")


def test_a_span_is_suppressed_by_its_user_or_its_session():
    entries = frozenset({("user", subject_hash("user", "alice")), ("session", subject_hash("session", "s1"))})
    assert is_suppressed(entries, {"user_id": "alice"})
    assert is_suppressed(entries, {"user_id": "bob", "session_id": "s1"})
    assert not is_suppressed(entries, {"user_id": "bob", "session_id": "s2"})
    assert not is_suppressed(entries, {"session_id": "alice"})  # kinds do not mix
    assert not is_suppressed(entries, {"user_id": 42})
    assert not is_suppressed(frozenset(), {"user_id": "alice"})
