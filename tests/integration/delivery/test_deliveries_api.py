import uuid

import pytest
from django.utils import timezone

from apps.delivery.models import Delivery
from apps.delivery.services import deliver_due
from tests.factories import DestinationFactory
from tests.integration.delivery.conftest import spans
from tests.integration.routing.conftest import error
from workers.tasks.routing import route_batch

pytestmark = pytest.mark.django_db


@pytest.fixture
def routed(api, hook, sink, ingest):
    document = {"rules": [{"name": "all", "conditions": {}, "actions": {"destinations": [str(hook.pk)]}}]}
    assert api.put("/v1/routing/config", document, format="json").status_code == 200

    def run(batch_spans):
        batch = ingest(batch_spans)
        assert route_batch(str(batch.pk))
        return Delivery.objects.get(batch_id=batch.pk)

    return run


def test_ledger_lists_and_filters_deliveries(api, hook, sink, routed):
    delivered = routed(spans(2, prefix="a"))
    deliver_due(hook.pk)
    sink.mode = "bad"
    dead = routed(spans(1, prefix="b"))
    deliver_due(hook.pk)
    listed = api.get("/v1/deliveries").json()["results"]
    assert [d["id"] for d in listed] == [str(dead.pk), str(delivered.pk)]
    assert [d["status"] for d in listed] == ["dead", "delivered"]
    only_dead = api.get("/v1/deliveries", {"status": "dead"}).json()["results"]
    assert [d["id"] for d in only_dead] == [str(dead.pk)]
    assert only_dead[0]["last_status"] == 400 and "invalid payload" in only_dead[0]["last_error"]
    by_trace = api.get("/v1/deliveries", {"trace_id": "t-a1"}).json()["results"]
    assert [(d["id"], d["destination"], d["attempts"]) for d in by_trace] == [
        (str(delivered.pk), str(hook.pk), 1)
    ]
    assert api.get("/v1/deliveries", {"destination": str(uuid.uuid4())}).json()["results"] == []


def test_replay_one_and_by_filter(api, hook, sink, routed):
    sink.mode = "bad"
    first, second = routed(spans(1, prefix="r")), routed(spans(1, prefix="q"))
    deliver_due(hook.pk)
    sink.mode = "ok"
    replayed = api.post(f"/v1/deliveries/{first.pk}/replay")
    assert replayed.status_code == 200, replayed.content
    assert replayed.json()["status"] == "pending" and replayed.json()["replays"] == 1
    assert api.post("/v1/deliveries/replay", {"destination": str(hook.pk)}, format="json").json() == {
        "replayed": 1
    }
    deliver_due(hook.pk)
    assert sink.delivered == {"r0", "q0"}
    assert set(Delivery.objects.values_list("status", flat=True)) == {"delivered"}
    body = error(api.post(f"/v1/deliveries/{second.pk}/replay"), 400)
    assert "only dead-lettered deliveries" in body["message"]


def test_bad_filters_and_other_tenants(api, routed):
    other = DestinationFactory()
    foreign = Delivery.objects.create(
        project=other.project,
        destination=other,
        role="primary",
        items=[],
        span_count=0,
        next_attempt_at=timezone.now(),
        expires_at=timezone.now(),
        status="dead",
    )
    error(api.get(f"/v1/deliveries/{foreign.pk}"), 404, "not_found")
    error(api.post(f"/v1/deliveries/{foreign.pk}/replay"), 404, "not_found")
    assert api.post("/v1/deliveries/replay", {}, format="json").json() == {"replayed": 0}
    assert error(api.get("/v1/deliveries", {"status": "lost"}), 400)["details"]["field"] == "status"
    assert error(api.get("/v1/deliveries", {"since": "yesterday"}), 400)["details"]["field"] == "since"
    assert error(api.get("/v1/deliveries", {"colour": "red"}), 400)["details"]["field"] == "colour"
    assert error(api.post("/v1/deliveries/replay", [1], format="json"), 400)["details"]["field"] == "body"


def test_destination_health_and_metrics(api, client, hook, sink, routed):
    routed(spans(3, prefix="h"))
    health = api.get(f"/v1/destinations/{hook.pk}").json()["health"]
    assert health["circuit"] == "closed" and health["pending_spans"] == 3 and health["lag_seconds"] >= 0
    text = client.get("/metrics").content.decode()
    assert f'untrace_delivery_queue_depth{{destination="{hook.pk}"}} 3.0' in text
    assert f'untrace_project_backlog_spans{{project="{hook.project_id}"}} 3.0' in text
    deliver_due(hook.pk)
    health = api.get(f"/v1/destinations/{hook.pk}").json()["health"]
    assert health["pending_spans"] == 0 and health["success_rate_24h"] == 1.0
    text = client.get("/metrics").content.decode()
    assert f'untrace_delivery_spans_total{{destination="{hook.pk}",outcome="delivered"}} 3.0' in text


def test_test_connection_reports_the_platforms_answer(api, hook, sink):
    answer = api.post(f"/v1/destinations/{hook.pk}/test").json()
    assert answer["ok"] is True and answer["status"] == 200 and answer["message"] == "accepted"
    assert answer["span_id"] in sink.delivered
    sink.mode = "bad"
    answer = api.post(f"/v1/destinations/{hook.pk}/test").json()
    assert (answer["ok"], answer["status"]) == (False, 400) and "invalid payload" in answer["body"]
    assert not Delivery.objects.exists()


def test_test_connection_to_an_unreachable_destination(api, project):
    dead = DestinationFactory(project=project, config={"url": "http://127.0.0.1:9/hook"})
    answer = api.post(f"/v1/destinations/{dead.pk}/test").json()
    assert answer["ok"] is False and answer["status"] is None and answer["message"].startswith("unreachable")


def test_aggregate_by_destination_counts_the_spans_each_one_received(api, hook, sink, routed, project):
    backup = DestinationFactory(project=project, name="other")
    routed(spans(3, prefix="g"))
    deliver_due(hook.pk)
    response = api.get("/v1/traces/aggregate", {"group_by": "destination"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["group_by"] == "destination" and body["totals"]["count"] == 3
    (group,) = body["groups"]
    assert (group["key"], group["name"], group["count"]) == (str(hook.pk), "hook", 3)
    assert set(group["latency_ms"]) == {"p50", "p95", "p99"}
    filtered = api.get("/v1/traces/aggregate", {"group_by": "destination", "trace_id": "t-g1"}).json()
    assert filtered["groups"][0]["count"] == 1
    assert str(backup.pk) not in {g["key"] for g in body["groups"]}


def test_the_portable_aggregation_matches_the_postgresql_one(hook, sink, routed, project):
    from apps.delivery.selectors import _by_destination_in_python, spans_by_destination
    from apps.traces.models import Span

    routed(spans(4, prefix="p"))
    deliver_due(hook.pk)
    spans_qs = Span.objects.for_project(project.pk)
    (row,) = _by_destination_in_python(project.pk, spans_qs)
    (group,) = spans_by_destination(project_id=project.pk, spans=spans_qs)
    assert row[0] == hook.pk and row[1] == group["count"] == 4
    assert row[5] == group["total_tokens"]
