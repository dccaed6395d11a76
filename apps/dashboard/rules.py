"""Routing rule pages: the rules in evaluation order, the visual builder with a
live dry-run, project defaults, and the version history with rollback."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import path
from django.views.decorators.http import require_POST

from apps.core.errors import ApiError
from apps.dashboard.context import ProjectPage, project_page, render_project
from apps.dashboard.rule_forms import (
    FIELDS,
    OPERATOR_CHOICES,
    PII_MODES,
    Builder,
    Row,
    actions_summary,
    conditions_summary,
    parse_number,
)
from apps.destinations.models import Destination
from apps.routing.dry_run import dry_run
from apps.routing.errors import ConfigError
from apps.routing.models import RoutingConfigVersion
from apps.routing.services import (
    active_document,
    config_rollback,
    config_save,
    rule_delete,
    rule_move,
    rule_save,
)
from apps.traces.selectors import recent_documents

DRY_RUN_TRACES = 20
NEW_RULE_JSON = {
    "name": "",
    "enabled": True,
    "priority": 100,
    "conditions": {"all": [{"field": "model", "operator": "glob", "value": "gpt-4*"}]},
    "actions": {"destinations": []},
}


def _destinations(page: ProjectPage) -> list[Destination]:
    return list(Destination.objects.for_project(page.project.pk).order_by("name"))


def _find_rule(document: dict[str, Any], rule_id: uuid.UUID) -> dict[str, Any]:
    for rule in document["rules"]:
        if rule.get("id") == str(rule_id):
            return rule
    raise Http404("No such rule.")


def _rule_json(rule: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in rule.items() if k != "id"}, indent=2, ensure_ascii=False)


# --- the list ----------------------------------------------------------------------------------


def _render_list(
    request: HttpRequest,
    page: ProjectPage,
    *,
    settings_errors: dict[str, str] | None = None,
    settings_values: dict[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    version, document = active_document(page.project.pk)
    destinations = _destinations(page)
    names = {str(d.pk): d.name for d in destinations}
    ordered = sorted(enumerate(document["rules"]), key=lambda item: (item[1].get("priority", 100), item[0]))
    rows = [
        {
            "rule": rule,
            "conditions": conditions_summary(rule.get("conditions")),
            "actions": actions_summary(rule.get("actions"), names),
            "first": position == 0,
            "last": position == len(ordered) - 1,
        }
        for position, (_, rule) in enumerate(ordered)
    ]
    sampling = document.get("sampling")
    values = settings_values or {
        "default_destinations": [str(d) for d in document.get("default_destinations") or []],
        "sampling_rate": (
            f"{round(sampling.get('rate', 1.0) * 100, 6):g}" if isinstance(sampling, dict) else ""
        ),
    }
    return render_project(
        request,
        "dashboard/rules/list.html",
        page,
        "rules",
        status=status,
        version=version,
        rows=rows,
        destinations=destinations,
        defaults_summary=", ".join(
            names.get(str(d), "unknown destination") for d in document["default_destinations"]
        ),
        settings_values=values,
        settings_errors=settings_errors or {},
    )


@login_required
def rule_list(request: HttpRequest, project_id: str) -> HttpResponse:
    return _render_list(request, project_page(request, project_id))


@login_required
@require_POST
def rules_settings(request: HttpRequest, project_id: str) -> HttpResponse:
    """Default destinations and the project sampling rate: the whole document saved with the change."""
    page = project_page(request, project_id, write=True)
    version, document = active_document(page.project.pk)
    chosen = request.POST.getlist("default_destinations")
    raw_rate = request.POST.get("sampling_rate", "").strip()
    errors: dict[str, str] = {}
    sampling = None
    if raw_rate:
        try:
            percent = parse_number(raw_rate)
        except ValueError:
            percent = -1
        if not 0.1 <= percent <= 100:
            errors["sampling_rate"] = (
                "Enter a percent from 0.1 to 100, or leave it empty to keep every trace."
            )
        else:
            current = document.get("sampling") if isinstance(document.get("sampling"), dict) else {}
            sampling = {**current, "rate": round(percent / 100, 8)}
    base = request.POST.get("base_version", "")
    if not errors:
        proposal = {**document, "default_destinations": chosen, "sampling": sampling}
        if proposal == document:
            messages.info(request, "Nothing changed.")
            return redirect("dashboard:rules", project_id=page.project.pk)
        try:
            saved = config_save(
                project_id=page.project.pk,
                document=proposal,
                actor=page.actor,
                summary="Changed default destinations and sampling",
                base_version=int(base) if base.isdigit() else None,
            )
        except ConfigError as exc:
            key = "sampling_rate" if exc.field.startswith("sampling") else "default_destinations"
            errors[key] = exc.message
        except ApiError as exc:
            errors["settings"] = exc.message
        else:
            messages.success(request, f"Defaults saved as version {saved.number}.")
            return redirect("dashboard:rules", project_id=page.project.pk)
    return _render_list(
        request,
        page,
        settings_errors=errors,
        settings_values={"default_destinations": chosen, "sampling_rate": raw_rate},
        status=409 if "settings" in errors else 400,
    )


@login_required
@require_POST
def rule_toggle(request: HttpRequest, project_id: str, rule_id: uuid.UUID) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    _, document = active_document(page.project.pk)
    rule = _find_rule(document, rule_id)
    enabled = rule.get("enabled", True) is False
    try:
        _, version = rule_save(
            project_id=page.project.pk, rule={**rule, "enabled": enabled}, actor=page.actor, rule_id=rule_id
        )
    except (ConfigError, ApiError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    else:
        state = "enabled" if enabled else "disabled"
        messages.success(request, f"Rule “{rule.get('name')}” {state} (version {version.number}).")
    return redirect("dashboard:rules", project_id=page.project.pk)


@login_required
@require_POST
def rule_move_view(request: HttpRequest, project_id: str, rule_id: uuid.UUID) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    _, document = active_document(page.project.pk)
    rule = _find_rule(document, rule_id)
    offset = -1 if request.POST.get("direction") == "up" else 1
    try:
        version = rule_move(project_id=page.project.pk, rule_id=rule_id, offset=offset, actor=page.actor)
    except (ConfigError, ApiError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    else:
        if version is not None:
            messages.success(request, f"Rule “{rule.get('name')}” moved (version {version.number}).")
    return redirect("dashboard:rules", project_id=page.project.pk)


@login_required
@require_POST
def rule_delete_view(request: HttpRequest, project_id: str, rule_id: uuid.UUID) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    _, document = active_document(page.project.pk)
    rule = _find_rule(document, rule_id)
    try:
        version = rule_delete(project_id=page.project.pk, rule_id=rule_id, actor=page.actor)
    except (ConfigError, ApiError) as exc:
        messages.error(request, getattr(exc, "message", str(exc)))
    else:
        messages.success(request, f"Rule “{rule.get('name')}” deleted (version {version.number}).")
    return redirect("dashboard:rules", project_id=page.project.pk)


# --- the builder -------------------------------------------------------------------------------


def _render_builder(
    request: HttpRequest,
    page: ProjectPage,
    *,
    builder: Builder,
    rule: dict[str, Any] | None,
    rule_json: str,
    json_error: str | None = None,
    status: int = 200,
) -> HttpResponse:
    version, _ = active_document(page.project.pk)
    return render_project(
        request,
        "dashboard/rules/builder.html",
        page,
        "rules",
        status=status,
        version=version,
        rule=rule,
        b=builder,
        destinations=_destinations(page),
        fields=FIELDS,
        operators=OPERATOR_CHOICES,
        pii_modes=PII_MODES,
        rule_json=rule_json,
        json_error=json_error,
        json_open=json_error is not None,
    )


@login_required
def rule_builder(request: HttpRequest, project_id: str, rule_id: uuid.UUID | None = None) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    _, document = active_document(page.project.pk)
    rule = _find_rule(document, rule_id) if rule_id is not None else None
    stored_json = _rule_json(rule) if rule else json.dumps(NEW_RULE_JSON, indent=2)
    if request.method != "POST":
        builder = Builder.from_rule(rule) if rule else Builder.new()
        return _render_builder(request, page, builder=builder, rule=rule, rule_json=stored_json)

    if request.POST.get("mode") == "json":
        text = request.POST.get("rule_json", "")
        builder = Builder.from_rule(rule) if rule else Builder.new()
        try:
            candidate = json.loads(text)
        except ValueError as exc:
            error = f"This is not valid JSON: {exc}"
        else:
            try:
                saved, version = rule_save(
                    project_id=page.project.pk, rule=candidate, actor=page.actor, rule_id=rule_id
                )
            except ConfigError as exc:
                error = f"{exc.field}: {exc.message}"
            except ApiError as exc:
                error = exc.message
            else:
                messages.success(request, f"Rule “{saved['name']}” saved as version {version.number}.")
                return redirect("dashboard:rules", project_id=page.project.pk)
        return _render_builder(
            request, page, builder=builder, rule=rule, rule_json=text, json_error=error, status=400
        )

    builder = Builder.from_post(request.POST)
    candidate = builder.to_rule()
    if candidate is not None:
        try:
            saved, version = rule_save(
                project_id=page.project.pk, rule=candidate, actor=page.actor, rule_id=rule_id
            )
        except ConfigError as exc:
            builder.add_config_error(exc.field, exc.message)
        except ApiError as exc:
            builder.errors["rule"] = exc.message
        else:
            messages.success(request, f"Rule “{saved['name']}” saved as version {version.number}.")
            return redirect("dashboard:rules", project_id=page.project.pk)
    return _render_builder(
        request,
        page,
        builder=builder,
        rule=rule,
        rule_json=json.dumps(candidate, indent=2, ensure_ascii=False) if candidate else stored_json,
        status=400,
    )


@login_required
def rule_row(request: HttpRequest, project_id: str) -> HttpResponse:
    """A blank row of the builder (condition, split or metadata), for htmx to append."""
    page = project_page(request, project_id, write=True)
    kind = request.GET.get("kind")
    rows = {
        "condition": ("dashboard/rules/_condition_row.html", {"field": "model", "operator": "eq"}),
        "split": ("dashboard/rules/_split_row.html", {}),
        "metadata": ("dashboard/rules/_metadata_row.html", {}),
    }
    if kind not in rows:
        return HttpResponse("")
    template, values = rows[kind]
    return render_project(
        request,
        template,
        page,
        "rules",
        row=Row(values),
        fields=FIELDS,
        operators=OPERATOR_CHOICES,
        destinations=_destinations(page),
        focus=True,
    )


def _error_list(builder: Builder) -> list[str]:
    labels = {"name": "Name", "priority": "Priority", "sampling_rate": "Sampling rate"}
    found = [
        f"{labels.get(key, key.replace('_', ' ').capitalize())}: {msg}" for key, msg in builder.errors.items()
    ]
    for title, rows in (
        ("Condition", builder.conditions),
        ("Split", builder.split),
        ("Metadata", builder.metadata),
    ):
        for i, row in enumerate(rows, start=1):
            found.extend(f"{title} {i}, {part}: {msg}" for part, msg in row.errors.items())
    return found


@login_required
@require_POST
def rule_dry_run(request: HttpRequest, project_id: str) -> HttpResponse:
    """Routing of the recent traces with the rule being edited in place of (or next to) the live rules.
    Nothing is saved or sent."""
    page = project_page(request, project_id, write=True)
    builder = Builder.from_post(request.POST)
    candidate = builder.to_rule()
    context: dict[str, Any] = {"errors": [], "result": None}
    if candidate is not None:
        _, document = active_document(page.project.pk)
        try:
            rule_id = str(uuid.UUID(request.POST.get("rule_id", "")))
        except ValueError:
            rule_id = str(uuid.uuid4())
        rules = [dict(r) for r in document["rules"]]
        index = next((i for i, r in enumerate(rules) if r.get("id") == rule_id), len(rules))
        rules[index : index + 1] = [{"id": rule_id, **candidate}]
        try:
            result = dry_run(
                project=page.project,
                spans=recent_documents(project_id=page.project.pk, traces=DRY_RUN_TRACES),
                document={**document, "rules": rules},
            )
        except ConfigError as exc:
            prefix = f"rules[{index}]."
            if exc.field.startswith(prefix):
                builder.add_config_error(exc.field.removeprefix(prefix), exc.message)
            else:
                builder.errors["rule"] = f"{exc.field}: {exc.message}"
        else:
            context.update(_present(result, rule_id, _names(page)))
    context["errors"] = _error_list(builder)
    return render_project(request, "dashboard/rules/_dry_run.html", page, "rules", **context)


POLICY_LABELS = {
    "rate": "by the sampling rate",
    "error": "kept: an error",
    "latency": "kept: slow",
    "cost": "by cost",
    "no_sampling": "no sampling",
}


def _percent(rate: float) -> str:
    return f"{round(rate * 100, 4):g} %"


def _present(result: dict[str, Any], rule_id: str, names: dict[str, str]) -> dict[str, Any]:
    """The dry-run result with what the panel shows: names, percents and pretty JSON."""
    spans = matched = 0
    for trace in result["traces"]:
        for span in trace["spans"]:
            spans += 1
            span["this_rule"] = any(r["id"] == rule_id for r in span["matched_rules"])
            matched += span["this_rule"]
            for target in span["destinations"]:
                target["rate"] = _percent(target["sampling"]["rate"])
                target["policy"] = POLICY_LABELS.get(
                    target["sampling"]["policy"], target["sampling"]["policy"]
                )
                target["payload_json"] = json.dumps(target["payload"], indent=2, ensure_ascii=False)
                target["diff_json"] = json.dumps(target["diff"], indent=2, ensure_ascii=False)
            for dropped in span["sampled_out"]:
                dropped["name"] = names.get(dropped["destination_id"], dropped["destination_id"])
                dropped["rate"] = _percent(dropped["sampling"]["rate"])
                dropped["policy"] = POLICY_LABELS.get(
                    dropped["sampling"]["policy"], dropped["sampling"]["policy"]
                )
            span["disabled_names"] = [names.get(d, d) for d in span["disabled_destinations"]]
    return {"result": result, "rule_id": rule_id, "span_count": spans, "matched_count": matched}


def _names(page: ProjectPage) -> dict[str, str]:
    return {str(d.pk): d.name for d in _destinations(page)}


# --- history -----------------------------------------------------------------------------------


@login_required
def rule_versions(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id)
    live, _ = active_document(page.project.pk)
    versions = (
        RoutingConfigVersion.objects.for_project(page.project.pk)
        .select_related("created_by", "created_by_key")
        .order_by("-number")[:200]
    )
    rows = [(v, json.dumps(v.changes, indent=2, ensure_ascii=False)) for v in versions]
    return render_project(request, "dashboard/rules/versions.html", page, "rules", rows=rows, live=live)


@login_required
@require_POST
def rule_rollback(request: HttpRequest, project_id: str, number: int) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    try:
        version = config_rollback(project_id=page.project.pk, number=number, actor=page.actor)
    except ApiError as exc:
        if exc.status_code == 404:
            raise Http404(exc.message) from exc
        messages.error(request, exc.message)
        return redirect("dashboard:rule-versions", project_id=page.project.pk)
    messages.success(
        request, f"Rolled back to version {number}: the live configuration is now version {version.number}."
    )
    return redirect("dashboard:rules", project_id=page.project.pk)


urlpatterns = [
    path("projects/<uuid:project_id>/rules", rule_list, name="rules"),
    path("projects/<uuid:project_id>/rules/settings", rules_settings, name="rules-settings"),
    path("projects/<uuid:project_id>/rules/new", rule_builder, name="rule-new"),
    path("projects/<uuid:project_id>/rules/row", rule_row, name="rule-row"),
    path("projects/<uuid:project_id>/rules/dry-run", rule_dry_run, name="rule-dry-run"),
    path("projects/<uuid:project_id>/rules/versions", rule_versions, name="rule-versions"),
    path(
        "projects/<uuid:project_id>/rules/versions/<int:number>/rollback", rule_rollback, name="rule-rollback"
    ),
    path("projects/<uuid:project_id>/rules/<uuid:rule_id>", rule_builder, name="rule-edit"),
    path("projects/<uuid:project_id>/rules/<uuid:rule_id>/toggle", rule_toggle, name="rule-toggle"),
    path("projects/<uuid:project_id>/rules/<uuid:rule_id>/move", rule_move_view, name="rule-move"),
    path("projects/<uuid:project_id>/rules/<uuid:rule_id>/delete", rule_delete_view, name="rule-delete"),
]
