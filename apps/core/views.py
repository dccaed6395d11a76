import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from apps.core.errors import error_response
from apps.core.health import check_broker, check_database
from apps.core.metrics import render_metrics


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: PostgreSQL and the broker answer; 503 names what is down."""
    checks = {"database": check_database(), "broker": check_broker()}
    down = {name: reason for name, reason in checks.items() if reason}
    body = {
        "status": "unavailable" if down else "ok",
        "checks": {name: ("down" if reason else "ok") for name, reason in checks.items()},
    }
    if down:
        body["errors"] = down
    return JsonResponse(body, status=503 if down else 200)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition; guarded by UNTRACE_METRICS_TOKEN when it is set."""
    token = settings.UNTRACE_METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.encode()):
            return error_response(401, "unauthenticated", "Bad metrics token.")
    body, content_type = render_metrics()
    return HttpResponse(body, content_type=content_type)
