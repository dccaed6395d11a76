import pytest

from tests.integration.routing.conftest import error

pytestmark = pytest.mark.django_db


def span(i, **fields):
    return {
        "id": f"span-{i}",
        "trace_id": f"trace-{i}",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "request": {"messages": [{"role": "user", "content": "Mail me at jane@example.com"}]},
        "response": {"content": "ok", "usage": {"prompt_tokens": 10, "completion_tokens": 2}},
        "metadata": {"environment": "production"},
        **fields,
    }


@pytest.fixture
def routed(api, destinations):
    primary, secondary = destinations
    document = {
        "rules": [
            {
                "name": "gpt to primary",
                "priority": 1,
                "conditions": {"all": [{"field": "model", "operator": "glob", "value": "gpt-*"}]},
                "actions": {"destinations": [str(primary.pk)], "metadata": {"team": "search"}},
            }
        ],
        "default_destinations": [str(secondary.pk)],
    }
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    return primary, secondary


def test_given_spans_show_rules_destinations_payloads_and_diffs(api, routed):
    primary, secondary = routed
    response = api.post(
        "/v1/routing/dry-run", {"spans": [span(1), span(2, model="claude-3-5-haiku")]}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["version"] == 1 and body["proposed"] is False
    first, second = (trace["spans"][0] for trace in body["traces"])
    assert [r["name"] for r in first["matched_rules"]] == ["gpt to primary"]
    (target,) = first["destinations"]
    assert target["destination_id"] == str(primary.pk) and target["name"] == "primary"
    assert target["payload"]["metadata"]["team"] == "search"
    assert target["payload"]["metrics"]["estimated_cost"] > 0  # accounting filled as at ingest
    assert {"op": "add", "path": "/metadata/team", "value": "search"} in target["diff"]
    assert {
        "op": "add",
        "path": "/metadata/untrace",
        "value": {"sample_rate": 1.0, "sampled_by": "no_sampling", "rule": "gpt to primary"},
    } in target["diff"]
    assert target["sampling"] == {"keep": True, "rate": 1.0, "policy": "no_sampling"}
    assert second["matched_rules"] == [] and second["default_destinations"] is True
    assert second["destinations"][0]["destination_id"] == str(secondary.pk)


def test_a_proposed_config_is_tried_without_saving(api, routed):
    primary, _ = routed
    proposed = {
        "rules": [
            {
                "name": "redact",
                "conditions": {},
                "actions": {
                    "destinations": [str(primary.pk)],
                    "transformations": [{"type": "redact_pii"}],
                    "sampling": {"rate": 0.001},
                },
            }
        ]
    }
    body = api.post(
        "/v1/routing/dry-run",
        {"spans": [span(1, error={"type": "E", "message": "boom"})], "config": proposed},
        format="json",
    ).json()
    assert body["proposed"] is True and body["version"] is None
    (target,) = body["traces"][0]["spans"][0]["destinations"]
    assert target["sampling"]["policy"] == "error"
    assert "jane@example.com" not in str(target["payload"])
    assert target["transformations"]["redactions"] == {"email": 1}
    assert api.get("/v1/routing/config").json()["version"] == 1


def test_recent_traces_from_the_store(api, routed, ingest):
    ingest([span(1), span(2), span(3)])
    body = api.post("/v1/routing/dry-run", {"recent": 2}, format="json").json()
    assert sorted(t["trace_id"] for t in body["traces"]) == ["trace-2", "trace-3"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "spans"),
        ({"spans": [], "recent": 1}, "spans"),
        ({"spans": []}, "spans"),
        ({"spans": ["x"]}, "spans[0]"),
        ({"spans": [{"id": 5}]}, "spans[0].id"),
        ({"recent": 0}, "recent"),
        ({"recent": "5"}, "recent"),
        (
            {
                "spans": [{"id": "a"}],
                "config": {"rules": [{"name": "r", "actions": {"destinations": ["x"]}}]},
            },
            "config.rules[0].actions.destinations[0]",
        ),
        ({"spans": [{"id": "a"}], "send": True}, "send"),
        ({"spans": [{"id": str(i)} for i in range(101)]}, "spans"),
    ],
)
def test_bad_dry_runs(api, routed, body, field):
    assert error(api.post("/v1/routing/dry-run", body, format="json"), 400)["details"]["field"] == field
