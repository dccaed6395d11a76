from django.urls import path

from apps.dashboard import (
    audit_log,
    billing_page,
    budgets_page,
    deliveries,
    destinations,
    organization_delete,
    organizations,
    overview,
    rules,
    settings_page,
    traces,
    views,
)

app_name = "dashboard"

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<uuid:project_id>/", views.project_detail, name="project"),
    path("projects/<uuid:project_id>/keys", views.key_create_view, name="key-create"),
    path("projects/<uuid:project_id>/keys/<uuid:key_id>/revoke", views.key_revoke_view, name="key-revoke"),
    path("projects/<uuid:project_id>/keys/<uuid:key_id>/rotate", views.key_rotate_view, name="key-rotate"),
    path("orgs/<uuid:organization_id>/members", views.organization_members, name="members"),
    path(
        "orgs/<uuid:organization_id>/members/<uuid:membership_id>/role",
        views.member_role_view,
        name="member-role",
    ),
    path(
        "orgs/<uuid:organization_id>/members/<uuid:membership_id>/remove",
        views.member_remove_view,
        name="member-remove",
    ),
    path(
        "orgs/<uuid:organization_id>/invitations/<uuid:invitation_id>/revoke",
        views.invitation_revoke_view,
        name="invitation-revoke",
    ),
    path("orgs/<uuid:organization_id>/projects/new", views.project_new, name="project-new"),
    *overview.urlpatterns,
    *traces.urlpatterns,
    *destinations.urlpatterns,
    *rules.urlpatterns,
    *deliveries.urlpatterns,
    *settings_page.urlpatterns,
    *budgets_page.urlpatterns,
    *organizations.urlpatterns,
    *organization_delete.urlpatterns,
    *billing_page.urlpatterns,
    *audit_log.urlpatterns,
]
