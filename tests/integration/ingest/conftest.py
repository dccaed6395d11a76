from __future__ import annotations

import pytest

from apps.ingest.limits import span_limits


@pytest.fixture
def key(api_key) -> str:
    """The usable secret of a key with every scope on `project`."""
    return api_key.secret


@pytest.fixture
def routed(monkeypatch) -> list:
    """Batch ids handed to the route task (the broker is never called)."""
    calls: list = []
    monkeypatch.setattr("apps.traces.store.enqueue_routing", lambda *, batch_id: calls.append(batch_id))
    return calls


@pytest.fixture
def limits(settings):
    """Override UNTRACE_MAX_* settings; the cached SpanLimits is rebuilt before and after."""
    span_limits.cache_clear()
    yield settings
    span_limits.cache_clear()
