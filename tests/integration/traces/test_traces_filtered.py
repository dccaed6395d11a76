"""traces_filtered and trace_summaries: traces found by any of their spans, with per-trace totals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.traces.selectors import SpanFilters, trace_summaries, traces_filtered
from tests.factories import ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def traces(ingest):
    ingest(
        [
            {
                "id": "a",
                "trace_id": "ta",
                "kind": "agent",
                "start_time": "2025-01-15T10:00:00Z",
                "end_time": "2025-01-15T10:00:05Z",
            },
            {
                "id": "a1",
                "trace_id": "ta",
                "parent_id": "a",
                "model": "gpt-4o",
                "start_time": "2025-01-15T10:00:01Z",
                "end_time": "2025-01-15T10:00:02Z",
                "response": {"usage": {"prompt_tokens": 100, "completion_tokens": 20}},
                "metrics": {"estimated_cost": 0.25},
            },
            {
                "id": "a2",
                "trace_id": "ta",
                "parent_id": "a",
                "kind": "tool",
                "model": "gpt-4o-mini",
                "start_time": "2025-01-15T10:00:02Z",
                "error": {"type": "Boom", "message": "failed"},
            },
            {"id": "b", "trace_id": "tb", "model": "claude-3-5-haiku", "start_time": "2025-01-15T11:00:00Z"},
        ]
    )


def ids(queryset) -> list[str]:
    return list(queryset.order_by("start_time").values_list("span_id", flat=True))


def test_roots_of_traces_with_a_matching_span(project, traces):
    assert ids(traces_filtered(project_id=project.pk, filters=SpanFilters())) == ["a", "b"]
    assert ids(traces_filtered(project_id=project.pk, filters=SpanFilters(model="gpt-4o"))) == ["a"]
    assert ids(traces_filtered(project_id=project.pk, filters=SpanFilters(status="error"))) == ["a"]
    assert ids(traces_filtered(project_id=project.pk, filters=SpanFilters(kind="llm"))) == ["a", "b"]
    assert ids(traces_filtered(project_id=project.pk, filters=SpanFilters(model="none"))) == []
    assert ids(traces_filtered(project_id=ProjectFactory().pk, filters=SpanFilters())) == []


def test_summaries_add_up_every_span_of_each_trace(project, traces):
    summaries = trace_summaries(project_id=project.pk, trace_ids=["ta", "tb", "unknown"])
    assert set(summaries) == {"ta", "tb"}
    ta = summaries["ta"]
    assert (ta["spans"], ta["errors"], ta["total_tokens"]) == (3, 1, 120)
    assert ta["cost"] == Decimal("0.25")
    assert ta["duration_ms"] == 5000
    assert ta["models"] == ["gpt-4o", "gpt-4o-mini"]
    assert summaries["tb"]["duration_ms"] is None and summaries["tb"]["spans"] == 1
