"""Trace explorer: traces filtered like the API's span search, and one trace as a
timing waterfall with each span's chat, response, metadata and delivery status."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.urls import path
from django.utils import timezone
from rest_framework.request import Request

from apps.core.errors import ApiError
from apps.dashboard.context import project_page, render_project
from apps.delivery.selectors import deliveries_filtered
from apps.traces.api import KINDS, SpanFilterParams, SpanPagination
from apps.traces.selectors import trace_summaries, trace_tree, traces_filtered
from apps.traces.store import storable_text

# The quick time ranges of the filter form: value, label, length.
RANGES = (
    ("1h", "Last hour", timedelta(hours=1)),
    ("24h", "Last 24 hours", timedelta(hours=24)),
    ("7d", "Last 7 days", timedelta(days=7)),
    ("30d", "Last 30 days", timedelta(days=30)),
)
# The GET fields of the filter form, each read by `SpanFilterParams` (`range` excepted).
FIELDS = (
    "range",
    "start",
    "end",
    "model",
    "provider",
    "status",
    "kind",
    "tag",
    "user_id",
    "session_id",
    "min_cost",
    "max_cost",
    "min_latency_ms",
    "max_latency_ms",
    "q",
)


def _messages_of(detail: Any) -> list[str]:
    """The flat messages of a DRF error detail (a list's item errors come as {index: [...]})."""
    if isinstance(detail, dict):
        return [message for value in detail.values() for message in _messages_of(value)]
    if isinstance(detail, list):
        return [message for item in detail for message in _messages_of(item)]
    return [str(detail)]


def _filter_params(request: HttpRequest) -> tuple[dict[str, Any], Any, dict[str, list[str]]]:
    """(values to show in the form, SpanFilters or None, errors by field)."""
    values = {name: request.GET.get(name, "").strip() for name in FIELDS}
    data: dict[str, Any] = {name: value for name, value in values.items() if value and name != "range"}
    errors: dict[str, list[str]] = {}
    lengths = {value: length for value, _, length in RANGES}
    if values["range"] and values["range"] not in lengths:
        errors["range"] = ["Choose one of the listed ranges."]
    elif values["range"] and "start" not in data:
        data["start"] = (timezone.now() - lengths[values["range"]]).isoformat()
    tags = [tag.strip() for tag in request.GET.getlist("tag") if tag.strip()]
    data.pop("tag", None)
    if tags:
        data["tag"] = tags
    params = SpanFilterParams(data=data)
    if not params.is_valid():
        errors.update({field: _messages_of(detail) for field, detail in params.errors.items()})
    if errors:
        return values, None, errors
    return values, params.filters(), errors


def _form_fields(values: dict[str, str], errors: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The filter inputs, in order, each with its value and its errors."""
    choices = {
        "range": [(value, label) for value, label, _ in RANGES],
        "status": [(value, value) for value in ("ok", "error")],
        "kind": [(value, value) for value in KINDS],
    }
    specs = (
        ("q", "Text in inputs or outputs", "search", "e.g. refund policy"),
        ("range", "Time range", "select", "any time"),
        ("start", "From", "datetime-local", ""),
        ("end", "Until", "datetime-local", ""),
        ("model", "Model", "text", "e.g. gpt-4o"),
        ("provider", "Provider", "text", "e.g. openai"),
        ("status", "Status", "select", "any"),
        ("kind", "Kind", "select", "any"),
        ("tag", "Tag", "text", "key:value"),
        ("user_id", "User id", "text", ""),
        ("session_id", "Session id", "text", ""),
        ("min_cost", "Min cost ($)", "number", ""),
        ("max_cost", "Max cost ($)", "number", ""),
        ("min_latency_ms", "Min latency (ms)", "number", ""),
        ("max_latency_ms", "Max latency (ms)", "number", ""),
    )
    return [
        {
            "name": name,
            "label": label,
            "input": kind,
            "hint": hint,
            "value": values[name],
            "errors": errors.get(name, []),
            "choices": choices.get(name, []),
        }
        for name, label, kind, hint in specs
    ]


def _relative(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


@login_required
def trace_list(request: HttpRequest, project_id: str) -> HttpResponse:
    page = project_page(request, project_id)
    values, filters, errors = _filter_params(request)
    rows: list[dict[str, Any]] = []
    newer = older = None
    if filters is not None:
        paginator = SpanPagination()
        try:
            roots = paginator.paginate_queryset(
                traces_filtered(project_id=page.project.pk, filters=filters), Request(request)
            )
        except ApiError as exc:
            field = (exc.details or {}).get("field", "cursor")
            errors[field] = [
                "This page link is no longer valid: start again from the newest traces."
                if field == "cursor"
                else exc.message
            ]
        else:
            summaries = trace_summaries(project_id=page.project.pk, trace_ids=[s.trace_id for s in roots])
            rows = [{"span": span, "trace": summaries.get(span.trace_id, {})} for span in roots]
            newer, older = _relative(paginator.get_previous_link()), _relative(paginator.get_next_link())
    filtered = any(values.values())
    return render_project(
        request,
        "dashboard/traces/list.html",
        page,
        "traces",
        status=400 if errors else 200,
        rows=rows,
        fields=_form_fields(values, errors),
        page_errors=errors.get("cursor", []) + errors.get("limit", []),
        errors=errors,
        filtered=filtered,
        newer=newer,
        older=older,
    )


# --- one trace ---------------------------------------------------------------------------------


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


def _parts(content: Any) -> list[dict[str, Any]]:
    """A message's content as parts to show: text as text, anything else (images, audio,
    tool results) by its type with its JSON."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}]
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append({"text": part})
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append({"text": part["text"]})
            else:
                kind = part.get("type") if isinstance(part, dict) else None
                parts.append({"kind": str(kind or "part"), "json": _pretty(part)})
        return parts
    return [{"kind": "content", "json": _pretty(content)}]


def _chat(messages: Any) -> list[dict[str, Any]]:
    if not isinstance(messages, list):
        return []
    chat = []
    for message in messages:
        if not isinstance(message, dict):
            chat.append({"role": "message", "parts": _parts(message)})
            continue
        extra = {key: value for key, value in message.items() if key not in ("role", "content")}
        chat.append(
            {
                "role": str(message.get("role") or "message"),
                "parts": _parts(message.get("content")),
                "extra": _pretty(extra) if extra else "",
            }
        )
    return chat


def _span_view(doc: dict[str, Any], depth: int, start: datetime, scale_ms: float) -> dict[str, Any]:
    own = {key: value for key, value in doc.items() if key != "children"}
    began, ended = _time(doc.get("start_time")), _time(doc.get("end_time"))
    metrics = doc.get("metrics") or {}
    request = doc.get("request") or {}
    response = doc.get("response") or {}
    metadata = doc.get("metadata") or {}
    usage = response.get("usage") or {}
    offset_ms = (began - start).total_seconds() * 1000 if began else 0.0
    if began and ended:
        duration_ms = max((ended - began).total_seconds() * 1000, 0.0)
    else:
        duration_ms = metrics.get("latency_ms")
    left = min(max(offset_ms / scale_ms * 100, 0.0), 99.6)
    width = min(max((duration_ms or 0) / scale_ms * 100, 0.4), 100.0 - left)
    tags = metadata.get("tags") if isinstance(metadata.get("tags"), dict) else {}
    other_metadata = {key: value for key, value in metadata.items() if key != "tags"}
    prompt = request.get("prompt")
    return {
        "doc": own,
        "depth": depth,
        "indent": f"{depth * 1.1:.1f}rem",
        "bar_left": f"{left:.3f}%",
        "bar_width": f"{width:.3f}%",
        "offset_ms": offset_ms,
        "duration_ms": duration_ms,
        "total_tokens": usage.get("total_tokens"),
        "prompt_tokens": usage.get("prompt_tokens"),
        "completion_tokens": usage.get("completion_tokens"),
        "cost": metrics.get("estimated_cost"),
        "ttft_ms": metrics.get("time_to_first_token_ms"),
        "chat": _chat(request.get("messages"))
        + ([{"role": "prompt", "parts": _parts(prompt)}] if isinstance(prompt, str) else []),
        "parameters": _pretty(request["parameters"]) if request.get("parameters") else "",
        "response_chat": _chat(response.get("messages")),
        "response_content": response.get("content"),
        "finish_reason": response.get("finish_reason"),
        "tags": sorted(tags.items()),
        "metadata": _pretty(other_metadata) if other_metadata else "",
        "attributes": _pretty(doc["attributes"]) if doc.get("attributes") else "",
        "error": doc.get("error"),
        "raw": _pretty(own),
    }


def _waterfall(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """The spans depth first, each with its bar placed relative to the whole trace."""
    start = datetime.fromisoformat(tree["start_time"])
    docs: list[tuple[dict[str, Any], int]] = []
    stack = [(node, 0) for node in reversed(tree["spans"])]
    while stack:  # iterative: a trace may nest deeper than Python's recursion limit
        node, depth = stack.pop()
        docs.append((node, depth))
        stack.extend((child, depth + 1) for child in reversed(node["children"]))
    scale_ms = tree["totals"]["duration_ms"] or 0.0
    for node, _ in docs:  # spans without an end time still fit on the scale
        began = _time(node.get("start_time"))
        latency = (node.get("metrics") or {}).get("latency_ms") or 0
        if began:
            scale_ms = max(scale_ms, (began - start).total_seconds() * 1000 + latency)
    scale_ms = max(scale_ms, 1.0)
    return [_span_view(node, depth, start, scale_ms) for node, depth in docs]


@login_required
def trace_detail(request: HttpRequest, project_id: str, trace_id: str) -> HttpResponse:
    page = project_page(request, project_id)
    tree = trace_tree(project_id=page.project.pk, trace_id=trace_id)
    if tree is None:
        return render_project(
            request, "dashboard/traces/not_found.html", page, "traces", status=404, trace_id=trace_id
        )
    deliveries = (
        deliveries_filtered(project_id=page.project.pk, trace_id=storable_text(trace_id))
        .select_related("destination")
        .order_by("destination__name", "-created_at")
    )
    return render_project(
        request,
        "dashboard/traces/detail.html",
        page,
        "traces",
        tree=tree,
        started=datetime.fromisoformat(tree["start_time"]),
        totals=tree["totals"],
        spans=_waterfall(tree),
        deliveries=deliveries,
        here=request.get_full_path(),
    )


urlpatterns = [
    path("projects/<uuid:project_id>/traces", trace_list, name="traces"),
    path("projects/<uuid:project_id>/traces/<path:trace_id>", trace_detail, name="trace"),
]
