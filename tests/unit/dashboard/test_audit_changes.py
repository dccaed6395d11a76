"""The audit log's before/after diff, masking and query-string checks."""

from __future__ import annotations

import uuid

import pytest

from apps.dashboard.audit_log import MASK, Change, FilterError, changes_of, filters_from


def test_only_the_fields_that_differ_are_changes_in_document_order():
    changes, rest = changes_of(
        {
            "before": {"name": "a", "enabled": True, "url": "x"},
            "after": {"name": "b", "enabled": True, "url": "x", "type": "webhook"},
            "version": 3,
        }
    )

    assert changes == [Change("name", "a", "b"), Change("type", "—", "webhook")]
    assert rest == [("version", "3")]


@pytest.mark.parametrize(
    "key", ["secret", "api_key", "password", "token", "signing_secret", "key", "credentials"]
)
def test_secret_looking_values_are_masked(key):
    changes, rest = changes_of({"before": {key: "one"}, "after": {key: "two"}, key: "three"})

    assert changes == [Change(key, MASK, MASK)]  # changed, but neither value shown
    assert rest == [(key.replace("_", " "), MASK)]


@pytest.mark.parametrize("key", ["previous_secret_expires_at", "lookup_id", "new_key_id", "name", "scopes"])
def test_ordinary_values_are_shown(key):
    _, rest = changes_of({key: "visible"})

    assert rest == [(key.replace("_", " "), "visible")]


def test_values_are_written_for_people():
    _, rest = changes_of({"scopes": ["read", "ingest"], "enabled": False, "limit": None, "nested": {"a": 1}})

    assert rest == [("scopes", "read, ingest"), ("enabled", "no"), ("limit", "—"), ("nested", "a: 1")]


def test_details_without_before_and_after_have_no_changes():
    assert changes_of({"before": "not a dict", "after": {}}) == (
        [],
        [("before", "not a dict"), ("after", "—")],
    )
    assert changes_of(None) == ([], [])


def test_filters_accept_actions_users_and_keys():
    key = uuid.uuid4()
    before = uuid.uuid4()

    filters = filters_from({"action": "key.created", "actor": f"key:{key}", "before": str(before)})

    assert filters.selector_kwargs == {"action": "key.created", "actor_user_id": None, "actor_key_id": key}
    assert filters.before == before
    assert filters_from({"actor": "user:7"}).selector_kwargs["actor_user_id"] == 7
    assert filters.query(before="x") == f"action=key.created&actor=key%3A{key}&before=x"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"action": "KEY.CREATED"}, "action"),
        ({"action": "key..created"}, "action"),
        ({"actor": "user:"}, "actor"),
        ({"actor": "group:1"}, "actor"),
        ({"before": "yesterday"}, "before"),
    ],
)
def test_filters_refuse_malformed_values(params, field):
    with pytest.raises(FilterError) as caught:
        filters_from(params)

    assert caught.value.field == field
