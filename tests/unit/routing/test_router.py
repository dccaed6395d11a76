import uuid
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.routing.config import compile_config
from apps.routing.context import TransformContext
from apps.routing.errors import ConfigError
from apps.routing.router import plan_span, plan_spans, render
from apps.routing.sampling import TraceFacts, trace_fraction

A, B, C, D = (str(uuid.UUID(int=i)) for i in range(1, 5))
KNOWN = {A, B, C, D}
CTX = TransformContext(hash_key=b"k" * 32, values={"project": {"id": "p", "name": "P"}})


def span(i=0, **fields):
    base = {"id": f"s{i}", "trace_id": f"t{i}", "model": "gpt-4o-mini", "provider": "openai", "kind": "llm"}
    return {**base, **fields}


def rule(name, conditions=None, priority=100, **actions):
    return {"name": name, "priority": priority, "conditions": conditions or {}, "actions": actions}


def cond(field, operator, value):
    return {"all": [{"field": field, "operator": operator, "value": value}]}


def config(*rules, **document):
    return compile_config({"rules": list(rules), **document}, destination_ids=KNOWN)


def destinations(plan):
    return [t.destination_id for t in plan.targets]


def test_rules_run_in_priority_order_unite_destinations_and_stop():
    cfg = config(
        rule("late", priority=20, destinations=[C]),
        rule("first", cond("model", "glob", "gpt-*"), priority=10, destinations=[A, B]),
        rule("again", priority=15, destinations=[B]),
    )
    plan = plan_span(cfg, span(), TraceFacts())
    assert [r.name for r in plan.matched] == ["first", "again", "late"]
    assert destinations(plan) == [A, B, C]
    assert plan.targets[1].rule.name == "first"  # the first rule naming a destination owns it

    stopping = config(rule("stop", priority=1, destinations=[A], stop=True), rule("never", destinations=[B]))
    assert destinations(plan_span(stopping, span(), TraceFacts())) == [A]


def test_unmatched_spans_go_to_default_destinations():
    cfg = config(
        rule("anthropic", cond("provider", "eq", "anthropic"), destinations=[A]), default_destinations=[D]
    )
    plan = plan_span(cfg, span(), TraceFacts())
    assert plan.matched == [] and destinations(plan) == [D] and plan.targets[0].role == "default"
    assert destinations(plan_span(cfg, span(provider="anthropic"), TraceFacts())) == [A]


def test_disabled_destinations_are_reported_not_sent():
    cfg = config(rule("all", destinations=[A, B]))
    plan = plan_span(cfg, span(), TraceFacts(), enabled={A})
    assert destinations(plan) == [A] and plan.disabled == [B]


def test_split_is_deterministic_per_trace_and_fallback_and_shadow_are_carried():
    cfg = config(rule("migrate", split={A: 70, B: 30}, fallback=C, shadow=[D]))
    first = plan_span(cfg, span(1), TraceFacts())
    again = plan_span(cfg, span(1), TraceFacts())
    assert destinations(first) == destinations(again)
    roles = {t.destination_id: t.role for t in first.targets}
    assert roles[D] == "shadow" and set(roles) - {D} <= {A, B}
    assert all(t.fallback_id == C for t in first.targets)


@settings(max_examples=5, deadline=None)
@given(st.integers(min_value=1, max_value=99))
def test_splits_land_within_one_percent_over_100k_traces(percent):
    cfg = config(rule("split", split={A: percent, B: 100 - percent}))
    the_rule = cfg.rules[0]
    counts = Counter(the_rule.split.choose(trace_fraction(f"trace-{i}", the_rule.id)) for i in range(100_000))
    assert abs(counts[A] / 100_000 - percent / 100) < 0.01


def test_sampling_is_per_trace_and_records_rate_and_policy():
    cfg = config(rule("sampled", destinations=[A], sampling={"rate": 0.3}))
    spans = [span(i, trace_id=f"trace-{i // 4}") for i in range(4000)]
    plans = plan_spans(cfg, spans)
    by_trace: dict[str, set[bool]] = {}
    for plan in plans:
        by_trace.setdefault(plan.span["trace_id"], set()).add(bool(plan.targets))
    assert all(len(decisions) == 1 for decisions in by_trace.values())
    kept = sum(decisions == {True} for decisions in by_trace.values())
    assert 0.25 < kept / len(by_trace) < 0.35
    kept_plan = next(p for p in plans if p.targets)
    payload, _ = render(cfg, kept_plan, kept_plan.targets[0], CTX)
    assert payload["metadata"]["untrace"] == {"sample_rate": 0.3, "sampled_by": "rate", "rule": "sampled"}


def test_an_error_anywhere_in_the_batch_keeps_the_whole_trace():
    cfg = config(rule("r", destinations=[A]), sampling={"rate": 0.001})
    spans = [span(1, trace_id="x"), span(2, trace_id="x", error={"type": "E", "message": "m"})]
    plans = plan_spans(cfg, spans)
    assert all(destinations(p) == [A] for p in plans)
    assert plans[0].targets[0].decision.policy == "error"


def test_render_applies_rule_metadata_and_never_changes_the_stored_span():
    cfg = config(rule("r", destinations=[A], metadata={"team": "search"}))
    original = span(metadata={"tags": {"a": "b"}})
    plan = plan_span(cfg, original, TraceFacts())
    payload, report = render(cfg, plan, plan.targets[0], CTX)
    assert payload["metadata"]["team"] == "search" and payload["metadata"]["tags"] == {"a": "b"}
    assert "untrace" not in original["metadata"] and "team" not in original["metadata"]
    assert report.as_dict() == {"redactions": {}, "truncated": [], "changed": []}


@pytest.mark.parametrize(
    ("document", "field", "message"),
    [
        ({"rules": {}}, "rules", "must be a list"),
        ({"routes": []}, "routes", "not a routing configuration setting"),
        ({"rules": [rule("", destinations=[A])]}, "rules[0].name", "non-empty string"),
        (
            {"rules": [rule("r", destinations=["nope"])]},
            "rules[0].actions.destinations[0]",
            "not a destination id",
        ),
        (
            {"rules": [rule("r", destinations=[str(uuid.uuid4())])]},
            "rules[0].actions.destinations[0]",
            "no destination",
        ),
        ({"rules": [rule("r", split={A: 50, B: 40})]}, "rules[0].actions.split", "sum to 100, not 90"),
        ({"rules": [rule("r", split={A: 0, B: 100})]}, "rules[0].actions.split." + A, "greater than 0"),
        ({"rules": [rule("r")]}, "rules[0].actions", "must send somewhere"),
        ({"rules": [rule("r", destinations=[A], fallback=A)]}, "rules[0].actions.fallback", "must differ"),
        ({"rules": [rule("r", destinations=[A], stop="yes")]}, "rules[0].actions.stop", "true or false"),
        ({"rules": [rule("r", destinations=[A], then=[B])]}, "rules[0].actions.then", "not a rule action"),
        ({"rules": [{**rule("r", destinations=[A]), "priority": "high"}]}, "rules[0].priority", "integer"),
        (
            {"rules": [rule("r", cond("model", "regex", "(("), destinations=[A])]},
            "rules[0].conditions.all[0].value",
            "not a valid regular expression",
        ),
        (
            {"rules": [rule("r", destinations=[A], sampling={"rate": 2})]},
            "rules[0].actions.sampling.rate",
            "0.001",
        ),
        (
            {"rules": [rule("r", destinations=[A], transformations=[{"type": "nope"}])]},
            "rules[0].actions.transformations[0].type",
            "nope",
        ),
        ({"default_destinations": [A, "x"]}, "default_destinations[1]", "not a destination id"),
        (
            {"destination_policies": {A: {"sampling": {"rate": 0}}}},
            f"destination_policies.{A}.sampling.rate",
            "0.001",
        ),
        (
            {"destination_policies": {A: {"limit": 1}}},
            f"destination_policies.{A}.limit",
            "not a destination policy",
        ),
        ({"rules": [{**rule("r", destinations=[A]), "id": "one"}]}, "rules[0].id", "not a UUID"),
    ],
)
def test_invalid_documents_name_the_problem(document, field, message):
    with pytest.raises(ConfigError) as caught:
        compile_config(document, destination_ids=KNOWN)
    assert caught.value.field == field, caught.value
    assert message in caught.value.message, caught.value.message


PLANTED = ["jane.roe@example.org", "4111 1111 1111 1111", "sk-proj-Abc123def456ghi789jkl012mno345pqr678"]
json_leaf = st.one_of(st.text(max_size=20), st.integers(-(2**63), 2**63 - 1), st.booleans(), st.none())


def _nested(depth: int):
    if depth == 0:
        return json_leaf
    return st.one_of(
        json_leaf,
        st.lists(_nested(depth - 1), max_size=3),
        st.dictionaries(st.text(min_size=1, max_size=8), _nested(depth - 1), max_size=3),
    )


@settings(max_examples=150, deadline=None)
@given(
    where=st.sampled_from(["request", "response", "metadata"]),
    path=st.lists(st.text(alphabet="abcdefgh", min_size=1, max_size=6), min_size=1, max_size=4),
    noise=_nested(2),
    secret=st.sampled_from(PLANTED),
    prefix=st.text(max_size=30),
)
def test_planted_secrets_never_reach_any_destination(where, path, noise, secret, prefix):
    import orjson

    cfg = config(
        rule("a", destinations=[A], transformations=[{"type": "truncate", "path": "name", "max_length": 5}]),
        rule("b", destinations=[B], metadata={"copy": "x"}),
        transformations=[{"type": "redact_pii"}],
        default_destinations=[C],
        destination_policies={A: {"transformations": [{"type": "redact_pii", "mode": "hash"}]}},
    )
    value: object = f"{prefix} {secret} trailing"
    for key in reversed(path):
        value = {key: value}
    original = span(9, **{where: {"noise": noise, "planted": value}})
    plan = plan_span(cfg, original, TraceFacts())
    assert plan.targets
    for target in plan.targets:
        payload, _ = render(cfg, plan, target, CTX)
        assert secret.encode() not in orjson.dumps(payload)
