"""Routing rule pages: list, builder, dry-run, defaults, history and rollback."""

from __future__ import annotations

import json
import uuid

import pytest
from django.urls import reverse

from apps.ingest.limits import span_limits
from apps.routing.models import RoutingConfigVersion
from apps.routing.services import Actor, active_document, config_save, rule_save
from apps.traces.schema import decode_span
from apps.traces.store import spans_store
from tests.factories import DestinationFactory, MembershipFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def destinations(project):
    return [DestinationFactory(project=project, name=name) for name in ("langfuse-prod", "archive")]


def url(name, project, *args):
    return reverse(f"dashboard:{name}", args=[project.pk, *args])


def save_rule(project, name="gpt-4 to langfuse", priority=100, **actions):
    rule = {
        "name": name,
        "priority": priority,
        "conditions": {"all": [{"field": "model", "operator": "glob", "value": "gpt-4*"}]},
        "actions": actions,
    }
    stored, _ = rule_save(project_id=project.pk, rule=rule, actor=Actor())
    return stored


def store_spans(project, *models):
    spans = [
        decode_span(
            {
                "id": f"span-{i}",
                "trace_id": f"trace-{i}",
                "name": f"call {i}",
                "model": model,
                "provider": "openai",
                "request": {"messages": [{"role": "user", "content": "hello"}]},
                "response": {"content": "hi"},
            },
            limits=span_limits(),
        )
        for i, model in enumerate(models)
    ]
    spans_store(project_id=project.pk, spans=spans, source="test")


def builder_form(**overrides):
    form = {
        "name": "expensive gpt-4",
        "enabled": "on",
        "priority": "10",
        "match": "all",
        "cond_field": ["model", "cost", "tags", "user"],
        "cond_key": ["", "", "team", ""],
        "cond_operator": ["glob", "gt", "eq", "in"],
        "cond_value": ["gpt-4*", "0.01", "search", "u1, u2"],
        "destinations": [],
        "split_destination": [],
        "split_percent": [],
        "fallback": "",
        "sampling_rate": "50",
        "keep_errors": "on",
        "latency_threshold_ms": "5000",
        "cost_threshold": "",
        "meta_key": ["team", "weight"],
        "meta_value": ["search", "5"],
        "pii": "on",
        "pii_mode": "hash",
        "preserved": "{}",
    }
    form.update(overrides)
    return form


# --- list --------------------------------------------------------------------------------------


def test_empty_list_says_what_to_do(signed_in, project):
    response = signed_in.get(url("rules", project))
    assert response.status_code == 200
    body = response.content.decode()
    assert "No rules yet" in body and "Create a rule" in body
    assert "live version 0" in body


def test_list_shows_rules_in_order_with_summaries(signed_in, project, destinations):
    langfuse, archive = destinations
    save_rule(project, "late", priority=50, destinations=[str(archive.pk)])
    save_rule(
        project,
        "early",
        priority=5,
        destinations=[str(langfuse.pk)],
        sampling={"rate": 0.25},
        stop=True,
    )
    body = signed_in.get(url("rules", project)).content.decode()
    assert body.index("early") < body.index("late")
    assert "model matches “gpt-4*”" in body
    assert "→ langfuse-prod; sample 25 %; stop" in body
    assert "→ archive" in body
    assert "live version 2" in body


def test_toggle_saves_a_version(signed_in, project, destinations):
    rule = save_rule(project, destinations=[str(destinations[0].pk)])
    response = signed_in.post(url("rule-toggle", project, rule["id"]))
    assert response.status_code == 302
    version, document = active_document(project.pk)
    assert version == 2 and document["rules"][0]["enabled"] is False
    assert "Off" in signed_in.get(url("rules", project)).content.decode()


def test_move_changes_priorities_in_one_version(signed_in, project, destinations):
    target = [str(destinations[0].pk)]
    first = save_rule(project, "first", priority=1, destinations=target)
    second = save_rule(project, "second", priority=2, destinations=target)
    response = signed_in.post(url("rule-move", project, second["id"]), {"direction": "up"})
    assert response.status_code == 302
    version, document = active_document(project.pk)
    priorities = {r["name"]: r["priority"] for r in document["rules"]}
    assert version == 3 and priorities == {"second": 10, "first": 20}
    # already first: nothing changes
    signed_in.post(url("rule-move", project, second["id"]), {"direction": "up"})
    assert active_document(project.pk)[0] == 3
    signed_in.post(url("rule-move", project, second["id"]), {"direction": "down"})
    assert [
        r["name"] for r in sorted(active_document(project.pk)[1]["rules"], key=lambda r: r["priority"])
    ] == [
        "first",
        "second",
    ]
    assert first["id"] != second["id"]


def test_delete_removes_the_rule(signed_in, project, destinations):
    rule = save_rule(project, destinations=[str(destinations[0].pk)])
    assert signed_in.post(url("rule-delete", project, rule["id"])).status_code == 302
    assert active_document(project.pk)[1]["rules"] == []


def test_unknown_rule_is_404(signed_in, project):
    assert signed_in.post(url("rule-toggle", project, uuid.uuid4())).status_code == 404
    assert signed_in.get(url("rule-edit", project, uuid.uuid4())).status_code == 404


def test_defaults_form_saves_destinations_and_sampling(signed_in, project, destinations):
    response = signed_in.post(
        url("rules-settings", project),
        {"default_destinations": [str(destinations[1].pk)], "sampling_rate": "20", "base_version": "0"},
    )
    assert response.status_code == 302
    version, document = active_document(project.pk)
    assert version == 1
    assert document["default_destinations"] == [str(destinations[1].pk)]
    assert document["sampling"] == {"rate": 0.2}
    body = signed_in.get(url("rules", project)).content.decode()
    assert 'value="20"' in body


def test_defaults_form_errors_next_to_fields(signed_in, project, destinations):
    response = signed_in.post(url("rules-settings", project), {"sampling_rate": "250", "base_version": "0"})
    assert response.status_code == 400
    assert 'id="err_sampling_rate"' in response.content.decode()
    response = signed_in.post(
        url("rules-settings", project), {"default_destinations": ["not-a-uuid"], "base_version": "0"}
    )
    assert response.status_code == 400
    assert 'id="err_default_destinations"' in response.content.decode()
    assert active_document(project.pk)[0] == 0


def test_defaults_form_refuses_a_stale_version(signed_in, project, destinations):
    save_rule(project, destinations=[str(destinations[0].pk)])
    response = signed_in.post(url("rules-settings", project), {"sampling_rate": "10", "base_version": "0"})
    assert response.status_code == 409
    assert "reload it" in response.content.decode()


# --- builder -----------------------------------------------------------------------------------


def test_new_rule_page_renders_the_builder(signed_in, project, destinations):
    response = signed_in.get(url("rule-new", project))
    assert response.status_code == 200
    body = response.content.decode()
    for text in ('name="cond_field"', 'name="destinations"', "Run dry-run", "JSON view", "langfuse-prod"):
        assert text in body


def test_builder_saves_a_rule_with_json_types(signed_in, project, destinations):
    langfuse, archive = destinations
    form = builder_form(
        destinations=[str(langfuse.pk)],
        shadow=[str(archive.pk)],
        stop="on",
    )
    response = signed_in.post(url("rule-new", project), form)
    assert response.status_code == 302, response.content.decode()
    version, document = active_document(project.pk)
    (rule,) = document["rules"]
    assert rule["priority"] == 10 and rule["enabled"] is True
    assert rule["conditions"] == {
        "all": [
            {"field": "model", "operator": "glob", "value": "gpt-4*"},
            {"field": "cost", "operator": "gt", "value": 0.01},
            {"field": "tags.team", "operator": "eq", "value": "search"},
            {"field": "user", "operator": "in", "value": ["u1", "u2"]},
        ]
    }
    assert rule["actions"] == {
        "destinations": [str(langfuse.pk)],
        "shadow": [str(archive.pk)],
        "sampling": {"rate": 0.5, "keep_errors": True, "latency_threshold_ms": 5000},
        "metadata": {"team": "search", "weight": 5},
        "transformations": [{"type": "redact_pii", "mode": "hash"}],
        "stop": True,
    }
    assert "expensive gpt-4" in signed_in.get(url("rules", project)).content.decode()


def test_builder_split_and_fallback(signed_in, project, destinations):
    langfuse, archive = destinations
    third = DestinationFactory(project=project, name="third")
    form = builder_form(
        split_destination=[str(langfuse.pk), str(archive.pk)],
        split_percent=["90", "10"],
        fallback=str(third.pk),
    )
    assert signed_in.post(url("rule-new", project), form).status_code == 302
    actions = active_document(project.pk)[1]["rules"][0]["actions"]
    assert actions["split"] == {str(langfuse.pk): 90, str(archive.pk): 10}
    assert actions["fallback"] == str(third.pk)


def test_builder_shows_its_own_conversion_errors_on_the_row(signed_in, project, destinations):
    form = builder_form(
        destinations=[str(destinations[0].pk)], cond_value=["gpt-4*", "cheap", "search", "u1"]
    )
    response = signed_in.post(url("rule-new", project), form)
    assert response.status_code == 400
    body = response.content.decode()
    assert "Enter a number to compare with (gt)." in body
    assert 'value="cheap"' in body  # what was typed stays
    assert active_document(project.pk)[0] == 0


def test_builder_maps_service_errors_to_fields(signed_in, project, destinations):
    langfuse, archive = destinations
    form = builder_form(
        cond_operator=["glob", "gt", "regex", "in"],
        cond_value=["gpt-4*", "0.01", "(unclosed", "u1"],
        destinations=[str(langfuse.pk)],
    )
    body = signed_in.post(url("rule-new", project), form).content.decode()
    # conditions.all[2].value -> the third row's value input
    row = body[body.index('value="(unclosed"') :]
    assert row.index("is not a valid regular expression") < row.index("cond_field")

    form = builder_form(
        split_destination=[str(langfuse.pk), str(archive.pk)], split_percent=["60", "10"], destinations=[]
    )
    response = signed_in.post(url("rule-new", project), form)
    assert response.status_code == 400
    assert 'id="err_split"' in response.content.decode()
    assert "percents must sum to 100, not 70" in response.content.decode()

    response = signed_in.post(url("rule-new", project), builder_form(name=""))
    assert 'id="err_name"' in response.content.decode()

    response = signed_in.post(url("rule-new", project), builder_form(sampling_rate="0"))
    assert 'id="err_sampling_rate"' in response.content.decode()
    assert active_document(project.pk)[0] == 0


def test_nothing_to_send_is_shown_on_the_actions(signed_in, project, destinations):
    response = signed_in.post(url("rule-new", project), builder_form())
    assert response.status_code == 400
    assert 'id="err_actions"' in response.content.decode()


def test_edit_keeps_what_the_builder_does_not_show(signed_in, project, destinations):
    langfuse = destinations[0]
    rule = {
        "name": "complex",
        "description": "kept",
        "conditions": {
            "any": [{"field": "model", "operator": "eq", "value": "gpt-4o"}],
            "not": {"field": "environment", "operator": "eq", "value": "dev"},
        },
        "actions": {
            "destinations": [str(langfuse.pk)],
            "transformations": [
                {"type": "truncate", "path": "request", "max_length": 100},
                {"type": "redact_pii", "mode": "mask", "detectors": ["email"]},
            ],
        },
    }
    stored, _ = rule_save(project_id=project.pk, rule=rule, actor=Actor())
    response = signed_in.get(url("rule-edit", project, stored["id"]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "in the JSON view" in body and 'value="gpt-4o"' in body
    preserved = json.loads(response.context["b"].preserved_json)

    form = builder_form(
        name="complex renamed",
        match="any",
        cond_field=["model"],
        cond_key=[""],
        cond_operator=["eq"],
        cond_value=["gpt-4o-mini"],
        destinations=[str(langfuse.pk)],
        sampling_rate="",
        latency_threshold_ms="",
        meta_key=[],
        meta_value=[],
        pii_mode="remove",
        rule_id=stored["id"],
        preserved=json.dumps(preserved),
    )
    assert signed_in.post(url("rule-edit", project, stored["id"]), form).status_code == 302
    (saved,) = active_document(project.pk)[1]["rules"]
    assert saved["id"] == stored["id"] and saved["description"] == "kept"
    assert saved["conditions"] == {
        "any": [{"field": "model", "operator": "eq", "value": "gpt-4o-mini"}],
        "not": {"field": "environment", "operator": "eq", "value": "dev"},
    }
    assert saved["actions"]["transformations"] == [
        {"type": "truncate", "path": "request", "max_length": 100},
        {"type": "redact_pii", "detectors": ["email"], "mode": "remove"},
    ]


def test_json_view_saves_and_shows_errors_inline(signed_in, project, destinations):
    rule = save_rule(project, destinations=[str(destinations[0].pk)])
    edit = url("rule-edit", project, rule["id"])
    response = signed_in.post(edit, {"mode": "json", "rule_json": "{not json"})
    assert response.status_code == 400
    assert 'id="err_rule_json"' in response.content.decode() and "not valid JSON" in response.content.decode()

    bad = {
        "name": "x",
        "conditions": {"all": [{"field": "cost", "operator": "gt", "value": "a"}]},
        "actions": {},
    }
    response = signed_in.post(edit, {"mode": "json", "rule_json": json.dumps(bad)})
    assert response.status_code == 400
    assert "conditions.all[0].value: must be a number for gt" in response.content.decode()

    good = {"name": "from json", "priority": 3, "actions": {"stop": True}}
    assert signed_in.post(edit, {"mode": "json", "rule_json": json.dumps(good)}).status_code == 302
    (saved,) = active_document(project.pk)[1]["rules"]
    assert saved["name"] == "from json" and saved["id"] == rule["id"]


def test_row_partials(signed_in, project, destinations):
    response = signed_in.get(url("rule-row", project) + "?kind=condition")
    assert response.status_code == 200 and 'name="cond_field"' in response.content.decode()
    assert "langfuse-prod" in signed_in.get(url("rule-row", project) + "?kind=split").content.decode()
    assert 'name="meta_key"' in signed_in.get(url("rule-row", project) + "?kind=metadata").content.decode()
    assert signed_in.get(url("rule-row", project) + "?kind=none").content == b""


# --- dry-run -----------------------------------------------------------------------------------


def test_dry_run_shows_matches_without_saving(signed_in, project, destinations):
    store_spans(project, "gpt-4o", "claude-3-5-haiku")
    form = builder_form(
        cond_field=["model"],
        cond_key=[""],
        cond_operator=["glob"],
        cond_value=["gpt-4*"],
        destinations=[str(destinations[0].pk)],
        sampling_rate="",
        latency_threshold_ms="",
        pii="",
    )
    response = signed_in.post(url("rule-dry-run", project), form)
    assert response.status_code == 200
    body = response.content.decode()
    assert "<strong>1</strong> of 2 spans" in body
    assert "expensive gpt-4 (this rule)" in body
    assert "langfuse-prod" in body and "Changes (JSON Patch)" in body
    assert "&quot;team&quot;: &quot;search&quot;" in body  # the rule's metadata, in payload and diff
    assert RoutingConfigVersion.objects.for_project(project.pk).count() == 0


def test_dry_run_replaces_the_rule_being_edited(signed_in, project, destinations):
    store_spans(project, "gpt-4o")
    rule = save_rule(project, destinations=[str(destinations[1].pk)])
    form = builder_form(
        cond_field=["model"],
        cond_key=[""],
        cond_operator=["eq"],
        cond_value=["nothing-matches"],
        destinations=[str(destinations[0].pk)],
        rule_id=rule["id"],
    )
    body = signed_in.post(url("rule-dry-run", project), form).content.decode()
    assert "<strong>0</strong> of 1 span" in body
    assert "gpt-4 to langfuse" not in body  # the stored version of the rule is replaced


def test_dry_run_lists_form_errors_and_empty_state(signed_in, project, destinations):
    body = signed_in.post(url("rule-dry-run", project), builder_form(priority="high")).content.decode()
    assert "Fix the form before the dry-run" in body and "Priority: Enter a whole number" in body
    form = builder_form(destinations=[str(destinations[0].pk)])
    body = signed_in.post(url("rule-dry-run", project), form).content.decode()
    assert "No traces yet" in body


# --- history -----------------------------------------------------------------------------------


def test_versions_list_and_rollback(signed_in, owner, project, destinations):
    config_save(
        project_id=project.pk,
        document={"default_destinations": [str(destinations[0].pk)]},
        actor=Actor(user_id=owner.pk),
        summary="defaults",
    )
    save_rule(project, destinations=[str(destinations[0].pk)])
    response = signed_in.get(url("rule-versions", project))
    assert response.status_code == 200
    body = response.content.decode()
    assert "Created rule &#x27;gpt-4 to langfuse&#x27;" in body
    assert owner.email in body and "&quot;op&quot;: &quot;add&quot;" in body
    assert "Roll back to version 1" in body and "Roll back to version 2" not in body  # 2 is live

    response = signed_in.post(url("rule-rollback", project, 1))
    assert response.status_code == 302
    version, document = active_document(project.pk)
    assert version == 3 and document["rules"] == []
    assert signed_in.post(url("rule-rollback", project, 99)).status_code == 404


# --- access ------------------------------------------------------------------------------------


def test_viewer_reads_but_cannot_write(client, project, destinations):
    viewer = MembershipFactory(organization=project.organization, role="viewer").user
    client.force_login(viewer)
    rule = save_rule(project, destinations=[str(destinations[0].pk)])
    body = client.get(url("rules", project)).content.decode()
    assert "gpt-4 to langfuse" in body and "New rule" not in body and "Save defaults" not in body
    assert client.get(url("rule-versions", project)).status_code == 200
    forbidden = [
        ("get", url("rule-new", project), {}),
        ("post", url("rule-new", project), builder_form()),
        ("get", url("rule-edit", project, rule["id"]), {}),
        ("post", url("rule-toggle", project, rule["id"]), {}),
        ("post", url("rule-move", project, rule["id"]), {"direction": "up"}),
        ("post", url("rule-delete", project, rule["id"]), {}),
        ("post", url("rules-settings", project), {"sampling_rate": "10"}),
        ("post", url("rule-dry-run", project), builder_form()),
        ("post", url("rule-rollback", project, 1), {}),
        ("get", url("rule-row", project) + "?kind=condition", {}),
    ]
    for method, address, data in forbidden:
        assert getattr(client, method)(address, data).status_code == 403, address
    assert active_document(project.pk)[0] == 1


def test_another_organizations_project_is_404(signed_in, destinations):
    other = ProjectFactory()
    rule = save_rule(other, destinations=[str(DestinationFactory(project=other).pk)])
    for address in (
        url("rules", other),
        url("rule-new", other),
        url("rule-edit", other, rule["id"]),
        url("rule-versions", other),
    ):
        assert signed_in.get(address).status_code == 404, address
    assert signed_in.post(url("rule-toggle", other, rule["id"])).status_code == 404
    assert signed_in.post(url("rule-rollback", other, 1)).status_code == 404
    assert active_document(other.pk)[0] == 1
