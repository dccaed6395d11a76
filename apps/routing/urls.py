from django.urls import path

from apps.routing import api

urlpatterns = [
    path("rules", api.RuleListView.as_view(), name="routing-rules"),
    path("rules/<str:rule_id>", api.RuleDetailView.as_view(), name="routing-rule"),
    path("config", api.ConfigView.as_view(), name="routing-config"),
    path("versions", api.VersionListView.as_view(), name="routing-versions"),
    path("versions/<str:number>", api.VersionDetailView.as_view(), name="routing-version"),
    path("versions/<str:number>/rollback", api.RollbackView.as_view(), name="routing-rollback"),
    path("dry-run", api.DryRunView.as_view(), name="routing-dry-run"),
]
