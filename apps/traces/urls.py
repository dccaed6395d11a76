from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from apps.ingest import views as ingest_views
from apps.traces.api import TraceAggregateView, TraceDetailView, TraceListView

_list = TraceListView.as_view()


@csrf_exempt
def traces(request: HttpRequest) -> HttpResponse:
    """/v1/traces: POST ingests one span, GET searches."""
    if request.method == "POST":
        return ingest_views.traces_single(request)
    return _list(request)


# The OpenAPI generator documents the GET side from the DRF view; POST is added
# by apps.ingest.openapi with the other ingest endpoints.
traces.cls = TraceListView
traces.initkwargs = {}

urlpatterns = [
    path("v1/traces", traces, name="traces"),
    path("v1/traces/aggregate", TraceAggregateView.as_view(), name="traces-aggregate"),
    path("v1/traces/<path:trace_id>", TraceDetailView.as_view(), name="trace-detail"),
]
