"""The audit log of a project (its events and its organization's own, as GET /v1/audit-log lists
them) and of a whole organization: filters by action and actor, newest first, "older" paging."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.http import urlencode

from apps.audit.models import AuditEvent
from apps.audit.selectors import (
    UnknownCursor,
    audit_actor_names,
    audit_events_of_organization,
    audit_events_page,
    audit_events_visible,
    audit_facets,
)
from apps.dashboard.context import project_page, render_project
from apps.dashboard.organizations import organization_page, render_organization

PAGE_SIZE = 50
ACTION = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")  # as the API's `action` filter
USER_ID = re.compile(r"^[0-9]{1,18}$")
MASK = "••••••"
STALE_CURSOR = "This link to older events is not valid; start from the newest."
# Detail keys whose values are never shown, should a secret ever reach an event's details.
_SECRET_KEY = re.compile(r"(^|_)(secret|password|token|api_key|key|authorization|credentials?)$", re.I)


class FilterError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


@dataclass(frozen=True)
class Filters:
    action: str = ""
    actor: str = ""  # "user:<id>" or "key:<uuid>"
    before: uuid.UUID | None = None

    @property
    def selector_kwargs(self) -> dict[str, Any]:
        kind, _, value = self.actor.partition(":")
        return {
            "action": self.action or None,
            "actor_user_id": int(value) if kind == "user" else None,
            "actor_key_id": uuid.UUID(value) if kind == "key" else None,
        }

    def query(self, **changes: Any) -> str:
        values = {"action": self.action, "actor": self.actor, **changes}
        return urlencode({k: v for k, v in values.items() if v})


def filters_from(params) -> Filters:
    """The page's query string, checked (FilterError names the bad parameter)."""
    action = params.get("action", "").strip()
    if action and (len(action) > 64 or not ACTION.match(action)):
        raise FilterError("action", "Choose an action from the list, e.g. key.created.")
    actor = params.get("actor", "").strip()
    if actor:
        kind, _, value = actor.partition(":")
        try:
            if kind == "user":
                if not USER_ID.match(value):  # a bigint primary key
                    raise ValueError(value)
            elif kind == "key":
                uuid.UUID(value)
            else:
                raise ValueError(actor)
        except ValueError as exc:
            raise FilterError("actor", "Choose who made the change from the list.") from exc
    before = params.get("before", "").strip()
    try:
        cursor = uuid.UUID(before) if before else None
    except ValueError as exc:
        raise FilterError("before", STALE_CURSOR) from exc
    return Filters(action=action, actor=actor, before=cursor)


# --- rows ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Row:
    event: AuditEvent
    actor: str
    actor_kind: str  # "user", "key" or "system"
    target: str
    changes: list[Change]
    details: list[tuple[str, Any]]


def _masked(key: str, value: Any) -> Any:
    if _SECRET_KEY.search(key) and value not in (None, "", MASK):
        return MASK
    if isinstance(value, dict):
        return {k: _masked(k, v) for k, v in value.items()}
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value) or "—"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_shown(v)}" for k, v in value.items()) or "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def changes_of(details: Any) -> tuple[list[Change], list[tuple[str, str]]]:
    """A before/after diff from `details` ({"before": {...}, "after": {...}}: the fields whose
    value differs) and the other details as (name, text); secret-looking values masked (a
    changed secret shows as changed, never its value)."""
    details = dict(details) if isinstance(details, dict) else {}
    before, after = details.get("before"), details.get("after")
    changes: list[Change] = []
    if isinstance(before, dict) and isinstance(after, dict):
        del details["before"], details["after"]
        for name in [*before, *(k for k in after if k not in before)]:
            old, new = before.get(name), after.get(name)
            if old != new:
                changes.append(Change(name, _shown(_masked(name, old)), _shown(_masked(name, new))))
    rest = [(name.replace("_", " "), _shown(_masked(name, value))) for name, value in details.items()]
    return changes, rest


def rows_of(events: list[AuditEvent], organization_id: uuid.UUID) -> list[Row]:
    users, keys = audit_actor_names(
        organization_id=organization_id,
        user_ids=[e.actor_user_id for e in events if e.actor_user_id],
        key_ids=[e.actor_key_id for e in events if e.actor_key_id],
    )
    rows = []
    for event in events:
        if event.actor_user_id:
            actor, kind = users.get(event.actor_user_id, "a deleted user"), "user"
        elif event.actor_key_id:
            actor, kind = f"API key {keys.get(event.actor_key_id, 'deleted')}", "key"
        else:
            actor, kind = "Untrace", "system"
        target = event.target_type.replace("_", " ")
        name = (event.details or {}).get("name") if isinstance(event.details, dict) else None
        if name:
            target = f"{target} “{name}”"
        changes, details = changes_of(event.details)
        rows.append(Row(event, actor, kind, target.strip(), changes, details))
    return rows


def actor_choices(queryset: QuerySet[AuditEvent], organization_id: uuid.UUID) -> tuple[list[str], list]:
    actions, user_ids, key_ids = audit_facets(queryset)
    users, keys = audit_actor_names(organization_id=organization_id, user_ids=user_ids, key_ids=key_ids)
    actors = sorted(
        [(f"user:{pk}", users.get(pk, f"deleted user {pk}")) for pk in user_ids]
        + [(f"key:{pk}", f"API key {keys.get(pk, 'deleted')}") for pk in key_ids],
        key=lambda choice: choice[1].lower(),
    )
    return actions, actors


# --- views -----------------------------------------------------------------------------------------


def _log_context(
    request: HttpRequest,
    *,
    select: Callable[..., QuerySet[AuditEvent]],
    organization_id: uuid.UUID,
    page_url: str,
) -> tuple[dict[str, Any], int]:
    """The table's rows, filters and paging, or the filter error (status 400). `select` is the
    selector of the log, called without filters for the filter choices and with them for rows."""
    actions, actors = actor_choices(select(), organization_id)
    context: dict[str, Any] = {
        "actions": actions,
        "actors": actors,
        "page_url": page_url,
        "anything": bool(actions),
        "filters": Filters(),
        "rows": [],
        "more_url": "",
    }
    try:
        filters = filters_from(request.GET)
        events, more = audit_events_page(
            select(**filters.selector_kwargs), before=filters.before, limit=PAGE_SIZE
        )
    except FilterError as exc:
        context["error"] = exc
        return context, 400
    except UnknownCursor:
        context["error"] = FilterError("before", STALE_CURSOR)
        return context, 400
    context["filters"] = filters
    context["rows"] = rows_of(events, organization_id)
    context["more_url"] = f"{page_url}?{filters.query(before=events[-1].pk)}" if more else ""
    context["filtered"] = bool(filters.action or filters.actor)
    return context, 200


def _respond(request: HttpRequest, render_page, context: dict[str, Any], status: int) -> HttpResponse:
    if request.htmx and status == 200 and context["filters"].before:
        return render(request, "dashboard/audit/_rows.html", context)  # "load older events"
    return render_page(status=status, **context)


@login_required
def project_audit_log(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id)
    organization_id = page.project.organization_id
    context, status = _log_context(
        request,
        select=partial(audit_events_visible, project_id=page.project.pk, organization_id=organization_id),
        organization_id=organization_id,
        page_url=reverse("dashboard:audit-log", kwargs={"project_id": page.project.pk}),
    )
    return _respond(
        request,
        lambda status, **ctx: render_project(
            request, "dashboard/audit/project.html", page, "settings", status=status, **ctx
        ),
        context,
        status,
    )


@login_required
def organization_audit_log(request: HttpRequest, organization_id: str) -> HttpResponse:
    page = organization_page(request, organization_id)
    context, status = _log_context(
        request,
        select=partial(audit_events_of_organization, organization_id=page.organization.pk),
        organization_id=page.organization.pk,
        page_url=reverse("dashboard:org-audit-log", kwargs={"organization_id": page.organization.pk}),
    )
    context["show_project"] = True  # the organization's log spans its projects
    return _respond(
        request,
        lambda status, **ctx: render_organization(
            request, "dashboard/audit/organization.html", page, status=status, **ctx
        ),
        context,
        status,
    )


urlpatterns = [
    path("projects/<uuid:project_id>/audit-log", project_audit_log, name="audit-log"),
    path("orgs/<uuid:organization_id>/audit-log", organization_audit_log, name="org-audit-log"),
]
