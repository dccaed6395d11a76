from django.urls import path

from apps.dashboard import deliveries, destinations, overview, rules, settings_page, traces, views

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<uuid:project_id>/", views.project_detail, name="project"),
    path("projects/<uuid:project_id>/keys", views.key_create_view, name="key-create"),
    path("projects/<uuid:project_id>/keys/<uuid:key_id>/revoke", views.key_revoke_view, name="key-revoke"),
    path("orgs/<uuid:organization_id>/members", views.organization_members, name="members"),
    path("orgs/<uuid:organization_id>/projects/new", views.project_new, name="project-new"),
    *overview.urlpatterns,
    *traces.urlpatterns,
    *destinations.urlpatterns,
    *rules.urlpatterns,
    *deliveries.urlpatterns,
    *settings_page.urlpatterns,
]
