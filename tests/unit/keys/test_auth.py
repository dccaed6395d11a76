from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.keys.auth import KeyAuthError, authenticate_key, key_from_headers
from apps.keys.key_format import KEY_PATTERN, new_key
from apps.keys.models import ApiKey
from apps.keys.services import key_revoke, key_rotate
from tests.factories import ApiKeyFactory

pytestmark = pytest.mark.django_db


def _error(raw, **kwargs) -> KeyAuthError:
    with pytest.raises(KeyAuthError) as info:
        authenticate_key(raw, **kwargs)
    return info.value


def test_secret_has_scannable_shape_and_only_its_hash_is_stored(api_key):
    assert api_key.secret.startswith("ut_")
    prefix, lookup_id, secret = api_key.secret.split("_")
    assert (len(lookup_id), len(secret)) == (12, 40)
    assert KEY_PATTERN.fullmatch(api_key.secret)
    assert lookup_id == api_key.lookup_id
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert api_key.secret not in str(stored.__dict__)
    assert len(stored.hashed_secret) == 64


def test_valid_key_yields_its_project_and_scopes(api_key):
    principal = authenticate_key(api_key.secret)
    assert principal.project_id == api_key.project_id
    assert principal.organization_id == api_key.project.organization_id
    assert principal.scopes == {"ingest", "proxy", "read", "write"}


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (None, "missing_key"),
        ("", "missing_key"),
        ("sk-not-ours", "invalid_key"),
        ("ut_" + "a" * 12 + "_" + "b" * 40, "invalid_key"),
    ],
)
def test_missing_or_unknown_key_is_401(raw, code):
    error = _error(raw)
    assert (error.status, error.code) == (401, code)


def test_right_lookup_id_with_wrong_secret_is_401(api_key):
    forged = new_key(api_key.lookup_id)  # well formed, checksum right, secret wrong
    assert forged != api_key.secret
    assert _error(forged).code == "invalid_key"


def test_key_with_a_bad_checksum_is_refused_without_a_query(api_key):
    forged = api_key.secret[:-1] + ("0" if api_key.secret[-1] != "0" else "1")
    with CaptureQueriesContext(connection) as queries:
        assert _error(forged).code == "invalid_key"
    assert len(queries) == 0


def test_revoked_key_is_refused_at_once_in_this_process(api_key):
    authenticate_key(api_key.secret)  # warm the cache
    key_revoke(key=api_key)
    error = _error(api_key.secret)
    assert (error.status, error.code) == (401, "revoked_key")


def test_expired_key_is_401():
    key = ApiKeyFactory(expires_at=timezone.now() + timedelta(seconds=60))
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert _error(key.secret).code == "expired_key"


def test_missing_scope_is_403():
    key = ApiKeyFactory(scopes=["ingest"])
    error = _error(key.secret, scope="read")
    assert (error.status, error.code) == (403, "missing_scope")
    assert authenticate_key(key.secret, scope="ingest").key_id == key.pk


def test_ip_allowlist():
    key = ApiKeyFactory(allowed_cidrs=["203.0.113.0/24", "2001:db8::/32"])
    assert authenticate_key(key.secret, client_ip="203.0.113.9")
    assert authenticate_key(key.secret, client_ip="2001:db8::1")
    for address in ("198.51.100.1", None, "not-an-ip"):
        error = _error(key.secret, client_ip=address)
        assert (error.status, error.code) == (403, "ip_not_allowed")


def test_warm_lookup_does_no_database_io(api_key, settings):
    settings.UNTRACE_KEY_LAST_USED_INTERVAL = 3600
    authenticate_key(api_key.secret)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(100):
            authenticate_key(api_key.secret)
    assert len(queries) == 0


def test_last_used_at_is_written_once_per_interval(api_key, settings):
    settings.UNTRACE_KEY_LAST_USED_INTERVAL = 3600
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            authenticate_key(api_key.secret)
    updates = [q for q in queries if q["sql"].startswith("UPDATE")]
    assert len(updates) == 1
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None


def test_rotation_keeps_the_old_key_for_the_grace_period(api_key):
    issued = key_rotate(key=api_key, grace=timedelta(hours=1))
    assert authenticate_key(issued.secret).key_id == issued.key.pk
    assert authenticate_key(api_key.secret).key_id == api_key.pk
    old = ApiKey.objects.get(pk=api_key.pk)
    assert timedelta(minutes=59) < old.expires_at - timezone.now() <= timedelta(hours=1)
    assert issued.key.rotated_from_id == api_key.pk
    assert issued.key.scopes == api_key.scopes


def test_rotation_with_zero_grace_ends_the_old_key_now(api_key):
    issued = key_rotate(key=api_key, grace=timedelta(0))
    assert _error(api_key.secret).code == "expired_key"
    assert authenticate_key(issued.secret)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-untrace-key": " ut_x "}, "ut_x"),
        ({"authorization": "Bearer ut_y"}, "ut_y"),
        ({"authorization": "bearer ut_z"}, "ut_z"),
        ({"authorization": "Basic abc"}, None),
        ({}, None),
    ],
)
def test_key_from_headers(headers, expected):
    assert key_from_headers(headers) == expected


def test_key_needs_io_only_for_a_cold_key_or_a_due_last_use(api_key, settings):
    from apps.keys.auth import key_needs_io

    settings.UNTRACE_KEY_LAST_USED_INTERVAL = 3600
    assert key_needs_io(api_key.secret)  # nothing cached yet
    assert not key_needs_io("not-a-key")  # refused without a lookup
    authenticate_key(api_key.secret)
    assert not key_needs_io(api_key.secret)  # warm, and its last use was just written
    settings.UNTRACE_KEY_LAST_USED_INTERVAL = 0
    assert key_needs_io(api_key.secret)  # a last use is due: a database write
