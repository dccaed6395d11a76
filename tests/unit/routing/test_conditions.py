import pytest

from apps.routing.conditions import compile_conditions
from apps.routing.errors import ConfigError

SPAN = {
    "id": "s1",
    "trace_id": "t1",
    "model": "gpt-4o-mini",
    "provider": "openai",
    "kind": "llm",
    "user_id": "u-7",
    "metadata": {"environment": "production", "tags": {"team": "search"}, "flag": True},
    "metrics": {"estimated_cost": 0.02, "latency_ms": 1200.0},
    "response": {"usage": {"total_tokens": 900}},
    "error": {"type": "RateLimitError", "message": "slow down"},
    "attributes": {"gen_ai.system": "openai", "list": ["a", "b"]},
}


def matches(conditions) -> bool:
    return compile_conditions(conditions, where="conditions")(SPAN)


def leaf(field, operator, value=None, **extra):
    cond = {"field": field, "operator": operator, **extra}
    if value is not None:
        cond["value"] = value
    return {"all": [cond]}


@pytest.mark.parametrize(
    ("field", "operator", "value", "expected"),
    [
        ("model", "eq", "gpt-4o-mini", True),
        ("model", "eq", "gpt-4o", False),
        ("model", "neq", "gpt-4o", True),
        ("missing.field", "neq", "x", True),
        ("missing.field", "eq", "x", False),
        ("model", "glob", "gpt-4*", True),
        ("model", "glob", "claude-*", False),
        ("model", "regex", "^gpt-4o(-mini)?$", True),
        ("model", "regex", "sonnet", False),
        ("provider", "in", ["anthropic", "openai"], True),
        ("provider", "in", ["anthropic"], False),
        ("environment", "eq", "production", True),
        ("tags.team", "eq", "search", True),
        ("metadata.tags.team", "contains", "ear", True),
        ("cost", "gt", 0.01, True),
        ("cost", "gte", 0.02, True),
        ("cost", "lt", 0.02, False),
        ("latency_ms", "lte", 1200, True),
        ("tokens", "gt", 1000, False),
        ("error.type", "eq", "RateLimitError", True),
        ("error", "exists", True, True),
        ("session", "exists", False, True),
        ("user", "eq", "u-7", True),
        ("attributes.gen_ai.system", "eq", "openai", True),
        ("attributes.list", "contains", "b", True),
        ("metadata", "contains", "flag", True),
        ("metadata.flag", "eq", True, True),
        ("metadata.flag", "eq", 1, False),
        ("model", "gt", 3, False),
    ],
)
def test_operators(field, operator, value, expected):
    assert matches(leaf(field, operator, value)) is expected


def test_groups_nest_and_empty_conditions_match_everything():
    assert matches(None) and matches({}) and matches({"all": [], "any": []})
    assert matches({"any": [leaf("model", "eq", "x"), leaf("provider", "eq", "openai")]})
    assert not matches({"all": [leaf("model", "eq", "x"), leaf("provider", "eq", "openai")]})
    assert matches({"not": {"field": "model", "operator": "eq", "value": "x"}})
    assert not matches(
        {"all": [{"field": "kind", "operator": "eq", "value": "llm"}], "not": leaf("cost", "gt", 0)}
    )
    nested = {
        "any": [
            {"all": [{"not": {"field": "model", "operator": "glob", "value": "gpt-*"}}]},
            leaf("kind", "eq", "llm"),
        ]
    }
    assert matches(nested)


@pytest.mark.parametrize(
    ("conditions", "field", "message"),
    [
        ([], "conditions", "must be an object"),
        ({"every": []}, "conditions.every", "use all, any or not"),
        ({"all": {}}, "conditions.all", "must be a list"),
        ({"all": ["model"]}, "conditions.all[0]", "must be an object"),
        (
            {"all": [{"field": "model", "operator": "like", "value": "x"}]},
            "conditions.all[0].operator",
            "unknown operator 'like'",
        ),
        (
            {"all": [{"field": "model", "operator": "regex", "value": "(unclosed"}]},
            "conditions.all[0].value",
            "not a valid regular expression",
        ),
        (
            {"all": [{"field": "cost", "operator": "gt", "value": "1"}]},
            "conditions.all[0].value",
            "must be a number",
        ),
        (
            {"all": [{"field": "model", "operator": "in", "value": "gpt"}]},
            "conditions.all[0].value",
            "must be a list",
        ),
        ({"all": [{"field": "model", "operator": "eq"}]}, "conditions.all[0].value", "is required"),
        (
            {"all": [{"field": "", "operator": "eq", "value": 1}]},
            "conditions.all[0].field",
            "non-empty string",
        ),
        (
            {"all": [{"field": "a..b", "operator": "eq", "value": 1}]},
            "conditions.all[0].field",
            "not a field path",
        ),
        (
            {"all": [{"field": "model", "operator": "eq", "value": [1]}]},
            "conditions.all[0].value",
            "must be a string",
        ),
        (
            {"all": [{"field": "model", "operator": "exists", "value": "yes"}]},
            "conditions.all[0].value",
            "true or false",
        ),
        (
            {"all": [{"field": "model", "operator": "eq", "value": 1, "extra": 2}]},
            "conditions.all[0].extra",
            "not part of a condition",
        ),
        (
            {
                "not": {
                    "not": {
                        "not": {
                            "not": {
                                "not": {
                                    "not": {"not": {"not": {"not": {"field": "m", "operator": "exists"}}}}
                                }
                            }
                        }
                    }
                }
            },
            "conditions.not.not.not.not.not.not.not.not.not",
            "nests deeper",
        ),
    ],
)
def test_invalid_conditions_name_the_field(conditions, field, message):
    with pytest.raises(ConfigError) as caught:
        compile_conditions(conditions, where="conditions")
    assert caught.value.field == field
    assert message in caught.value.message


def test_regex_is_linear_time_re2():
    # A pattern that backtracks catastrophically in a backtracking engine.
    predicate = compile_conditions(leaf("model", "regex", "(a+)+$"), where="c")
    assert predicate({"model": "a" * 50_000 + "!"}) is False
