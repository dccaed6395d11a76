"""What every project page shares: the caller's access and the page frame."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.accounts.models import ROLE_CAN_WRITE, Membership, Project
from apps.accounts.selectors import project_get_for_user, projects_for_user
from apps.billing.selectors import warning_level
from apps.billing.services import usage_summary
from apps.routing.services import Actor

# (name, label, url name) of the project tabs, in order.
TABS = (
    ("overview", "Overview", "dashboard:overview"),
    ("traces", "Traces", "dashboard:traces"),
    ("destinations", "Destinations", "dashboard:destinations"),
    ("rules", "Rules", "dashboard:rules"),
    ("deliveries", "Deliveries", "dashboard:deliveries"),
    ("settings", "Settings", "dashboard:settings"),
    ("setup", "Keys & setup", "dashboard:project"),
)


@dataclass(frozen=True)
class ProjectPage:
    project: Project
    membership: Membership

    @property
    def can_write(self) -> bool:
        return self.membership.role in ROLE_CAN_WRITE

    @property
    def actor(self) -> Actor:
        return Actor(user_id=self.membership.user_id)


def project_page(request: HttpRequest, project_id: str, *, write: bool = False) -> ProjectPage:
    """The project if the signed-in user belongs to its organization (404 otherwise);
    with `write`, a viewer gets 403."""
    project, membership = project_get_for_user(user=request.user, project_id=project_id)
    page = ProjectPage(project, membership)
    if write and not page.can_write:
        raise PermissionDenied
    return page


def _quota_banner(request: HttpRequest, page: ProjectPage, context: dict) -> dict | None:
    """The plan-usage warning every project page shows from 80 % of the included traces;
    htmx partials do not show the frame, and a view that has the usage summary passes it."""
    if request.htmx:
        return None
    usage = context.get("usage") or usage_summary(page.project.organization_id)
    level = warning_level(usage)
    return {"level": level, "percent": usage["percent_used"]} if level else None


def render_project(
    request: HttpRequest, template: str, page: ProjectPage, tab: str, status: int = 200, **context
) -> HttpResponse:
    return render(
        request,
        template,
        {
            "project": page.project,
            "membership": page.membership,
            "can_write": page.can_write,
            "quota": _quota_banner(request, page, context),
            "projects": projects_for_user(user=request.user),
            "tabs": TABS,
            "tab": tab,
            **context,
        },
        status=status,
    )
