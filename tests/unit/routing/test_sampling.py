import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.routing.errors import ConfigError
from apps.routing.sampling import Sampler, TraceFacts, compile_sampler, decide_all, trace_fraction

NONE = TraceFacts()


def test_trace_fraction_is_stable_and_uniform_enough():
    assert trace_fraction("abc") == trace_fraction("abc")
    assert trace_fraction("abc") != trace_fraction("abd")
    values = [trace_fraction(str(uuid.UUID(int=i))) for i in range(20_000)]
    assert all(0 <= v < 1 for v in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.01


@pytest.mark.parametrize("rate", [0.001, 0.01, 0.1, 0.5, 0.9])
def test_rates_within_statistical_tolerance(rate):
    n = 100_000
    sampler = Sampler(rate=rate)
    kept = sum(sampler.decide(trace_fraction(f"trace-{i}"), NONE).keep for i in range(n))
    sigma = (n * rate * (1 - rate)) ** 0.5
    assert abs(kept - n * rate) < 5 * sigma + 1


def test_errors_and_slow_traces_are_always_kept():
    sampler = Sampler(rate=0.001, latency_threshold_ms=5000)
    u = 0.9
    assert not sampler.decide(u, NONE).keep
    assert sampler.decide(u, TraceFacts(has_error=True)).policy == "error"
    assert sampler.decide(u, TraceFacts(max_latency_ms=5000)).policy == "latency"
    assert not Sampler(rate=0.001, keep_errors=False).decide(u, TraceFacts(has_error=True)).keep


def test_cost_based_keep_probability_grows_with_cost():
    sampler = Sampler(rate=0.1, cost_threshold=1.0)
    assert sampler.decide(0.99, TraceFacts(total_cost=1.0)).policy == "cost"
    assert sampler.decide(0.99, TraceFacts(total_cost=1.0)).keep
    half = sampler.decide(0.5, TraceFacts(total_cost=0.5))
    assert half.rate == pytest.approx(0.55) and half.keep
    assert not sampler.decide(0.6, TraceFacts(total_cost=0.5)).keep
    assert sampler.decide(0.05, NONE).keep and not sampler.decide(0.2, NONE).keep


def test_levels_nest_the_smallest_rate_wins():
    project, destination = Sampler(rate=0.5), Sampler(rate=0.1)
    ids = [f"t{i}" for i in range(20_000)]
    at_half = {t for t in ids if decide_all((project,), trace_fraction(t), NONE).keep}
    at_tenth = {t for t in ids if decide_all((project, destination), trace_fraction(t), NONE).keep}
    assert at_tenth <= at_half
    assert abs(len(at_tenth) / len(ids) - 0.1) < 0.01
    decision = decide_all((project, destination), 0.01, NONE)
    assert decision.keep and decision.rate == 0.1


@settings(max_examples=200, deadline=None)
@given(
    trace_id=st.text(min_size=1, max_size=40),
    rate=st.floats(min_value=0.001, max_value=1.0),
    spans=st.lists(st.tuples(st.booleans(), st.floats(0, 10_000), st.floats(0, 2)), min_size=1, max_size=8),
)
def test_a_decision_never_turns_from_keep_to_drop_as_a_trace_grows(trace_id, rate, spans):
    sampler = Sampler(rate=rate, latency_threshold_ms=5000, cost_threshold=1.0)
    u = trace_fraction(trace_id)
    facts, kept_before = TraceFacts(), False
    for has_error, latency, cost in spans:
        facts = facts.merge(TraceFacts(has_error, latency, cost))
        kept = sampler.decide(u, facts).keep
        assert kept or not kept_before
        kept_before = kept


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ("all", "s", "must be an object"),
        ({"rate": 0}, "s.rate", "from 0.001"),
        ({"rate": 1.5}, "s.rate", "from 0.001"),
        ({"rate": "0.5"}, "s.rate", "from 0.001"),
        ({"rate": 0.5, "keep_errors": "yes"}, "s.keep_errors", "true or false"),
        ({"rate": 0.5, "cost_threshold": -1}, "s.cost_threshold", "greater than 0"),
        ({"rate": 0.5, "latency_threshold_ms": "slow"}, "s.latency_threshold_ms", "must be a number"),
        ({"percent": 5}, "s.percent", "not a sampling setting"),
    ],
)
def test_invalid_sampling(spec, field, message):
    with pytest.raises(ConfigError) as caught:
        compile_sampler(spec, where="s")
    assert (caught.value.field, message in caught.value.message) == (field, True)
