import pytest

from apps.routing.batches import route_batch_plans
from apps.routing.sampling import trace_fraction
from apps.traces.models import IngestBatch
from workers.tasks.routing import route_batch

pytestmark = pytest.mark.django_db


def span(span_id, trace_id, **fields):
    return {"id": span_id, "trace_id": trace_id, "model": "gpt-4o-mini", "provider": "openai", **fields}


@pytest.fixture
def sampled(api, destinations):
    primary, secondary = destinations
    document = {
        "rules": [{"name": "all", "conditions": {}, "actions": {"destinations": [str(primary.pk)]}}],
        "sampling": {"rate": 0.001, "keep_errors": True},
    }
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    return primary


def latest_batch() -> IngestBatch:
    return IngestBatch.objects.order_by("-created_at").first()


def test_a_late_error_keeps_the_spans_earlier_batches_dropped(sampled, ingest):
    assert trace_fraction("trace-late") >= 0.001 and trace_fraction("trace-quiet") >= 0.001
    ingest([span("a", "trace-late"), span("q", "trace-quiet")])
    first = latest_batch()
    plans = route_batch_plans(first.pk)
    assert all(not p.targets and p.dropped for p in plans.plans)
    assert route_batch(str(first.pk)) is True

    ingest([span("b", "trace-late", error={"type": "Timeout", "message": "upstream timed out"})])
    second = latest_batch()
    routing = route_batch_plans(second.pk)
    (plan,) = routing.plans
    assert [t.destination_id for t in plan.targets] == [str(sampled.pk)]
    assert plan.targets[0].decision.policy == "error"
    assert [p.span["id"] for p in routing.backfill] == ["a"]
    assert routing.backfill[0].targets[0].destination_id == str(sampled.pk)


def test_spans_of_a_trace_not_yet_routed_are_judged_with_the_whole_trace(sampled, ingest):
    ingest([span("x1", "trace-x")])
    unrouted = latest_batch()
    ingest([span("x2", "trace-x", error={"type": "E", "message": "m"})])
    # The first batch, routed after the second arrived, already sees the error.
    (plan,) = route_batch_plans(unrouted.pk).plans
    assert plan.targets and plan.targets[0].decision.policy == "error"


def test_route_task_is_idempotent(sampled, ingest):
    ingest([span("a", "t")])
    batch = latest_batch()
    assert route_batch(str(batch.pk)) is True
    assert route_batch(str(batch.pk)) is False
    assert route_batch_plans(batch.pk) is None


def test_transformations_see_the_sending_key_and_project(api, api_key, project, destinations, ingest):
    from apps.routing.router import render

    enrich = {"type": "set", "path": "metadata.sent_by", "from": "context.api_key.name"}
    document = {
        "rules": [
            {
                "name": "all",
                "conditions": {},
                "actions": {"destinations": [str(destinations[0].pk)], "transformations": [enrich]},
            }
        ]
    }
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    ingest([span("k1", "t-k")])
    batch = latest_batch()
    assert batch.api_key_id == api_key.pk
    routing = route_batch_plans(batch.pk)
    assert routing.context.values["project"] == {"id": str(project.pk), "name": project.name}
    (plan,) = routing.plans
    payload, report = render(routing.live.config, plan, plan.targets[0], routing.context)
    assert payload["metadata"]["sent_by"] == api_key.name
    assert report.changed == ["metadata.sent_by"]
