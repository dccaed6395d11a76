"""POST/GET /v1/privacy/erasures and GET /v1/privacy/export over PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from apps.audit.models import AuditEvent
from apps.privacy import services
from apps.privacy.hashing import subject_hash
from apps.privacy.models import Erasure, Suppression
from apps.traces.models import Span
from tests.factories import ApiKeyFactory, ProjectFactory
from tests.integration.ingest.helpers import auth, error_of, post
from workers.tasks.privacy import continue_erasure

pytestmark = pytest.mark.django_db

ERASURES = "/v1/privacy/erasures"
EXPORT = "/v1/privacy/export"


def ingest(client, key, spans: list[dict]) -> None:
    response = post(client, "/v1/traces/batch", {"traces": spans}, key.secret)
    assert response.status_code == 202, response.content


def stored_ids(project) -> set[str]:
    return set(Span.objects.for_project(project.pk).values_list("span_id", flat=True))


@pytest.fixture
def other_project(project):
    return ProjectFactory()


@pytest.fixture
def other_key(other_project):
    return ApiKeyFactory(project=other_project)


@pytest.fixture
def seeded(client, api_key, other_key):
    """alice and bob in the project, alice also in another project."""
    ingest(
        client,
        api_key,
        [
            {"id": "a1", "trace_id": "t1", "user_id": "alice", "session_id": "s-1"},
            {"id": "a2", "trace_id": "t2", "user_id": "alice", "session_id": "s-2"},
            {"id": "b1", "trace_id": "t1", "user_id": "bob", "session_id": "s-1"},
            {"id": "n1", "trace_id": "t3"},
        ],
    )
    ingest(client, other_key, [{"id": "a1", "trace_id": "t1", "user_id": "alice"}])


def test_erasing_a_user_deletes_exactly_their_spans_in_this_project(api, seeded, project, other_project):
    response = api.post(ERASURES, {"user_id": "alice"}, format="json")

    assert response.status_code == 202, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "subject_kind",
        "status",
        "spans_deleted",
        "deliveries_changed",
        "created_at",
        "finished_at",
    }
    assert (body["subject_kind"], body["status"], body["spans_deleted"]) == ("user", "completed", 2)
    assert body["deliveries_changed"] == 0
    assert stored_ids(project) == {"b1", "n1"}
    assert stored_ids(other_project) == {"a1"}  # the same user id elsewhere is another subject

    erasure = Erasure.objects.get(pk=body["id"])
    assert erasure.subject_encrypted == ""  # completed: the identifier is forgotten
    assert erasure.subject_hash == subject_hash("user", "alice") != "alice"
    suppression = Suppression.objects.get(project=project)
    assert (suppression.kind, suppression.value_hash) == ("user", subject_hash("user", "alice"))
    assert "alice" not in str(list(Suppression.objects.values())) + str(list(Erasure.objects.values()))

    event = AuditEvent.objects.get(action="privacy.erasure_requested")
    assert event.project_id == project.pk and event.target_id == body["id"]
    assert event.details == {"subject_kind": "user"} and event.actor_key_id is not None


def test_erasing_a_session_deletes_its_spans_only(api, seeded, project):
    response = api.post(ERASURES, {"session_id": "s-1"}, format="json")
    assert response.status_code == 202 and response.json()["spans_deleted"] == 2
    assert stored_ids(project) == {"a2", "n1"}


def test_a_late_span_of_an_erased_user_is_accepted_but_never_stored(client, api, api_key, seeded, project):
    assert api.post(ERASURES, {"user_id": "alice"}, format="json").status_code == 202

    late = {"traces": [{"id": "a3", "user_id": "alice"}, {"id": "b2", "user_id": "bob"}]}
    response = post(client, "/v1/traces/batch", late, api_key.secret)

    assert response.status_code == 202, response.content
    assert response.json()["accepted"] == ["a3", "b2"]
    assert stored_ids(project) == {"b1", "b2", "n1"}
    single = post(client, "/v1/traces", {"id": "a4", "session_id": "x", "user_id": "alice"}, api_key.secret)
    assert single.status_code == 202 and "a4" not in stored_ids(project)


def test_a_key_of_another_project_erases_nothing_here(seeded, project, other_key, client):
    response = client.post(
        ERASURES, {"user_id": "bob"}, content_type="application/json", **auth(other_key.secret)
    )
    assert response.status_code == 202 and response.json()["spans_deleted"] == 0
    assert stored_ids(project) == {"a1", "a2", "b1", "n1"}
    assert not Suppression.objects.filter(project=project).exists()


def test_erasures_are_listed_and_read_only_in_their_project(api, seeded, other_key, client):
    first = api.post(ERASURES, {"user_id": "alice"}, format="json").json()
    second = api.post(ERASURES, {"session_id": "s-1"}, format="json").json()

    listed = api.get(ERASURES)
    assert listed.status_code == 200
    page = listed.json()
    assert [e["id"] for e in page["results"]] == [second["id"], first["id"]]
    assert set(page) == {"next", "previous", "results"}
    assert api.get(f"{ERASURES}/{first['id']}").json() == first | {"finished_at": first["finished_at"]}

    theirs = client.get(ERASURES, **auth(other_key.secret))
    assert theirs.json()["results"] == []
    error = error_of(client.get(f"{ERASURES}/{first['id']}", **auth(other_key.secret)), 404, "not_found")
    assert first["id"] in error["message"]
    assert error_of(api.get(f"{ERASURES}/not-a-uuid"), 400, "invalid_request")["details"] == {"field": "id"}
    assert error_of(api.get(f"{ERASURES}/{uuid.uuid4()}"), 404, "not_found")


def test_erasure_needs_the_write_scope_and_listing_the_read_scope(client, project, seeded):
    reader = ApiKeyFactory(project=project, scopes=["read"])
    response = client.post(
        ERASURES, {"user_id": "alice"}, content_type="application/json", **auth(reader.secret)
    )
    assert error_of(response, 403, "missing_scope")["message"] == "This API key lacks the 'write' scope."
    assert client.get(ERASURES, **auth(reader.secret)).status_code == 200
    writer = ApiKeyFactory(project=project, scopes=["write"])
    assert error_of(client.get(EXPORT, {"user_id": "alice"}, **auth(writer.secret)), 403, "missing_scope")


def _invalid(message: str, field: str, errors=None) -> dict:
    details = {"field": field}
    if errors is not None:
        details["errors"] = errors
    return {"error": {"code": "invalid_request", "message": message, "details": details}}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, _invalid("user_id: give one of user_id and session_id", "user_id")),
        (
            {"user_id": "a", "session_id": "b"},
            _invalid("session_id: give user_id or session_id, not both", "session_id"),
        ),
        (
            {"user_id": 42},
            _invalid("user_id: Must be a string.", "user_id", {"user_id": ["Must be a string."]}),
        ),
        (
            {"session_id": ["s"]},
            _invalid("session_id: Must be a string.", "session_id", {"session_id": ["Must be a string."]}),
        ),
        (
            {"user_id": "x" * 257},
            _invalid(
                "user_id: Ensure this field has no more than 256 characters.",
                "user_id",
                {"user_id": ["Ensure this field has no more than 256 characters."]},
            ),
        ),
        (
            {"user_id": ""},
            _invalid(
                "user_id: This field may not be blank.",
                "user_id",
                {"user_id": ["This field may not be blank."]},
            ),
        ),
        (
            {"user_id": None},
            _invalid(
                "user_id: This field may not be null.",
                "user_id",
                {"user_id": ["This field may not be null."]},
            ),
        ),
        ({"userId": "alice"}, _invalid("userId: is not a field (user_id or session_id)", "userId")),
        (
            ["alice"],
            _invalid("user_id: the body must be a JSON object with user_id or session_id", "user_id"),
        ),
    ],
    ids=["neither", "both", "number", "list", "too-long", "blank", "null", "unknown-field", "not-an-object"],
)
def test_bad_erasure_bodies_are_refused_with_the_field(api, seeded, project, body, expected):
    response = api.post(ERASURES, body, format="json")
    assert response.status_code == 400
    assert response.json() == expected
    assert not Erasure.objects.exists() and not Suppression.objects.exists()
    assert len(stored_ids(project)) == 4


def test_256_characters_is_still_a_subject(api, client, api_key, project):
    long_id = "u" * 256
    ingest(client, api_key, [{"id": "l1", "user_id": long_id}])
    response = api.post(ERASURES, {"user_id": long_id}, format="json")
    assert response.status_code == 202 and response.json()["spans_deleted"] == 1


def test_export_returns_exactly_the_users_spans_as_the_api_shows_them(api, seeded, project):
    response = api.get(EXPORT, {"user_id": "alice"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["subject_kind"] == "user" and body["next"] is None
    assert sorted(doc["id"] for doc in body["results"]) == ["a1", "a2"]
    traces = api.get("/v1/traces", {"user_id": "alice"}).json()["results"]
    assert sorted(body["results"], key=lambda d: d["id"]) == sorted(traces, key=lambda d: d["id"])
    event = AuditEvent.objects.get(action="privacy.export")
    assert event.details == {"subject_kind": "user", "spans": 2}
    assert "alice" not in str(event.details) + event.target_id


def test_export_pages_follow_next(api, client, api_key, project):
    ingest(client, api_key, [{"id": f"p{i}", "session_id": "long"} for i in range(5)])
    first = api.get(EXPORT, {"session_id": "long", "limit": 2}).json()
    seen = [doc["id"] for doc in first["results"]]
    following = first["next"]
    while following:
        page = api.get(following).json()
        seen += [doc["id"] for doc in page["results"]]
        following = page["next"]
    assert sorted(seen) == [f"p{i}" for i in range(5)] and len(seen) == 5


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, _invalid("user_id: give one of user_id and session_id", "user_id")),
        (
            {"user_id": "a", "session_id": "b"},
            _invalid("session_id: give user_id or session_id, not both", "session_id"),
        ),
        (
            {"session_id": "s" * 257},
            _invalid(
                "session_id: Ensure this field has no more than 256 characters.",
                "session_id",
                {"session_id": ["Ensure this field has no more than 256 characters."]},
            ),
        ),
        ({"user": "alice"}, _invalid("user: is not a field (user_id or session_id)", "user")),
        ({"user_id": "alice", "limit": "0"}, _invalid("limit: must be an integer from 1 to 200", "limit")),
    ],
    ids=["neither", "both", "too-long", "unknown", "bad-limit"],
)
def test_bad_export_queries_are_refused_with_the_field(api, seeded, params, expected):
    response = api.get(EXPORT, params)
    assert response.status_code == 400
    assert response.json() == expected


def test_a_large_erasure_goes_on_in_the_maintenance_task(
    api, client, api_key, project, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "DELETE_BATCH", 2)
    ingest(client, api_key, [{"id": f"big{i}", "user_id": "carol"} for i in range(5)] + [{"id": "keep"}])
    enqueued: list[str] = []
    monkeypatch.setattr(continue_erasure, "delay", lambda erasure_id: enqueued.append(erasure_id))

    with django_capture_on_commit_callbacks(execute=True):
        body = api.post(ERASURES, {"user_id": "carol"}, format="json").json()

    assert (body["status"], body["spans_deleted"]) == ("running", 2)
    assert enqueued == [body["id"]]
    erasure = Erasure.objects.get(pk=body["id"])
    assert erasure.subject_encrypted and "carol" not in erasure.subject_encrypted
    assert continue_erasure(body["id"]) is True
    erasure.refresh_from_db()
    assert (erasure.status, erasure.spans_deleted, erasure.subject_encrypted) == ("completed", 5, "")
    assert stored_ids(project) == {"keep"}
    assert api.get(f"{ERASURES}/{body['id']}").json()["status"] == "completed"


def test_an_erasure_that_fails_midway_is_finished_by_the_task(
    client, api_key, project, monkeypatch, django_capture_on_commit_callbacks
):
    ingest(client, api_key, [{"id": "f1", "user_id": "fay"}, {"id": "f2", "user_id": "gus"}])
    enqueued: list[str] = []
    monkeypatch.setattr(continue_erasure, "delay", lambda erasure_id: enqueued.append(erasure_id))

    def broken(*args, **kwargs):
        raise RuntimeError("lost the connection")

    with monkeypatch.context() as patched:
        patched.setattr(services, "_deliveries_strip", broken)
        with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
            services.erasure_create(project_id=project.pk, kind="user", value="fay")

    erasure = Erasure.objects.get(project=project)
    assert enqueued == [str(erasure.pk)] and erasure.status == "running"
    assert Suppression.objects.filter(project=project, kind="user").exists()
    assert stored_ids(project) == {"f1", "f2"}  # the failed batch was rolled back
    assert continue_erasure(str(erasure.pk)) is True
    assert stored_ids(project) == {"f2"}
    erasure.refresh_from_db()
    assert (erasure.status, erasure.spans_deleted) == ("completed", 1)
