"""Tenant isolation over the whole public API, driven by the OpenAPI document.

Every operation on a path with a path parameter is called with a key of another
organization's project, aimed at an object of the first project: the answer must be
the 404 error envelope and nothing of the first project may change. Every read
without a path parameter, called with the other key, must show nothing of the first
project. A path parameter the mapping below does not know fails the suite, so a new
endpoint is covered by adding one line here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import FieldDoesNotExist
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient
from standardwebhooks import Webhook

from apps.accounts.models import Organization, Project
from apps.budgets.services import budget_create
from apps.delivery.models import Delivery
from apps.routing.models import RoutingConfigVersion
from tests.factories import (
    ApiKeyFactory,
    DestinationFactory,
    OrganizationFactory,
    ProjectFactory,
    UsageCounterFactory,
    WebhookEndpointFactory,
)
from tests.integration.ingest.helpers import encode, error_of, post

METHODS = ("get", "post", "put", "patch", "delete")


@dataclass(frozen=True)
class Target:
    """Which object of project A a path parameter names, and what to send."""

    kind: str  # an attribute of `Tenant` holding the id to substitute
    # Per method: a body, or a function of (A, B) returning one; {} when absent.
    bodies: dict[str, Any] = field(default_factory=dict)
    signed_webhook: bool = False  # authenticated by a Standard Webhooks signature, not a key
    expect: tuple[int, str] = (404, "not_found")


def takeover_rule(a: Tenant, b: Tenant) -> dict[str, Any]:
    """A valid rule for B's project, so only the ownership check can refuse it."""
    return {"name": "taken over", "conditions": {}, "actions": {"destinations": [str(b.destination.pk)]}}


# Path template -> the object whose id goes into the path parameter. Add new endpoints here.
TARGETS: dict[str, Target] = {
    "/v1/budgets/{id}": Target(
        "budget", {"patch": {"name": "taken over", "amount_usd": "1", "hard_stop": True}}
    ),
    "/v1/deliveries/{id}": Target("delivery"),
    "/v1/deliveries/{id}/replay": Target("delivery"),
    "/v1/destinations/{id}": Target("destination", {"patch": {"name": "taken over", "enabled": False}}),
    "/v1/destinations/{id}/test": Target("destination"),
    "/v1/keys/{id}": Target("target_key", {"patch": {"name": "taken over", "rate_limit_per_second": 1}}),
    "/v1/keys/{id}/revoke": Target("target_key"),
    "/v1/keys/{id}/rotate": Target("target_key"),
    "/v1/privacy/erasures/{id}": Target("erasure"),
    "/v1/routing/rules/{rule_id}": Target("rule", {"put": takeover_rule, "patch": {"name": "taken over"}}),
    "/v1/routing/versions/{number}": Target("version"),
    "/v1/routing/versions/{number}/rollback": Target("version"),
    "/v1/traces/{trace_id}": Target("trace"),
    "/v1/webhook-endpoints/{id}": Target(
        "webhook_endpoint", {"patch": {"name": "taken over", "enabled": False}}
    ),
    "/v1/webhook-endpoints/{id}/rotate-secret": Target("webhook_endpoint"),
    # Signed ingest: B signs with its own endpoint's secret and aims at A's endpoint.
    "/v1/webhooks/{endpoint_id}": Target(
        "webhook_endpoint", signed_webhook=True, expect=(401, "invalid_signature")
    ),
}

# Every GET without a path parameter is a read of the caller's project or organization and is
# checked for A's data. POST /v1/billing/checkout and /portal call Stripe and are not called.


def _schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


# Not tenant data: the operator's endpoints (health, readiness, and metrics, which
# UNTRACE_METRICS_TOKEN guards in production) and the proxy, whose `{path}` is the
# provider's path, not an object id (its keys are tested in tests/integration/proxy).
NOT_TENANT_TAGS = {"operations", "proxy"}


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(method, path template, path parameter names) of every tenant operation."""
    found = []
    for path, item in schema["paths"].items():
        shared = [p for p in item.get("parameters", []) if p.get("in") == "path"]
        for method in METHODS:
            if method not in item or NOT_TENANT_TAGS & set(item[method].get("tags", [])):
                continue
            params = shared + [p for p in item[method].get("parameters", []) if p.get("in") == "path"]
            found.append((method, path, sorted({p["name"] for p in params})))
    return found


SCHEMA = _schema()
OPERATIONS = _operations(SCHEMA)
ID_OPERATIONS = [(m, p, names) for m, p, names in OPERATIONS if names]
PLAIN_GETS = [p for m, p, names in OPERATIONS if not names and m == "get"]


@dataclass
class Tenant:
    organization: Organization
    project: Project
    key: Any  # ApiKey with every scope, `.secret` set
    target_key: Any
    destination: Any
    webhook_endpoint: Any
    erasure: Any
    budget: Any
    delivery: Delivery
    rule: str
    version: int
    trace: str
    markers: set[str]

    def client(self) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_X_UNTRACE_KEY=self.key.secret)
        return client

    def id_of(self, kind: str) -> str:
        value = getattr(self, kind)
        return str(getattr(value, "pk", value))


# Every tenant's spans carry this user id, so an export by it must show only the caller's own.
SHARED_USER = "isolation-user"
# GETs without a path parameter that need a query to answer 200.
QUERIES = {"/v1/privacy/export": {"user_id": SHARED_USER}}


def _ingest(client: APIClient, key: str, trace_id: str, span_ids: list[str]) -> None:
    root = {"id": span_ids[0], "trace_id": trace_id, "name": f"root {trace_id}", "model": "gpt-4o-mini"}
    spans = [{**root, "user_id": SHARED_USER}]
    spans += [{"id": s, "trace_id": trace_id, "parent_id": span_ids[0]} for s in span_ids[1:]]
    response = post(client, "/v1/traces/batch", {"traces": spans}, key)
    assert response.status_code == 202, response.content


def _tenant(label: str, *, routing_versions: int) -> Tenant:
    tag = f"{label}-{uuid.uuid4().hex[:10]}"
    organization = OrganizationFactory(name=f"Org {tag}", slug=f"org-{tag}")
    project = ProjectFactory(organization=organization, name=f"Project {tag}", slug=f"project-{tag}")
    key = ApiKeyFactory(project=project, name=f"key {tag}")
    target_key = ApiKeyFactory(project=project, name=f"target key {tag}")
    destination = DestinationFactory(project=project, name=f"destination {tag}")
    webhook_endpoint = WebhookEndpointFactory(project=project, name=f"webhook {tag}")
    budget, _ = budget_create(project_id=project.pk, name=f"budget {tag}", amount_usd="10")
    UsageCounterFactory(organization=organization, traces=7)
    client = APIClient()
    client.credentials(HTTP_X_UNTRACE_KEY=key.secret)
    rule_name = f"rule {tag}"
    document = {
        "rules": [{"name": rule_name, "conditions": {}, "actions": {"destinations": [str(destination.pk)]}}],
        "default_destinations": [str(destination.pk)],
    }
    for _ in range(routing_versions):
        response = client.put("/v1/routing/config", document, format="json")
        assert response.status_code == 200, response.content
    rules = client.get("/v1/routing/rules").json()["rules"]
    rule = next((r["id"] for r in rules if r["name"] == rule_name), "")
    version = RoutingConfigVersion.objects.for_project(project.pk).order_by("-number").first()
    trace_id = f"trace-{tag}"
    span_ids = [f"span-{tag}-0", f"span-{tag}-1"]
    _ingest(client, key.secret, trace_id, span_ids)
    response = client.post("/v1/privacy/erasures", {"user_id": f"erased {tag}"}, format="json")
    assert response.status_code == 202, response.content
    erasure = response.json()["id"]
    now = timezone.now()
    delivery = Delivery.objects.create(
        project=project,
        destination=destination,
        role="primary",
        items=[],
        span_count=0,
        next_attempt_at=now,
        expires_at=now,
        status="dead",
        last_error=f"failure {tag}",
    )
    markers = {
        str(organization.pk),
        str(project.pk),
        str(key.pk),
        str(target_key.pk),
        key.lookup_id,
        target_key.lookup_id,
        str(destination.pk),
        str(webhook_endpoint.pk),
        erasure,
        str(budget.pk),
        str(delivery.pk),
        trace_id,
        *span_ids,
        tag,
    }
    if rule:
        markers.add(rule)
    return Tenant(
        organization=organization,
        project=project,
        key=key,
        target_key=target_key,
        destination=destination,
        webhook_endpoint=webhook_endpoint,
        erasure=erasure,
        budget=budget,
        delivery=delivery,
        rule=rule,
        version=version.number if version else 0,
        trace=trace_id,
        markers=markers,
    )


@pytest.fixture
def tenants(db) -> tuple[Tenant, Tenant]:
    """A with three routing versions, B with one: A's newest version number is not B's."""
    return _tenant("a", routing_versions=3), _tenant("b", routing_versions=1)


def _owned_models() -> list[tuple[Any, str]]:
    """Every model with a `project` or `organization` foreign key, and that field's name."""
    owned = []
    for model in django_apps.get_models():
        for name, related in (("project", Project), ("organization", Organization)):
            try:
                field_ = model._meta.get_field(name)
            except FieldDoesNotExist:
                continue
            if getattr(field_, "related_model", None) is related:
                owned.append((model, name))
    return owned


def _snapshot(tenant: Tenant) -> dict[str, list[dict[str, Any]]]:
    """Every row the tenant owns, in every table that has an owner column."""
    state = {}
    for model, name in _owned_models():
        owner = tenant.project if name == "project" else tenant.organization
        rows = model._base_manager.filter(**{name: owner}).order_by("pk").values()
        state[f"{model._meta.label}.{name}"] = list(rows)
    return state


def _row_ids(tenant: Tenant) -> set[str]:
    """The UUID primary key of every row the tenant owns (audit events included)."""
    return {
        str(row["id"])
        for rows in _snapshot(tenant).values()
        for row in rows
        if isinstance(row.get("id"), uuid.UUID)
    }


def _changed(before: dict[str, list], after: dict[str, list]) -> list[str]:
    return [label for label in before if before[label] != after[label]]


def _leaked(response, markers: set[str]) -> list[str]:
    text = response.content.decode(errors="replace")
    return sorted(m for m in markers if m and m in text)


def _call(client: APIClient, method: str, path: str, body: Any = None, **extra: str):
    if method in ("get", "delete"):
        return getattr(client, method)(path, **extra)
    return getattr(client, method)(path, body if body is not None else {}, format="json", **extra)


def _signed(secret: str, body: bytes) -> dict[str, str]:
    msg_id = f"msg_{uuid.uuid4().hex}"
    at = datetime.now(UTC)
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(int(at.timestamp())),
        "HTTP_WEBHOOK_SIGNATURE": Webhook(secret).sign(msg_id, at, body.decode()),
    }


def test_schema_has_operations_with_path_parameters():
    assert len(ID_OPERATIONS) >= len(TARGETS), ID_OPERATIONS
    assert PLAIN_GETS


def test_every_path_parameter_is_mapped():
    paths = {path for _, path, _ in ID_OPERATIONS}
    unknown = sorted(paths - set(TARGETS))
    assert not unknown, (
        f"Paths with a path parameter missing from TARGETS in {__name__}: {unknown}. "
        "Add how to create the object and which id to substitute."
    )
    stale = sorted(set(TARGETS) - paths)
    assert not stale, f"TARGETS names paths the API no longer has: {stale}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "names"), ID_OPERATIONS, ids=[f"{m.upper()} {p}" for m, p, _ in ID_OPERATIONS]
)
def test_another_tenants_object_is_not_found_and_unchanged(tenants, method, path, names):
    a, b = tenants
    target = TARGETS.get(path)
    if target is None:
        pytest.fail(f"{method.upper()} {path} has path parameters {names} but no entry in TARGETS")
    assert len(names) == 1, f"{path}: more than one path parameter; extend Target for it"
    object_id = a.id_of(target.kind)
    assert object_id and object_id != "0", f"{path}: tenant A has no {target.kind}"
    if target.kind == "version":
        owned = RoutingConfigVersion.objects.filter(project=b.project, number=int(object_id))
        assert not owned.exists(), "B must not own a version with A's number for the check to mean anything"
    url = path.replace("{" + names[0] + "}", object_id)
    before_a, before_b = _snapshot(a), _snapshot(b)

    client = b.client()
    if target.signed_webhook:
        body = encode({"traces": [{"id": f"webhook-{uuid.uuid4().hex}", "trace_id": "planted"}]})
        headers = _signed(b.webhook_endpoint.secret, body)
        response = client.post(url, body, content_type="application/json", **headers)
    else:
        body = target.bodies.get(method)
        response = _call(client, method, url, body(a, b) if callable(body) else body)

    status, code = target.expect
    error_of(response, status, code)
    # The error message may echo the id that was asked for.
    others = {m for m in a.markers if m not in object_id}
    assert not _leaked(response, others), f"{method.upper()} {url} leaked {_leaked(response, others)}"
    changed = _changed(before_a, _snapshot(a))
    assert not changed, f"{method.upper()} {url} with B's key changed A's rows in {changed}"
    changed = _changed(before_b, _snapshot(b))
    assert not changed, f"{method.upper()} {url} with B's key changed B's rows in {changed}"


# Lists whose results B must see (its own) while never seeing A's.
LISTS = {
    "/v1/budgets": "budget",
    "/v1/destinations": "destination",
    "/v1/keys": "target_key",
    "/v1/webhook-endpoints": "webhook_endpoint",
    "/v1/privacy/erasures": "erasure",
    "/v1/privacy/export": "trace",
    "/v1/deliveries": "delivery",
    "/v1/traces": "trace",
    "/v1/routing/rules": "rule",
}


def _reads(client: APIClient) -> dict[str, Any]:
    found = {}
    for path in PLAIN_GETS:
        response = client.get(path, QUERIES.get(path, {}))
        assert response.status_code == 200, (path, response.content)
        found[path] = response
    return found


# Reads that are audited themselves: the events they add are the caller's own.
AUDITED_READS = {"privacy.export"}


def _comparable(path: str, body: Any) -> Any:
    """A read's answer without the audit events that the reads themselves recorded."""
    if path == "/v1/audit-log":
        return {**body, "results": [e for e in body["results"] if e["action"] not in AUDITED_READS]}
    return body


@pytest.mark.django_db
def test_reads_without_an_id_never_show_another_tenants_data(tenants):
    a, b = tenants
    assert set(LISTS) <= set(PLAIN_GETS), sorted(set(LISTS) - set(PLAIN_GETS))
    markers = a.markers | _row_ids(a)
    reads = _reads(b.client())
    for path, response in reads.items():
        assert not _leaked(response, markers), f"GET {path} with B's key shows {_leaked(response, markers)}"
    for path, kind in LISTS.items():
        assert b.id_of(kind) in reads[path].content.decode(), f"GET {path}: B's own {kind} is missing"
    if "/v1/audit-log" in reads:  # B's own changes are there, A's are not (checked above)
        assert reads["/v1/audit-log"].json()["results"], "B's audit log is empty"
    versions = reads["/v1/routing/versions"].json()["versions"]
    assert [v["version"] for v in versions] == [b.version]
    dry_run = b.client().post("/v1/routing/dry-run", {"recent": 50}, format="json")
    assert dry_run.status_code == 200, dry_run.content
    assert not _leaked(dry_run, markers), f"dry-run with B's key shows {_leaked(dry_run, markers)}"


@pytest.mark.django_db
def test_writes_of_one_project_never_show_in_the_others_reads(tenants):
    """A writes to its project-wide settings; B's reads stay as they were, and the other way round."""
    a, b = tenants
    b_before = {path: _comparable(path, r.json()) for path, r in _reads(b.client()).items()}
    a_client, b_client = a.client(), b.client()

    secret_upstream = f"https://upstream-{a.trace}.example.com/v1"
    response = a_client.patch(
        "/v1/proxy-settings",
        {"openai_upstream": secret_upstream, "openai_key": f"sk-{a.trace}"},
        format="json",
    )
    assert response.status_code == 200, response.content
    config = {
        "rules": [
            {
                "name": f"second {a.trace}",
                "conditions": {},
                "actions": {"destinations": [str(a.destination.pk)]},
            }
        ],
        "default_destinations": [str(a.destination.pk)],
    }
    assert a_client.put("/v1/routing/config", config, format="json").status_code == 200
    _ingest(a_client, a.key.secret, f"{a.trace}-more", [f"more-{a.trace}"])

    markers = a.markers | _row_ids(a) | {secret_upstream, f"sk-{a.trace}", f"second {a.trace}"}
    b_after = _reads(b_client)
    for path, response in b_after.items():
        assert not _leaked(response, markers), f"GET {path} with B's key shows {_leaked(response, markers)}"
        assert _comparable(path, response.json()) == b_before[path], (
            f"GET {path} with B's key changed after A's writes"
        )

    # The other way round: B's project-wide writes leave every row of A alone.
    a_reads = {path: _comparable(path, r.json()) for path, r in _reads(a_client).items()}
    a_rows = _snapshot(a)  # after A's own reads, which may be audited (exports)
    response = b_client.patch(
        "/v1/proxy-settings", {"openai_upstream": "https://b.example.com/v1"}, format="json"
    )
    assert response.status_code == 200, response.content
    response = b_client.put("/v1/routing/config", {"rules": []}, format="json")
    assert response.status_code == 200, response.content
    replayed = b_client.post("/v1/deliveries/replay", {}, format="json")
    assert replayed.status_code == 200 and replayed.json() == {"replayed": 1}, replayed.content
    changed = _changed(a_rows, _snapshot(a))
    assert not changed, f"B's project-wide writes changed A's rows in {changed}"
    assert {path: _comparable(path, r.json()) for path, r in _reads(a_client).items()} == a_reads
