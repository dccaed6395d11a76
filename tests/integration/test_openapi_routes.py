"""Every public route is in the OpenAPI document, and the document lists nothing else."""

from __future__ import annotations

import re

from django.urls import URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

# Pages for people (dashboard, sign-in, admin) are not the API; /v1/schema and
# /v1/docs are the document itself.
NOT_API = re.compile(r"^/(?:admin|accounts|orgs|projects|invitations)/|^/$|^/v1/(?:schema|docs)$")
# Served by the ASGI app before Django's URL conf (apps/core/asgi.py).
ASGI_ROUTES = {"/v1/proxy/openai/{path}", "/v1/proxy/anthropic/{path}"}


def _routes(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def _openapi_path(route: str) -> str:
    """`v1/^keys/(?P<id>[^/.]+)$` -> `/v1/keys/{id}`; `v1/a/<path:b>` -> `/v1/a/{b}`."""
    route = route.replace("^", "").replace("$", "")
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
    return "/" + route


def test_the_url_conf_and_the_document_list_the_same_routes():
    routes = {_openapi_path(route) for route in _routes(get_resolver().url_patterns)}
    api_routes = {route for route in routes if not NOT_API.search(route)}
    documented = set(SchemaGenerator().get_schema(request=None, public=True)["paths"])
    assert api_routes - documented == set(), "routes missing from the OpenAPI document"
    assert documented - api_routes - ASGI_ROUTES == set(), "documented paths that no route serves"
    assert len(api_routes) > 30
