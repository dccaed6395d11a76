import math

import pytest

from apps.traces.accounting import Timings, compute_timings


def test_streamed_call():
    timings = compute_timings(start_ms=1000.0, end_ms=2200.0, first_token_ms=1200.0, output_tokens=101)
    assert timings.latency_ms == 1200.0
    assert timings.time_to_first_token_ms == 200.0
    assert timings.time_per_output_token_ms == 10.0  # 1000 ms for the 100 tokens after the first
    assert timings.tokens_per_second == pytest.approx(101 / 1.2)


def test_one_output_token_has_no_time_per_token():
    timings = compute_timings(start_ms=0, end_ms=500, first_token_ms=400, output_tokens=1)
    assert timings.time_per_output_token_ms is None
    assert timings.tokens_per_second == 2.0


def test_zero_output_tokens():
    timings = compute_timings(start_ms=0, end_ms=500, first_token_ms=400, output_tokens=0)
    assert timings.time_per_output_token_ms is None
    assert timings.tokens_per_second == 0.0


def test_zero_duration_does_not_divide_by_zero():
    timings = compute_timings(start_ms=1000, end_ms=1000, first_token_ms=1000, output_tokens=10)
    assert timings == Timings(
        latency_ms=0.0, time_to_first_token_ms=0.0, time_per_output_token_ms=0.0, tokens_per_second=None
    )


def test_negative_duration_gives_nothing():
    timings = compute_timings(start_ms=2000, end_ms=1000, first_token_ms=None, output_tokens=10)
    assert timings == Timings()


@pytest.mark.parametrize("first_token_ms", [900.0, 2500.0])
def test_first_token_outside_the_call_is_ignored(first_token_ms):
    timings = compute_timings(start_ms=1000, end_ms=2000, first_token_ms=first_token_ms, output_tokens=10)
    assert timings.latency_ms == 1000.0
    assert timings.time_to_first_token_ms is None
    assert timings.time_per_output_token_ms is None
    assert timings.tokens_per_second == 10.0


def test_non_streamed_call_has_latency_and_throughput_only():
    timings = compute_timings(start_ms=0, end_ms=2000, first_token_ms=None, output_tokens=50)
    assert timings == Timings(latency_ms=2000.0, tokens_per_second=25.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"start_ms": None, "end_ms": None, "first_token_ms": None, "output_tokens": None},
        {"start_ms": None, "end_ms": 1000, "first_token_ms": 500, "output_tokens": 10},
        {"start_ms": math.nan, "end_ms": 1000, "first_token_ms": None, "output_tokens": 10},
        {"start_ms": True, "end_ms": 1000, "first_token_ms": None, "output_tokens": 10},
    ],
)
def test_missing_or_invalid_times(kwargs):
    timings = compute_timings(**kwargs)
    assert timings.latency_ms is None
    assert timings.tokens_per_second is None
    assert timings.time_per_output_token_ms is None


@pytest.mark.parametrize("output_tokens", [None, -5, True])
def test_missing_or_invalid_output_tokens(output_tokens):
    timings = compute_timings(start_ms=0, end_ms=1000, first_token_ms=100, output_tokens=output_tokens)
    assert timings.latency_ms == 1000.0
    assert timings.time_to_first_token_ms == 100.0
    assert timings.time_per_output_token_ms is None
    assert timings.tokens_per_second is None


def test_a_vanishing_latency_gives_no_tokens_per_second():
    timings = compute_timings(start_ms=0.0, end_ms=5e-324, first_token_ms=None, output_tokens=10)
    assert timings.latency_ms == 5e-324
    assert timings.tokens_per_second is None
