import uuid

import pytest
from rest_framework.test import APIClient

from apps.routing.models import RoutingConfigVersion
from tests.factories import ApiKeyFactory, DestinationFactory
from tests.integration.routing.conftest import error

pytestmark = pytest.mark.django_db


def a_rule(destination, **overrides):
    rule = {
        "name": "gpt-4 to primary",
        "priority": 10,
        "conditions": {"all": [{"field": "model", "operator": "glob", "value": "gpt-4*"}]},
        "actions": {"destinations": [str(destination.pk)]},
    }
    return {**rule, **overrides}


def test_rule_crud_creates_a_version_per_change(api, destinations):
    primary, secondary = destinations
    created = api.post("/v1/routing/rules", a_rule(primary), format="json")
    assert created.status_code == 201, created.content
    rule = created.json()
    assert uuid.UUID(rule["id"]) and created["X-Untrace-Routing-Version"] == "1"
    assert api.get(f"/v1/routing/rules/{rule['id']}").json() == rule

    patched = api.patch(f"/v1/routing/rules/{rule['id']}", {"priority": 5}, format="json")
    assert patched.status_code == 200 and patched.json()["priority"] == 5
    replaced = api.put(f"/v1/routing/rules/{rule['id']}", a_rule(secondary, name="renamed"), format="json")
    assert replaced.json()["actions"]["destinations"] == [str(secondary.pk)]
    listed = api.get("/v1/routing/rules").json()
    assert listed["version"] == 3 and [r["name"] for r in listed["rules"]] == ["renamed"]

    assert api.delete(f"/v1/routing/rules/{rule['id']}").status_code == 204
    versions = api.get("/v1/routing/versions").json()["versions"]
    assert [v["version"] for v in versions] == [4, 3, 2, 1]
    assert versions[0]["summary"] == "Deleted rule 'renamed'"
    assert versions[-1]["summary"] == "Created rule 'gpt-4 to primary'"
    assert all(v["created_by_key"] for v in versions)
    detail = api.get("/v1/routing/versions/2").json()
    assert detail["changes"] == [{"op": "replace", "path": "/rules/0/priority", "value": 5}]


def test_rollback_makes_an_old_document_live_as_a_new_version(api, destinations):
    primary, _ = destinations
    rule = api.post("/v1/routing/rules", a_rule(primary), format="json").json()
    api.delete(f"/v1/routing/rules/{rule['id']}")
    rolled = api.post("/v1/routing/versions/1/rollback")
    assert rolled.status_code == 200, rolled.content
    assert rolled.json()["version"] == 3 and rolled.json()["rules"] == [rule]
    assert api.get("/v1/routing/versions").json()["versions"][0]["summary"] == "Rolled back to version 1"
    error(api.post("/v1/routing/versions/9/rollback"), 404, "not_found")
    error(api.post("/v1/routing/versions/x/rollback"), 400)


def test_whole_config_put_with_optimistic_concurrency(api, destinations):
    primary, secondary = destinations
    document = {
        "rules": [a_rule(primary)],
        "default_destinations": [str(secondary.pk)],
        "sampling": {"rate": 0.5},
        "transformations": [],
        "destination_policies": {str(primary.pk): {"sampling": {"rate": 0.1}}},
    }
    saved = api.put("/v1/routing/config", {**document, "base_version": 0}, format="json")
    assert saved.status_code == 200, saved.content
    assert saved.json()["version"] == 1 and saved.json()["default_destinations"] == [str(secondary.pk)]
    stale = api.put("/v1/routing/config", {**document, "base_version": 0}, format="json")
    assert error(stale, 409, "version_conflict")["details"] == {"version": 1}
    assert api.get("/v1/routing/config").json()["sampling"] == {"rate": 0.5}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"name": ""}, "name", "non-empty string"),
        (
            {"conditions": {"all": [{"field": "model", "operator": "matches", "value": "x"}]}},
            "conditions.all[0].operator",
            "unknown operator 'matches'",
        ),
        (
            {"conditions": {"all": [{"field": "model", "operator": "regex", "value": "[unclosed"}]}},
            "conditions.all[0].value",
            "not a valid regular expression",
        ),
        ({"actions": {"split": {"A": 50}}}, "actions.split.A", "not a destination id"),
        ({"actions": {"destinations": []}}, "actions", "must send somewhere"),
        ({"actions": {"destinations": "all"}}, "actions.destinations", "must be a list"),
        ({"priority": 1.5}, "priority", "integer"),
        ({"colour": "red"}, "colour", "not a rule setting"),
    ],
)
def test_invalid_rules_are_refused_with_400_naming_the_problem(api, destinations, change, field, message):
    body = error(api.post("/v1/routing/rules", {**a_rule(destinations[0]), **change}, format="json"), 400)
    assert body["details"]["field"] == field
    assert message in body["message"]
    assert not RoutingConfigVersion.objects.exists()


def test_split_must_sum_to_100(api, destinations):
    primary, secondary = destinations
    actions = {"split": {str(primary.pk): 60, str(secondary.pk): 30}}
    body = error(api.post("/v1/routing/rules", a_rule(primary, actions=actions), format="json"), 400)
    assert body["details"]["field"] == "actions.split" and "sum to 100, not 90" in body["message"]


def test_another_projects_destination_or_rule_is_refused(api, destinations):
    foreign = DestinationFactory()
    body = error(api.post("/v1/routing/rules", a_rule(foreign), format="json"), 400)
    assert body["details"]["field"] == "actions.destinations[0]"
    assert f"no destination {foreign.pk} in this project" in body["message"]

    other_key = ApiKeyFactory(project=foreign.project)
    other = APIClient()
    other.credentials(HTTP_X_UNTRACE_KEY=other_key.secret)
    theirs = other.post("/v1/routing/rules", a_rule(foreign), format="json").json()
    for response in (
        api.get(f"/v1/routing/rules/{theirs['id']}"),
        api.patch(f"/v1/routing/rules/{theirs['id']}", {"priority": 1}, format="json"),
        api.delete(f"/v1/routing/rules/{theirs['id']}"),
    ):
        error(response, 404, "not_found")
    error(api.get("/v1/routing/versions/1"), 404, "not_found")
    assert other.get("/v1/routing/rules").json()["rules"][0]["priority"] == 10


def test_scopes_and_bad_bodies(project, api, destinations):
    reader = APIClient()
    reader.credentials(HTTP_X_UNTRACE_KEY=ApiKeyFactory(project=project, scopes=["read"]).secret)
    assert reader.get("/v1/routing/rules").status_code == 200
    error(reader.post("/v1/routing/rules", a_rule(destinations[0]), format="json"), 403, "missing_scope")
    error(api.post("/v1/routing/rules", [1, 2], format="json"), 400)
    error(api.post("/v1/routing/rules", "{", content_type="application/json"), 400, "invalid_json")
    error(api.get("/v1/routing/rules/not-a-uuid"), 400)
