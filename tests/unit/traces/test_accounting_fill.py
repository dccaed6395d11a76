import copy
from decimal import Decimal

import pytest

from apps.traces.accounting import (
    ModelPrice,
    count_message_tokens,
    count_text_tokens,
    estimate_cost,
    fill_accounting,
)

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Say hello world."},
]


def llm_span(**changes):
    span = {
        "id": "s1",
        "kind": "llm",
        "model": "GPT-4o-2024-08-06",
        "start_time": 1_700_000_000_000.0,
        "end_time": 1_700_000_001_200.0,
        "request": {"messages": copy.deepcopy(MESSAGES)},
        "response": {"content": "hello world"},
    }
    span.update(changes)
    return span


def test_fills_everything_a_bare_span_lacks():
    span = llm_span(metrics={"time_to_first_token_ms": 200.0})
    filled = fill_accounting(span)

    prompt = count_message_tokens(messages=MESSAGES, model="gpt-4o")
    completion = count_text_tokens(text="hello world", model="gpt-4o")
    assert completion == 2
    assert filled["provider"] == "openai"
    assert filled["model"] == "gpt-4o-2024-08-06"
    assert filled["response"]["usage"] == {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "usage_estimated": True,
    }
    cost = estimate_cost(model="gpt-4o", provider="openai", input_tokens=prompt, output_tokens=completion)
    assert filled["metrics"] == {
        "time_to_first_token_ms": 200.0,
        "latency_ms": 1200.0,
        "estimated_cost": float(cost),
        "time_per_output_token_ms": 1000.0,  # (1200 - 200) ms over the 1 token after the first
        "tokens_per_second": pytest.approx(2 / 1.2),
    }


def test_does_not_mutate_its_input():
    span = llm_span(metrics={"time_to_first_token_ms": 200.0})
    before = copy.deepcopy(span)
    filled = fill_accounting(span)
    assert span == before
    assert filled is not span
    assert filled["response"] is not span.get("response")  # changed objects are new ones
    assert filled["metrics"] is not span["metrics"]


def test_never_overwrites_client_values():
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "total_tokens": 1499,  # inconsistent, but it is the client's
        "prompt_tokens_details": {"cached_tokens": 200},
    }
    metrics = {
        "latency_ms": 5000.0,
        "time_to_first_token_ms": 100.0,
        "time_per_output_token_ms": 7.0,
        "tokens_per_second": 1.0,
        "estimated_cost": 123.0,
    }
    span = llm_span(provider="openai", model="gpt-4o", metrics=dict(metrics))
    span["response"]["usage"] = dict(usage)
    filled = fill_accounting(span)
    assert filled["response"]["usage"] == usage
    assert filled["metrics"] == metrics


def test_uses_client_usage_for_cost_and_cached_tokens():
    span = llm_span(model="gpt-4o")
    span["response"]["usage"] = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "prompt_tokens_details": {"cached_tokens": 200},
    }
    filled = fill_accounting(span)
    assert filled["response"]["usage"]["total_tokens"] == 1500
    assert "usage_estimated" not in filled["response"]["usage"]
    assert filled["metrics"]["estimated_cost"] == float(Decimal("0.00725000"))


def test_estimates_only_the_missing_part_of_usage():
    span = llm_span(model="gpt-4o")
    span["response"]["usage"] = {"prompt_tokens": 40}
    usage = fill_accounting(span)["response"]["usage"]
    assert usage == {"prompt_tokens": 40, "completion_tokens": 2, "total_tokens": 42, "usage_estimated": True}


def test_keeps_a_client_usage_estimated_flag():
    span = llm_span(model="gpt-4o")
    span["response"]["usage"] = {"prompt_tokens": 40, "usage_estimated": False}
    assert fill_accounting(span)["response"]["usage"]["usage_estimated"] is False


def test_none_counts_as_not_sent():
    span = llm_span(model="gpt-4o", metrics={"latency_ms": None, "estimated_cost": None})
    span["response"]["usage"] = {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": None}
    filled = fill_accounting(span)
    assert filled["response"]["usage"]["total_tokens"] == 20
    assert filled["metrics"]["latency_ms"] == 1200.0
    assert filled["metrics"]["estimated_cost"] == float(
        estimate_cost(model="gpt-4o", provider=None, input_tokens=10, output_tokens=10)
    )


def test_prompt_string_and_response_messages_are_counted():
    span = llm_span(
        model="gpt-4",
        request={"prompt": "tiktoken is great!"},
        response={"messages": [{"role": "assistant", "content": "hello world"}]},
    )
    usage = fill_accounting(span)["response"]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (6, 2)


def test_ttft_longer_than_the_call_gives_no_time_per_token():
    metrics = fill_accounting(llm_span(metrics={"time_to_first_token_ms": 5000.0}))["metrics"]
    assert "time_per_output_token_ms" not in metrics
    assert metrics["latency_ms"] == 1200.0


def test_unknown_model_gets_usage_but_no_cost():
    filled = fill_accounting(llm_span(model="my-local-model", provider="ollama"))
    assert filled["response"]["usage"]["usage_estimated"] is True
    assert "estimated_cost" not in filled["metrics"]
    assert filled["provider"] == "ollama"


def test_price_overrides():
    span = llm_span(model="gpt-4o")
    span["response"]["usage"] = {"prompt_tokens": 1_000_000, "completion_tokens": 0}
    filled = fill_accounting(span, price_overrides={"gpt-4o": ModelPrice(input=1, output=1)})
    assert filled["metrics"]["estimated_cost"] == 1.0


def test_embedding_has_no_completion_tokens():
    span = {
        "id": "e1",
        "kind": "embedding",
        "model": "text-embedding-3-small",
        "request": {"prompt": "hello world"},
    }
    filled = fill_accounting(span)
    assert filled["provider"] == "openai"
    assert filled["response"]["usage"] == {
        "prompt_tokens": 2,
        "completion_tokens": 0,
        "total_tokens": 2,
        "usage_estimated": True,
    }
    assert filled["metrics"]["estimated_cost"] == float(Decimal("0.00000004"))  # 2 * 0.02 / 1M


def test_non_llm_spans_get_latency_only():
    span = {"id": "t1", "kind": "tool", "start_time": 10.0, "end_time": 35.5, "request": {"prompt": "x"}}
    filled = fill_accounting(span)
    assert filled["metrics"] == {"latency_ms": 25.5}
    assert "response" not in filled


def test_nothing_to_fill_adds_nothing():
    span = {"id": "s1", "kind": "llm"}
    assert fill_accounting(span) == span


def test_normalises_provider_and_model():
    filled = fill_accounting({"id": "s1", "provider": "Azure", "model": "openai/GPT-4o"})
    assert (filled["provider"], filled["model"]) == ("azure_openai", "gpt-4o")
    filled = fill_accounting({"id": "s2", "model": "anthropic.claude-3-5-sonnet-20240620-v1:0"})
    assert (filled["provider"], filled["model"]) == ("bedrock", "claude-3-5-sonnet-20240620")


def test_accepts_rfc3339_times():
    span = {"id": "s1", "start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01.5+00:00"}
    assert fill_accounting(span)["metrics"]["latency_ms"] == 1500.0


def test_malformed_parts_are_left_alone():
    span = llm_span(metrics="fast", response={"content": "hi", "usage": "lots"})
    filled = fill_accounting(span)
    assert filled["metrics"] == "fast"
    assert filled["response"]["usage"] == "lots"
