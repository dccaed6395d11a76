"""Project settings: signed-webhook ingest endpoints, PII defaults for every destination, erasing a
user or a session, and the project's name."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.models import ROLE_CAN_MANAGE_MEMBERS
from apps.accounts.services import project_rename
from apps.audit.services import actor_from_request
from apps.core.errors import ApiError
from apps.dashboard.budget_forms import budgets_context
from apps.dashboard.context import ProjectPage, project_page, render_project
from apps.ingest.models import WebhookEndpoint
from apps.ingest.webhooks import (
    PREVIOUS_SECRET_GRACE,
    endpoint_create,
    endpoint_delete,
    endpoint_rotate_secret,
    endpoint_update,
)
from apps.privacy.models import Erasure
from apps.privacy.services import erasure_create
from apps.proxy.project_settings import proxy_settings_save, proxy_settings_view
from apps.routing.errors import ConfigError
from apps.routing.pii import DETECTORS, MODES
from apps.routing.services import active_document, config_save
from apps.traces.retention import retention_days

PII_STEP = "redact_pii"
DETECTOR_LABELS = {
    "email": "Email addresses",
    "phone": "Phone numbers",
    "credit_card": "Credit card numbers (Luhn-checked)",
    "iban": "IBANs (mod-97 checked)",
    "us_ssn": "US social security numbers",
    "ip_address": "IP addresses (v4 and v6)",
    "secret": "API keys, tokens and bearer credentials",
}
MODE_LABELS = {
    "mask": "Mask: replace with [REDACTED:EMAIL]",
    "remove": "Remove: replace with nothing",
    "hash": "Hash: replace with [EMAIL:<16 hex>], the same value always gives the same token in this project",
}
_EXAMPLE_URL = "https://<your untrace host>/v1/webhooks/<endpoint id>"
GRACE_HOURS = int(PREVIOUS_SECRET_GRACE.total_seconds() // 3600)


# --- forms -------------------------------------------------------------------------------------


class EndpointForm(forms.Form):
    name = forms.CharField(
        max_length=200,
        label="Name",
        help_text="Who sends to it, e.g. “support bot” or “staging”.",
        error_messages={"required": "Give the endpoint a name."},
    )
    enabled = forms.BooleanField(required=False, initial=True, label="Enabled")


class PiiForm(forms.Form):
    enabled = forms.BooleanField(
        required=False, label="Redact personal data before sending to any destination"
    )
    mode = forms.ChoiceField(
        choices=[(mode, MODE_LABELS.get(mode, mode)) for mode in MODES],
        widget=forms.RadioSelect,
        label="Replace what is found by",
    )
    detectors = forms.MultipleChoiceField(
        choices=[(name, DETECTOR_LABELS.get(name, name)) for name in DETECTORS],
        widget=forms.CheckboxSelectMultiple,
        required=False,
        label="Look for",
    )
    gdpr = forms.BooleanField(
        required=False,
        label="GDPR / CCPA preset",
        help_text="Also pseudonymises user_id and removes IP addresses, including the ip, client_ip "
        "and similar keys of metadata and attributes, whatever the mode.",
    )
    base_version = forms.IntegerField(required=False, widget=forms.HiddenInput, min_value=0)


class ProxyForm(forms.Form):
    """The project's proxy upstreams, fallbacks and provider keys (keys write-only)."""

    openai_upstream = forms.CharField(required=False, max_length=500, label="OpenAI upstream")
    openai_fallback_upstreams = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="OpenAI fallbacks (one URL a line)"
    )
    openai_key = forms.CharField(required=False, widget=forms.PasswordInput, label="OpenAI key")
    clear_openai_key = forms.BooleanField(required=False, label="Remove the stored OpenAI key")
    anthropic_upstream = forms.CharField(required=False, max_length=500, label="Anthropic upstream")
    anthropic_fallback_upstreams = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Anthropic fallbacks (one URL a line)"
    )
    anthropic_key = forms.CharField(required=False, widget=forms.PasswordInput, label="Anthropic key")
    clear_anthropic_key = forms.BooleanField(required=False, label="Remove the stored Anthropic key")

    def changes(self) -> dict[str, Any]:
        data = self.cleaned_data
        changes: dict[str, Any] = {}
        for provider in ("openai", "anthropic"):
            changes[f"{provider}_upstream"] = data[f"{provider}_upstream"].strip()
            changes[f"{provider}_fallback_upstreams"] = [
                line.strip() for line in data[f"{provider}_fallback_upstreams"].splitlines() if line.strip()
            ]
            if data[f"clear_{provider}_key"]:
                changes[f"{provider}_key"] = None
            elif data[f"{provider}_key"]:
                changes[f"{provider}_key"] = data[f"{provider}_key"]
        return changes


class ErasureForm(forms.Form):
    """Erase a user or a session of the project (the same service as POST /v1/privacy/erasures)."""

    kind = forms.ChoiceField(
        choices=[("user", "User id"), ("session", "Session id")],
        widget=forms.RadioSelect,
        initial="user",
        label="Erase by",
    )
    value = forms.CharField(
        max_length=256,
        label="Identifier",
        help_text="Exactly as your spans carry it in user_id or session_id.",
        error_messages={"required": "Give the user id or session id to erase."},
    )


class ProjectRenameForm(forms.Form):
    name = forms.CharField(
        max_length=200, label="Project name", error_messages={"required": "A project needs a name."}
    )


# --- PII defaults in the routing document ------------------------------------------------------------


@dataclass(frozen=True)
class PiiDefaults:
    """The project-level `redact_pii` step of a routing document, as the form shows it."""

    enabled: bool
    mode: str = "mask"
    detectors: tuple[str, ...] = DETECTORS
    gdpr: bool = False
    kept: dict[str, Any] = field(default_factory=dict)  # custom detectors and fields, left as they are

    def initial(self, version: int) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "mode": self.mode,
            "detectors": list(self.detectors),
            "gdpr": self.gdpr,
            "base_version": version,
        }


def _pii_index(steps: list[Any]) -> int | None:
    for i, step in enumerate(steps):
        if isinstance(step, dict) and step.get("type") == PII_STEP:
            return i
    return None


def pii_defaults(document: dict[str, Any]) -> PiiDefaults:
    steps = document.get("transformations") or []
    index = _pii_index(steps)
    if index is None:
        return PiiDefaults(enabled=False)
    step = steps[index]
    return PiiDefaults(
        enabled=True,
        mode=step.get("mode", "mask"),
        detectors=tuple(step.get("detectors", DETECTORS)),
        gdpr=step.get("preset") == "gdpr",
        kept={key: step[key] for key in ("custom", "fields") if key in step},
    )


def with_pii_defaults(
    document: dict[str, Any], *, enabled: bool, mode: str, detectors: list[str], gdpr: bool
) -> tuple[dict[str, Any], int | None]:
    """The document with its project-level redaction step set (or removed), every other
    project-level step left in place; and the index of the step."""
    steps = list(document.get("transformations") or [])
    index = _pii_index(steps)
    if not enabled:
        steps = [s for s in steps if not (isinstance(s, dict) and s.get("type") == PII_STEP)]
        return {**document, "transformations": steps}, None
    step = dict(steps[index]) if index is not None else {"type": PII_STEP}
    step["mode"] = mode
    step["detectors"] = [name for name in DETECTORS if name in detectors]
    if gdpr:
        step["preset"] = "gdpr"
    else:
        step.pop("preset", None)
    if index is None:
        steps.insert(0, step)  # first, so that no later step copies personal data elsewhere
        index = 0
    else:
        steps[index] = step
    return {**document, "transformations": steps}, index


def _pii_summary(before: PiiDefaults, enabled: bool) -> str:
    if not enabled:
        return "Turned off PII redaction for every destination"
    if not before.enabled:
        return "Turned on PII redaction for every destination"
    return "Changed the PII redaction of every destination"


# --- page ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Revealed:
    """A signing secret shown once, after creating an endpoint or rotating its secret."""

    endpoint: WebhookEndpoint
    secret: str
    rotated: bool = False
    previous_valid_until: datetime | None = None


def _endpoint(page: ProjectPage, endpoint_id) -> WebhookEndpoint:
    return get_object_or_404(WebhookEndpoint.objects.for_project(page.project.pk), pk=endpoint_id)


def _ingest_url(request: HttpRequest, endpoint: WebhookEndpoint) -> str:
    return request.build_absolute_uri(reverse("ingest-webhook", kwargs={"endpoint_id": endpoint.pk}))


def _back(page: ProjectPage, section: str) -> HttpResponse:
    return redirect(reverse("dashboard:settings", kwargs={"project_id": page.project.pk}) + f"#{section}")


def _can_manage(page: ProjectPage) -> bool:
    return page.membership.role in ROLE_CAN_MANAGE_MEMBERS


def _render(
    request: HttpRequest,
    page: ProjectPage,
    *,
    status: int = 200,
    endpoint_form: EndpointForm | None = None,
    pii_form: PiiForm | None = None,
    project_form: ProjectRenameForm | None = None,
    proxy_form: ProxyForm | None = None,
    revealed: Revealed | None = None,
    budgets: dict[str, Any] | None = None,
    erasure_form: ErasureForm | None = None,
    erasure: Erasure | None = None,
) -> HttpResponse:
    now = timezone.now()
    endpoints = list(WebhookEndpoint.objects.for_project(page.project.pk).order_by("created_at"))
    rows = [
        {
            "endpoint": e,
            "url": _ingest_url(request, e),
            "previous_valid_until": (
                e.previous_secret_expires_at
                if e.previous_secret_expires_at and e.previous_secret_expires_at > now
                else None
            ),
        }
        for e in endpoints
    ]
    example = revealed.endpoint if revealed else (endpoints[0] if endpoints else None)
    version, document = active_document(page.project.pk)
    live = pii_defaults(document)
    proxy = proxy_settings_view(page.project.pk)
    response = render_project(
        request,
        "dashboard/settings/page.html",
        page,
        "settings",
        status=status,
        endpoint_rows=rows,
        endpoint_form=endpoint_form or EndpointForm(),
        revealed=revealed,
        example_url=_ingest_url(request, example) if example else _EXAMPLE_URL,
        grace_hours=GRACE_HOURS,
        pii_form=pii_form or PiiForm(initial=live.initial(version)),
        pii_live=live,
        pii_version=version,
        pii_other_steps=[
            s.get("type", "?") if isinstance(s, dict) else "?"
            for s in document.get("transformations") or []
            if not (isinstance(s, dict) and s.get("type") == PII_STEP)
        ],
        pii_live_detectors=[DETECTOR_LABELS.get(name, name).lower() for name in live.detectors],
        can_manage=_can_manage(page),
        **(budgets if budgets is not None else budgets_context(request, page)),
        project_form=project_form or ProjectRenameForm(initial={"name": page.project.name}),
        erasure_form=erasure_form or ErasureForm(),
        erasure=erasure,
        retention_days=retention_days(page.project.organization_id),
        proxy=proxy,
        proxy_form=proxy_form
        or ProxyForm(
            initial={
                "openai_upstream": proxy["openai_upstream"],
                "anthropic_upstream": proxy["anthropic_upstream"],
                "openai_fallback_upstreams": "\n".join(proxy["openai_fallback_upstreams"]),
                "anthropic_fallback_upstreams": "\n".join(proxy["anthropic_fallback_upstreams"]),
            }
        ),
    )
    if revealed:
        response["Cache-Control"] = "no-store"  # the secret is shown once, and never from a cache
    return response


@login_required
def settings_view(request: HttpRequest, project_id: str) -> HttpResponse:
    return _render(request, project_page(request, project_id))


# --- webhook endpoints ------------------------------------------------------------------------------


@login_required
@require_POST
def endpoint_create_view(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    form = EndpointForm(request.POST)
    if not form.is_valid():
        return _render(request, page, endpoint_form=form, status=400)
    endpoint, secret = endpoint_create(
        project_id=page.project.pk,
        name=form.cleaned_data["name"],
        enabled=form.cleaned_data["enabled"],
        actor=page.actor,
    )
    messages.success(request, f"Webhook endpoint “{endpoint.name}” created.")
    return _render(request, page, revealed=Revealed(endpoint, secret))


@login_required
@require_POST
def endpoint_rotate_view(request: HttpRequest, project_id: str, endpoint_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    endpoint = _endpoint(page, endpoint_id)
    secret = endpoint_rotate_secret(endpoint=endpoint, actor=page.actor)
    messages.success(request, f"New signing secret for “{endpoint.name}”.")
    return _render(
        request,
        page,
        revealed=Revealed(
            endpoint, secret, rotated=True, previous_valid_until=endpoint.previous_secret_expires_at
        ),
    )


@login_required
@require_POST
def endpoint_toggle_view(request: HttpRequest, project_id: str, endpoint_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    endpoint = _endpoint(page, endpoint_id)
    endpoint_update(
        endpoint=endpoint,
        changes={"enabled": request.POST.get("enabled") == "true"},
        actor=actor_from_request(request),
    )
    if endpoint.enabled:
        messages.success(request, f"“{endpoint.name}” is enabled: signed requests to it are accepted.")
    else:
        messages.success(
            request, f"“{endpoint.name}” is disabled: requests to it get 404 until enabled again."
        )
    return _back(page, "webhooks")


@login_required
@require_POST
def endpoint_delete_view(request: HttpRequest, project_id: str, endpoint_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    endpoint = _endpoint(page, endpoint_id)
    endpoint_delete(endpoint=endpoint, actor=actor_from_request(request))
    messages.success(request, f"Webhook endpoint “{endpoint.name}” deleted.")
    return _back(page, "webhooks")


# --- PII defaults -----------------------------------------------------------------------------------

_PII_FIELDS = {"mode": "mode", "detectors": "detectors", "preset": "gdpr"}


def _pii_error(form: PiiForm, exc: ConfigError, index: int | None) -> None:
    """Put the error next to the field it is about (the whole form when it is elsewhere)."""
    prefix = f"transformations[{index}]."
    name = ""
    if index is not None and exc.field.startswith(prefix):
        name = exc.field.removeprefix(prefix).split("[")[0].split(".")[0]
    if name in _PII_FIELDS:
        form.add_error(_PII_FIELDS[name], exc.message)
    else:
        form.add_error(None, f"{exc.field}: {exc.message}")


@login_required
@require_POST
def pii_view(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    form = PiiForm(request.POST)
    if not form.is_valid():
        return _render(request, page, pii_form=form, status=400)
    version, document = active_document(page.project.pk)
    before = pii_defaults(document)
    data = form.cleaned_data
    proposal, index = with_pii_defaults(
        document, enabled=data["enabled"], mode=data["mode"], detectors=data["detectors"], gdpr=data["gdpr"]
    )
    if proposal == document:
        messages.info(request, "Nothing changed.")
        return _back(page, "pii")
    try:
        saved = config_save(
            project_id=page.project.pk,
            document=proposal,
            actor=page.actor,
            summary=_pii_summary(before, data["enabled"]),
            base_version=data["base_version"],
        )
    except ConfigError as exc:
        _pii_error(form, exc, index)
        return _render(request, page, pii_form=form, status=400)
    except ApiError as exc:
        form.add_error(None, exc.message)
        return _render(request, page, pii_form=form, status=exc.status_code)
    messages.success(request, f"PII defaults saved as routing version {saved.number}.")
    return _back(page, "pii")


# --- privacy ---------------------------------------------------------------------------------------


@login_required
@require_POST
def privacy_erase_view(request: HttpRequest, project_id: str) -> HttpResponse:
    """Owners, admins and members erase; a viewer gets 403."""
    page = project_page(request, project_id, write=True)
    form = ErasureForm(request.POST)
    if not form.is_valid():
        return _render(request, page, erasure_form=form, status=400)
    erasure = erasure_create(
        project_id=page.project.pk,
        kind=form.cleaned_data["kind"],
        value=form.cleaned_data["value"],
        actor=actor_from_request(request),
    )
    return _render(request, page, erasure=erasure)


# --- project ---------------------------------------------------------------------------------------


@login_required
@require_POST
def project_rename_view(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    if not _can_manage(page):
        raise PermissionDenied
    form = ProjectRenameForm(request.POST)
    if form.is_valid():
        try:
            project_rename(project=page.project, name=form.cleaned_data["name"], actor=page.actor)
        except ValueError as exc:
            form.add_error("name", str(exc))
        else:
            messages.success(request, f"Project renamed to “{page.project.name}”.")
            return _back(page, "project")
    return _render(request, page, project_form=form, status=400)


@login_required
@require_POST
def proxy_view(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id, write=True)
    form = ProxyForm(request.POST)
    if form.is_valid():
        try:
            proxy_settings_save(project_id=page.project.pk, changes=form.changes(), actor=page.actor)
        except ConfigError as exc:
            field = exc.field.split("[")[0]
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            messages.success(request, "Proxy settings saved; the proxy uses them within seconds.")
            return _back(page, "proxy")
    return _render(request, page, proxy_form=form, status=400)


urlpatterns = [
    path("projects/<uuid:project_id>/settings", settings_view, name="settings"),
    path("projects/<uuid:project_id>/settings/proxy", proxy_view, name="settings-proxy"),
    path(
        "projects/<uuid:project_id>/settings/webhooks", endpoint_create_view, name="settings-webhook-create"
    ),
    path(
        "projects/<uuid:project_id>/settings/webhooks/<uuid:endpoint_id>/rotate",
        endpoint_rotate_view,
        name="settings-webhook-rotate",
    ),
    path(
        "projects/<uuid:project_id>/settings/webhooks/<uuid:endpoint_id>/toggle",
        endpoint_toggle_view,
        name="settings-webhook-toggle",
    ),
    path(
        "projects/<uuid:project_id>/settings/webhooks/<uuid:endpoint_id>/delete",
        endpoint_delete_view,
        name="settings-webhook-delete",
    ),
    path("projects/<uuid:project_id>/settings/pii", pii_view, name="settings-pii"),
    path("projects/<uuid:project_id>/settings/privacy", privacy_erase_view, name="settings-privacy"),
    path("projects/<uuid:project_id>/settings/project", project_rename_view, name="settings-project"),
]
