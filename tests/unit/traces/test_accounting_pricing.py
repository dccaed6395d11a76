from datetime import date
from decimal import Decimal

import pytest

from apps.traces.accounting import COST_QUANTUM, ModelPrice, PriceTable, estimate_cost, price_table


def test_price_table_is_dated_and_sourced():
    table = price_table()
    assert table is price_table()
    assert date.fromisoformat(table.as_of)
    assert table.currency == "USD"
    assert set(table.sources) >= {"openai", "anthropic", "google", "mistral", "meta", "deepseek", "xai"}
    assert all(url.startswith("https://") for url in table.sources.values())
    for model, price in table.prices.items():
        assert table.providers[model] in table.sources
        assert isinstance(price.input, Decimal) and price.input > 0, model
        assert isinstance(price.output, Decimal) and price.output >= 0, model
        assert price.cached_input is None or Decimal(0) < price.cached_input <= price.input, model


@pytest.mark.parametrize(
    ("model", "family"),
    [
        ("gpt-4o", "gpt-4o"),
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-2024-11-20", "gpt-4o"),
        ("gpt-4o-2024-05-13", "gpt-4o-2024-05-13"),
        ("gpt-4o-mini", "gpt-4o-mini"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/GPT-4o-mini", "gpt-4o-mini"),
        ("gpt-4.1-2025-04-14", "gpt-4.1"),
        ("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("gpt-4-0613", "gpt-4"),
        ("gpt-4-turbo-2024-04-09", "gpt-4-turbo"),
        ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
        ("o1-2024-12-17", "o1"),
        ("o1-preview", "o1"),
        ("o3-2025-04-16", "o3"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("o4-mini-2025-04-16", "o4-mini"),
        ("gpt-5-2025-08-07", "gpt-5"),
        ("gpt-5-mini-2025-08-07", "gpt-5-mini"),
        ("gpt-5-chat-latest", "gpt-5"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"),
        ("anthropic.claude-3-5-sonnet-20240620-v1:0", "claude-3-5-sonnet"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("claude-3-7-sonnet-20250219", "claude-3-7-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-0", "claude-sonnet-4"),
        ("claude-opus-4-20250514", "claude-opus-4"),
        ("claude-opus-4-1-20250805", "claude-opus-4-1"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("gemini-1.5-flash-8b-001", "gemini-1.5-flash-8b"),
        ("models/gemini-2.0-flash-001", "gemini-2.0-flash"),
        ("gemini-2.0-flash-lite-001", "gemini-2.0-flash-lite"),
        ("gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("mistral-large-2411", "mistral-large"),
        ("mistral-small-latest", "mistral-small"),
        ("codestral-2501", "codestral"),
        ("meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama-3.3-70b"),
        ("llama-3.1-8b-instant", "llama-3.1-8b"),
        ("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", "llama-4-maverick"),
        ("deepseek-chat", "deepseek-chat"),
        ("grok-4-0709", "grok-4"),
        ("grok-3-mini-beta", "grok-3-mini"),
        ("grok-4-fast-reasoning", "grok-4-fast-reasoning"),
        ("command-a-03-2025", "command-a"),
        ("command-r7b-12-2024", "command-r7b"),
        ("command-r-plus-08-2024", "command-r-plus"),
        # never a different model of the same family
        ("gpt-4o-audio-preview", None),
        ("gpt-4o-mini-realtime-preview", None),
        ("gpt-4-32k", None),
        ("claude-opus-4-6", None),
        ("grok-4-heavy", None),
        ("gemini-2.5-flash-preview-05-20", None),
        ("llama-3.3-70b-custom", None),
        ("my-fine-tune", None),
        ("", None),
        (None, None),
    ],
)
def test_resolves_snapshots_to_their_family(model, family):
    assert price_table().resolve(model) == family


def test_mini_is_never_priced_as_its_bigger_sibling():
    table = PriceTable.from_prices(
        {
            "gpt-4o": ModelPrice(input=Decimal("2.5"), output=Decimal(10)),
            "gemini-2.0-flash": ModelPrice(input=Decimal("0.1"), output=Decimal("0.4")),
        }
    )
    assert table.resolve("gpt-4o-2024-08-06") == "gpt-4o"
    assert table.resolve("gpt-4o-mini") is None
    assert table.resolve("gpt-4o-mini-2024-07-18") is None
    assert table.resolve("gemini-2.0-flash-lite-001") is None
    assert table.lookup("gpt-4o-mini") is None


def test_longest_family_wins():
    table = PriceTable.from_prices(
        {
            "gpt-4": ModelPrice(input=30, output=60),
            "gpt-4-turbo": ModelPrice(input=10, output=30),
        }
    )
    assert table.resolve("gpt-4-turbo-2024-04-09") == "gpt-4-turbo"
    assert table.resolve("gpt-4-0613") == "gpt-4"


@pytest.mark.parametrize(
    ("model", "input_tokens", "output_tokens", "cached", "expected"),
    [
        # gpt-4o: input 2.50, cached 1.25, output 10.00
        ("gpt-4o-2024-08-06", 1000, 500, 200, "0.00725000"),  # 800*2.5 + 200*1.25 + 500*10
        ("gpt-4o", 1_000_000, 1_000_000, 0, "12.50000000"),
        # gpt-4o-mini: input 0.15, output 0.60
        ("gpt-4o-mini-2024-07-18", 1234, 567, 0, "0.00052530"),  # 1234*0.15 + 567*0.6 = 525.3
        # claude-3-5-sonnet: input 3, cached 0.30, output 15
        ("claude-3-5-sonnet-20241022", 1_000_000, 1_000_000, 0, "18.00000000"),
        ("claude-3-5-sonnet-20241022", 10_000, 1000, 9000, "0.02070000"),  # 1000*3 + 9000*0.3 + 1000*15
        # deepseek-chat: input 0.28, cached 0.028, output 0.42
        ("deepseek-chat", 10_000, 2000, 8000, "0.00162400"),  # 2000*0.28 + 8000*0.028 + 2000*0.42
        # mistral-small has no cache price: cached tokens cost the input price
        ("mistral-small-latest", 1000, 100, 100, "0.00013000"),  # 1000*0.10 + 100*0.30
        # embeddings have no output price
        ("text-embedding-3-small", 1_000_000, 0, 0, "0.02000000"),
        # gpt-5-nano cached: 0.005 per million -> 5e-9 per token, rounded half up
        ("gpt-5-nano", 1, 0, 1, "0.00000001"),
        ("gpt-5-nano", 0, 0, 0, "0E-8"),
        # more cached tokens than input tokens: all input is cached
        ("gpt-4.1", 100, 0, 500, "0.00005000"),  # 100*0.50
    ],
)
def test_cost_arithmetic(model, input_tokens, output_tokens, cached, expected):
    cost = estimate_cost(
        model=model,
        provider=None,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cached_input_tokens=cached,
    )
    assert cost == Decimal(expected)
    assert cost.as_tuple().exponent == COST_QUANTUM.as_tuple().exponent


def test_cost_matches_table_prices_for_every_model():
    table = price_table()
    for model, price in table.prices.items():
        cost = estimate_cost(model=model, provider=None, input_tokens=2_000_000, output_tokens=1_000_000)
        assert cost == (2 * price.input + price.output).quantize(COST_QUANTUM), model


def test_unknown_model_has_no_cost():
    assert estimate_cost(model="my-local-model", provider="ollama", input_tokens=10, output_tokens=10) is None
    assert estimate_cost(model=None, provider=None, input_tokens=10, output_tokens=10) is None


def test_overrides_win_over_the_table():
    overrides = {"gpt-4o": ModelPrice(input=Decimal(1), output=Decimal(2), cached_input=Decimal("0.5"))}
    cost = estimate_cost(
        model="gpt-4o-2024-08-06",
        provider="openai",
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cached_input_tokens=500_000,
        overrides=overrides,
    )
    assert cost == Decimal("2.75000000")  # 0.5M*1 + 0.5M*0.5 + 1M*2


def test_overrides_price_models_the_table_lacks_and_fall_back_to_it():
    overrides = {"acme-llm": ModelPrice(input="0.5", output="1.5")}
    priced = estimate_cost(
        model="acme-llm", provider=None, input_tokens=2_000_000, output_tokens=0, overrides=overrides
    )
    assert priced == Decimal("1.00000000")
    fallback = estimate_cost(
        model="gpt-4o", provider=None, input_tokens=1_000_000, output_tokens=0, overrides=overrides
    )
    assert fallback == Decimal("2.50000000")


def test_provider_scoped_overrides_apply_to_that_provider_only():
    overrides = {"azure_openai/gpt-4o": ModelPrice(input=Decimal(3), output=Decimal(12))}

    def cost(provider):
        return estimate_cost(
            model="gpt-4o", provider=provider, input_tokens=1_000_000, output_tokens=0, overrides=overrides
        )

    assert cost("azure") == Decimal("3.00000000")
    assert cost("openai") == Decimal("2.50000000")


def test_model_price_takes_exact_decimals():
    price = ModelPrice(input=0.1, output="0.3", cached_input=Decimal("0.025"))
    assert (price.input, price.output, price.cached_input) == (
        Decimal("0.1"),
        Decimal("0.3"),
        Decimal("0.025"),
    )
    with pytest.raises(ValueError):
        ModelPrice(input=-1, output=1)
    with pytest.raises(TypeError):
        ModelPrice(input=None, output=1)


@pytest.mark.parametrize("bad", [-1, True, 1.5, None])
def test_token_counts_must_be_non_negative_ints(bad):
    with pytest.raises(ValueError):
        estimate_cost(model="gpt-4o", provider=None, input_tokens=bad, output_tokens=0)


def test_table_rejects_duplicate_models():
    document = {
        "providers": {
            "a": {"source": "https://a", "models": {"x-1": {"input": 1, "output": 1}}},
            "b": {"source": "https://b", "models": {"x-1": {"input": 2, "output": 2}}},
        }
    }
    with pytest.raises(ValueError, match="x-1"):
        PriceTable.from_document(document)
