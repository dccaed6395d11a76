from django.urls import path

from apps.ingest import views

urlpatterns = [
    path("v1/traces/batch", views.traces_batch, name="ingest-batch"),
    path("v1/webhooks/<str:endpoint_id>", views.webhook, name="ingest-webhook"),
    path("otlp/v1/traces", views.otlp_traces, name="ingest-otlp"),
]
