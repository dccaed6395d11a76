"""Template context every page gets."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject


def organization_switcher(request: HttpRequest) -> dict:
    """`switcher`: the signed-in user's organizations and projects for the top bar, read
    only when a template uses it."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from apps.dashboard.organizations import switcher_for

    return {"switcher": SimpleLazyObject(lambda: switcher_for(request))}
