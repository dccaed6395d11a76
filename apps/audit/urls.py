from django.urls import path

from apps.audit.api import AuditLogView

urlpatterns = [path("v1/audit-log", AuditLogView.as_view(), name="audit-log")]
