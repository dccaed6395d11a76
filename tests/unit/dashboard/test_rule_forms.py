"""The rule builder's conversion between rule JSON and form rows, and the list summaries."""

from django.http import QueryDict

from apps.dashboard.rule_forms import Builder, actions_summary, conditions_summary

A = "11111111-1111-4111-8111-111111111111"
B = "22222222-2222-4222-8222-222222222222"

RULE = {
    "name": "mixed",
    "enabled": False,
    "priority": 7,
    "conditions": {
        "all": [
            {"field": "model", "operator": "glob", "value": "gpt-4*"},
            {"field": "tags.team", "operator": "in", "value": ["search", "ads"]},
            {"field": "latency_ms", "operator": "gte", "value": 1500},
            {"field": "attributes.retry", "operator": "eq", "value": True},
            {"field": "error.type", "operator": "exists", "value": False},
        ]
    },
    "actions": {
        "split": {A: 90, B: 10},
        "sampling": {"rate": 0.125, "keep_errors": False, "cost_threshold": 0.05},
        "metadata": {"team": "search", "weight": 5, "flags": {"a": 1}},
        "transformations": [{"type": "redact_pii", "mode": "hash"}],
        "stop": True,
    },
}


def as_post(builder: Builder) -> QueryDict:
    """What the browser sends for a builder's rows."""
    data = QueryDict(mutable=True)
    data.update({"name": builder.name, "priority": builder.priority, "match": builder.match})
    for flag in ("enabled", "keep_errors", "pii", "stop"):
        if getattr(builder, flag):
            data[flag] = "on"
    for key in ("sampling_rate", "latency_threshold_ms", "cost_threshold", "fallback", "pii_mode"):
        data[key] = getattr(builder, key)
    data.setlist("destinations", builder.destinations)
    data.setlist("shadow", builder.shadow)
    for name, key in (("cond_field", "field"), ("cond_key", "key"), ("cond_operator", "operator")):
        data.setlist(name, [row.get(key) for row in builder.conditions])
    data.setlist("cond_value", [row.get("value") for row in builder.conditions])
    data.setlist("split_destination", [row.get("destination") for row in builder.split])
    data.setlist("split_percent", [row.get("percent") for row in builder.split])
    data.setlist("meta_key", [row.get("key") for row in builder.metadata])
    data.setlist("meta_value", [row.get("value") for row in builder.metadata])
    data["preserved"] = builder.preserved_json
    return data


def test_a_rule_survives_the_form_round_trip():
    shown = Builder.from_rule(RULE)
    assert [row.get("field") for row in shown.conditions] == [
        "model",
        "tags",
        "latency_ms",
        "other",
        "error.type",
    ]
    assert shown.conditions[1].get("value") == "search, ads"
    assert shown.sampling_rate == "12.5" and shown.preserved == {"redact_at": 0}
    assert Builder.from_post(as_post(shown)).to_rule() == RULE


def test_errors_land_on_rows_and_fields():
    builder = Builder.from_rule(RULE)
    assert builder.to_rule() is not None
    builder.add_config_error("conditions.all[3].value", "bad value")
    builder.add_config_error("actions.split." + B, "bad percent")
    builder.add_config_error("actions.sampling.cost_threshold", "must be greater than 0")
    builder.add_config_error("actions.transformations[0].mode", "unknown mode")
    builder.add_config_error("something.else", "odd")
    assert builder.conditions[3].errors == {"value": "bad value"}
    assert builder.split[1].errors == {"percent": "bad percent"}
    assert builder.errors == {
        "cost_threshold": "must be greater than 0",
        "pii": "unknown mode",
        "rule": "something.else: odd",
    }


def test_blank_rows_are_skipped_and_error_indexes_follow_the_sent_conditions():
    data = QueryDict(mutable=True)
    data.update({"name": "x", "priority": "1", "preserved": "not json"})
    data.setlist("cond_field", ["model", "model", "cost"])
    data.setlist("cond_key", ["", "", ""])
    data.setlist("cond_operator", ["eq", "eq", "lt"])
    data.setlist("cond_value", ["gpt-4o", "", "0.5"])
    builder = Builder.from_post(data)
    rule = builder.to_rule()
    assert rule["conditions"] == {
        "all": [
            {"field": "model", "operator": "eq", "value": "gpt-4o"},
            {"field": "cost", "operator": "lt", "value": 0.5},
        ]
    }
    builder.add_config_error("conditions.all[1].value", "no")
    assert builder.conditions[2].errors == {"value": "no"} and not builder.conditions[1].errors


def test_summaries():
    assert conditions_summary(None) == "every span"
    assert conditions_summary(RULE["conditions"]) == (
        "model matches “gpt-4*” and tags.team in [“search”, “ads”] and latency_ms ≥ 1500 "
        "and attributes.retry = true and error.type is missing"
    )
    either = {
        "any": [
            {"field": "model", "operator": "eq", "value": "a"},
            {"field": "kind", "operator": "eq", "value": "b"},
        ]
    }
    assert conditions_summary(either) == "model = “a” or kind = “b”"
    names = {A: "langfuse", B: "archive"}
    assert actions_summary(RULE["actions"], names) == (
        "split langfuse 90 % / archive 10 %; sample 12.5 %; redact PII (hash); "
        "metadata team, weight, flags; stop"
    )
