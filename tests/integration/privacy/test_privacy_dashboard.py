"""The Settings tab: "Privacy: erase a user or session" (the erasure service behind a form),
and the GDPR / CCPA compliance mode of "PII defaults" applied to every destination."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.delivery.services import deliver_due
from apps.privacy.models import Erasure, Suppression
from apps.traces.models import Span
from tests.factories import DestinationFactory, MembershipFactory
from tests.fakes.sink import running_sink
from tests.integration.privacy.conftest import SECRET
from workers.tasks.routing import route_batch

pytestmark = pytest.mark.django_db


def url(name, project) -> str:
    return reverse(f"dashboard:{name}", args=[project.pk])


@pytest.fixture
def seeded(ingest):
    ingest(
        [
            {"id": "d1", "user_id": "dana"},
            {"id": "d2", "user_id": "dana", "session_id": "sx"},
            {"id": "e1", "user_id": "eve", "session_id": "sx"},
        ]
    )


def stored(project) -> set[str]:
    return set(Span.objects.for_project(project.pk).values_list("span_id", flat=True))


@pytest.mark.parametrize("role", ["owner", "admin", "member"])
def test_writers_erase_a_user_and_see_the_result(client, project, seeded, role):
    user = MembershipFactory(organization=project.organization, role=role).user
    client.force_login(user)
    page = client.get(url("settings", project)).content.decode()
    assert "Privacy: erase a user or session" in page and 'id="privacy-form"' in page

    response = client.post(url("settings-privacy", project), {"kind": "user", "value": "dana"})

    assert response.status_code == 200
    body = response.content.decode()
    erasure = Erasure.objects.get(project=project)
    assert re.search(r"Erased the user:\s+2 spans deleted,\s+0 deliveries changed\.", body)
    assert str(erasure.pk) in body and "dana" not in body
    assert stored(project) == {"e1"}
    assert erasure.created_by_id == user.pk
    assert Suppression.objects.get(project=project).created_by_id == user.pk
    event = AuditEvent.objects.get(action="privacy.erasure_requested")
    assert event.actor_user_id == user.pk and event.details == {"subject_kind": "user"}


def test_a_session_is_erased_from_the_form_too(client, project, seeded, owner):
    client.force_login(owner)
    response = client.post(url("settings-privacy", project), {"kind": "session", "value": "sx"})
    assert response.status_code == 200 and stored(project) == {"d1"}


def test_a_viewer_sees_no_form_and_gets_403(client, project, seeded):
    viewer = MembershipFactory(organization=project.organization, role="viewer").user
    client.force_login(viewer)
    page = client.get(url("settings", project)).content.decode()
    assert 'id="privacy-form"' not in page
    assert "Only an owner, admin or member of the project can erase data." in page
    response = client.post(url("settings-privacy", project), {"kind": "user", "value": "dana"})
    assert response.status_code == 403
    assert stored(project) == {"d1", "d2", "e1"} and not Erasure.objects.exists()


def test_another_organizations_user_gets_404(client, project, seeded):
    stranger = MembershipFactory(role="owner").user
    client.force_login(stranger)
    response = client.post(url("settings-privacy", project), {"kind": "user", "value": "dana"})
    assert response.status_code == 404 and stored(project) == {"d1", "d2", "e1"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "user", "value": ""}, "Give the user id or session id to erase."),
        ({"kind": "user", "value": "x" * 257}, "Ensure this value has at most 256 characters (it has 257)."),
        (
            {"kind": "email", "value": "dana"},
            "Select a valid choice. email is not one of the available choices.",
        ),
    ],
    ids=["empty", "too-long", "bad-kind"],
)
def test_bad_form_input_is_shown_and_nothing_is_erased(client, project, seeded, owner, data, message):
    client.force_login(owner)
    response = client.post(url("settings-privacy", project), data)
    assert response.status_code == 400
    assert message in response.content.decode().replace("&#x27;", "'")
    assert stored(project) == {"d1", "d2", "e1"} and not Erasure.objects.exists()


# --- compliance mode ------------------------------------------------------------------------------


def test_the_gdpr_preset_of_pii_defaults_applies_to_every_destination(client, api, project, owner, ingest):
    """The project-level compliance switch: "GDPR / CCPA preset" in PII defaults."""
    with running_sink(SECRET) as first, running_sink(SECRET) as second:
        ruled = DestinationFactory(project=project, name="ruled", config={"url": first.url, "secret": SECRET})
        default = DestinationFactory(
            project=project, name="default", config={"url": second.url, "secret": SECRET}
        )
        document = {
            "rules": [
                {
                    "name": "gpt",
                    "conditions": {"all": [{"field": "model", "operator": "glob", "value": "gpt-*"}]},
                    "actions": {"destinations": [str(ruled.pk)]},
                }
            ],
            "default_destinations": [str(default.pk)],
        }
        assert api.put("/v1/routing/config", document, format="json").status_code == 200
        client.force_login(owner)
        saved = client.post(
            url("settings-pii", project),
            {"enabled": "on", "mode": "mask", "detectors": ["email"], "gdpr": "on", "base_version": 1},
        )
        assert saved.status_code == 302

        spans = [
            {"id": "g1", "model": "gpt-4o", "user_id": "dana", "metadata": {"ip": "203.0.113.9"}},
            {"id": "g2", "model": "other", "user_id": "dana", "metadata": {"client_ip": "203.0.113.9"}},
        ]
        assert route_batch(str(ingest(spans).pk)) is True
        deliver_due(ruled.pk)
        deliver_due(default.pk)

        received = [span for sink in (first, second) for p in sink.payloads for span in p["spans"]]
    assert sorted(span["id"] for span in received) == ["g1", "g2"]
    for span in received:
        assert re.fullmatch(r"\[USER_ID:[0-9a-f]{16}\]", span["user_id"]), span
        assert "203.0.113.9" not in str(span)
