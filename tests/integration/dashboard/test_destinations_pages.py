import pytest

from apps.delivery.models import Delivery
from apps.destinations.models import Destination
from apps.routing.services import Actor, active_document, config_save
from apps.traces.models import Span
from tests.factories import DestinationFactory, MembershipFactory, ProjectFactory
from tests.fakes.sink import running_sink

pytestmark = pytest.mark.django_db

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


def test_every_tab_renders_for_a_member(signed_in, project):
    for name in ("overview", "traces", "destinations", "rules", "deliveries"):
        response = signed_in.get(f"/projects/{project.pk}/{name}")
        assert response.status_code == 200, name
        assert 'aria-current="page"' in response.content.decode()
    assert signed_in.get("/").url == f"/projects/{project.pk}/overview"


def test_overview_shows_the_onboarding_checklist_until_a_trace_is_delivered(signed_in, project):
    page = signed_in.get(f"/projects/{project.pk}/overview").content.decode()
    assert "Get your first trace delivered" in page and "Create a key in" in page


def test_the_add_form_is_generated_from_the_connectors_settings(signed_in, project):
    page = signed_in.get(f"/projects/{project.pk}/destinations?type=langfuse").content.decode()
    for name in ("config_host", "config_public_key", "config_secret_key", "config_api", "config_api_url"):
        assert f'name="{name}"' in page
    partial = signed_in.get(f"/projects/{project.pk}/destinations?type=s3", HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert "config_bucket" in body and "config_secret_access_key" in body and "<html" not in body


def test_add_a_webhook_destination_and_errors_next_to_fields(signed_in, project):
    bad = signed_in.post(
        f"/projects/{project.pk}/destinations",
        {"type": "webhook", "name": "hook", "config_url": "ftp://nope", "enabled": "on"},
    )
    assert bad.status_code == 400
    assert "must be an http:// or https:// URL" in bad.content.decode()
    missing = signed_in.post(f"/projects/{project.pk}/destinations", {"type": "webhook", "name": "hook"})
    assert missing.status_code == 400 and "This field is required" in missing.content.decode()
    created = signed_in.post(
        f"/projects/{project.pk}/destinations",
        {
            "type": "webhook",
            "name": "hook",
            "config_url": "http://127.0.0.1:9/hook",
            "config_secret": SECRET,
            "config_headers": "X-Team: search",
            "enabled": "on",
        },
    )
    destination = Destination.objects.get(project=project, name="hook")
    assert created.status_code == 302 and created.url.endswith(str(destination.pk))
    # A project that routed nowhere sends unmatched spans to its first destination.
    assert active_document(project.pk)[1]["default_destinations"] == [str(destination.pk)]
    assert destination.secrets == {"secret": SECRET, "headers": {"X-Team": "search"}}
    detail = signed_in.get(created.url).content.decode()
    assert SECRET not in detail and "Stored; leave empty to keep it." in detail


def test_a_webhook_to_the_metadata_address_is_refused_next_to_its_field(signed_in, project, settings):
    settings.UNTRACE_ALLOW_PRIVATE_DESTINATIONS = False
    bad = signed_in.post(
        f"/projects/{project.pk}/destinations",
        {"type": "webhook", "name": "hook", "config_url": "http://169.254.169.254/", "enabled": "on"},
    )
    assert bad.status_code == 400
    assert "resolves to 169.254.169.254, a link-local address (set UNTRACE_ALLOW_PRIVATE_DESTINATIONS" in (
        bad.content.decode()
    )
    assert not Destination.objects.filter(project=project).exists()


def test_editing_keeps_stored_credentials_unless_replaced(signed_in, project):
    destination = DestinationFactory(
        project=project, config={"url": "http://127.0.0.1:9/a", "secret": SECRET}
    )
    response = signed_in.post(
        f"/projects/{project.pk}/destinations/{destination.pk}",
        {"name": "renamed", "config_url": "http://127.0.0.1:9/b", "config_secret": "", "enabled": "on"},
    )
    assert response.status_code == 302
    destination.refresh_from_db()
    assert destination.name == "renamed" and destination.config["url"] == "http://127.0.0.1:9/b"
    assert destination.secrets["secret"] == SECRET


def test_test_connection_shows_the_platforms_answer(signed_in, project):
    with running_sink(SECRET) as sink:
        destination = DestinationFactory(project=project, config={"url": sink.url, "secret": SECRET})
        ok = signed_in.post(f"/projects/{project.pk}/destinations/{destination.pk}/test").content.decode()
        assert "Connected" in ok and "accepted" in ok
        sink.mode = "bad"
        failed = signed_in.post(f"/projects/{project.pk}/destinations/{destination.pk}/test").content.decode()
        assert "Failed" in failed and "invalid payload" in failed


def test_a_destination_in_use_is_not_deleted(signed_in, project):
    destination = DestinationFactory(project=project)
    rule = {"name": "all", "conditions": {}, "actions": {"destinations": [str(destination.pk)]}}
    config_save(project_id=project.pk, document={"rules": [rule]}, actor=Actor(), summary="t")
    response = signed_in.post(f"/projects/{project.pk}/destinations/{destination.pk}/delete", follow=True)
    assert "uses this destination (all)" in response.content.decode()
    assert Destination.objects.filter(pk=destination.pk).exists()


def test_send_test_trace_stores_a_span(signed_in, project):
    response = signed_in.post(f"/projects/{project.pk}/test-trace")
    assert response.status_code == 302
    span = Span.objects.get(project=project)
    assert span.model == "gpt-4o-mini" and span.cost is not None


def test_viewers_read_but_cannot_write(client, project):
    viewer = MembershipFactory(organization=project.organization, role="viewer").user
    client.force_login(viewer)
    destination = DestinationFactory(project=project)
    assert client.get(f"/projects/{project.pk}/destinations").status_code == 200
    for url in (
        f"/projects/{project.pk}/destinations",
        f"/projects/{project.pk}/destinations/{destination.pk}/test",
        f"/projects/{project.pk}/destinations/{destination.pk}/delete",
        f"/projects/{project.pk}/test-trace",
        f"/projects/{project.pk}/deliveries/replay",
    ):
        assert client.post(url, {"type": "webhook", "name": "x"}).status_code == 403, url


def test_another_organizations_project_is_not_found(signed_in):
    other = ProjectFactory()
    destination = DestinationFactory(project=other)
    for url in (
        f"/projects/{other.pk}/overview",
        f"/projects/{other.pk}/destinations",
        f"/projects/{other.pk}/destinations/{destination.pk}",
        f"/projects/{other.pk}/deliveries",
    ):
        assert signed_in.get(url).status_code == 404, url


def test_deliveries_page_lists_and_replays_dead_letters(signed_in, project):
    from django.utils import timezone

    destination = DestinationFactory(project=project)
    dead = Delivery.objects.create(
        project=project,
        destination=destination,
        role="primary",
        items=[],
        span_count=3,
        next_attempt_at=timezone.now(),
        expires_at=timezone.now(),
        status="dead",
        last_status=400,
        last_error="webhook answered 400: invalid payload",
    )
    page = signed_in.get(f"/projects/{project.pk}/deliveries?status=dead").content.decode()
    assert "invalid payload" in page and "Replay" in page
    signed_in.post(f"/projects/{project.pk}/deliveries/{dead.pk}/replay")
    dead.refresh_from_db()
    assert dead.status == "pending" and dead.replays == 1


def test_only_a_project_that_routes_nowhere_gets_a_default_destination(signed_in, project):
    first = DestinationFactory(project=project, name="first")
    rule = {"name": "all", "conditions": {}, "actions": {"destinations": [str(first.pk)]}}
    config_save(project_id=project.pk, document={"rules": [rule]}, actor=Actor(), summary="t")
    signed_in.post(
        f"/projects/{project.pk}/destinations",
        {"type": "webhook", "name": "second", "config_url": "http://127.0.0.1:9/x", "enabled": "on"},
    )
    assert active_document(project.pk)[1]["default_destinations"] == []
