"""Model prices and cost estimates.

Prices come from the bundled ``prices.json`` (USD per million tokens, dated by
its ``as_of``). A model name resolves to a table entry when it is the entry's
name or alias, or the entry's name followed by snapshot suffixes only: a date
(``-2024-08-06``, ``-20241022``, ``-03-2025``), a 3-4 digit version (``-0613``,
``-002``, ``-2411``), ``-latest`` or ``-v2``. The longest such entry wins, so
``gpt-4o-2024-08-06`` is priced as ``gpt-4o`` but ``gpt-4o-mini-2024-07-18``
never is: ``-mini`` is not a snapshot suffix. Llama names also accept the
hosting variants ``-instruct``, ``-turbo``, ``-versatile``, ``-instant``,
``-chat``, ``-hf``, ``-fp8`` and sizes (``-17b``, ``-128e``).

Costs are ``Decimal`` (money must not pick up binary rounding), rounded half-up
to 8 decimal places.
"""

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from types import MappingProxyType
from typing import Any

from .normalize import normalize_model, normalize_provider

__all__ = ["COST_QUANTUM", "ModelPrice", "PriceTable", "estimate_cost", "price_table"]

COST_QUANTUM = Decimal("0.00000001")
_MILLION = Decimal(1_000_000)

_SNAPSHOT = r"\d{4}-\d{2}-\d{2}|\d{8}|\d{3,4}|\d{2}-\d{4}|latest|v\d+"
_SNAPSHOT_SUFFIX = re.compile(rf"(?:-(?:{_SNAPSHOT}))+")
_LLAMA_SUFFIX = re.compile(rf"(?:-(?:{_SNAPSHOT}|instruct|chat|turbo|versatile|instant|hf|fp8|\d+b|\d+e))+")


def _decimal(value: Any, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    amount = Decimal(str(value))
    if not amount.is_finite() or amount < 0:
        raise ValueError(f"{name} must be a finite, non-negative number")
    return amount


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens; ``cached_input`` None means cache reads cost ``input``."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", _decimal(self.input, "input"))
        object.__setattr__(self, "output", _decimal(self.output, "output"))
        if self.cached_input is not None:
            object.__setattr__(self, "cached_input", _decimal(self.cached_input, "cached_input"))


@dataclass(frozen=True, eq=False)  # identity hashing: `resolve` results are cached per table
class PriceTable:
    prices: Mapping[str, ModelPrice]
    aliases: Mapping[str, str] = field(default_factory=dict)
    providers: Mapping[str, str] = field(default_factory=dict)  # model -> provider key
    sources: Mapping[str, str] = field(default_factory=dict)  # provider key -> pricing page
    as_of: str | None = None
    currency: str = "USD"

    @classmethod
    def from_prices(cls, prices: Mapping[str, ModelPrice]) -> "PriceTable":
        """A table of the given prices, keyed by their normalised model names."""
        table: dict[str, ModelPrice] = {}
        for model, price in prices.items():
            name = normalize_model(model)
            if name:
                table[name] = price
        return cls(prices=MappingProxyType(table))

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> "PriceTable":
        """A table from the parsed ``prices.json`` layout."""
        prices: dict[str, ModelPrice] = {}
        aliases: dict[str, str] = {}
        providers: dict[str, str] = {}
        sources: dict[str, str] = {}
        for provider, section in document["providers"].items():
            sources[provider] = section["source"]
            for model, entry in section["models"].items():
                for name in (model, *entry.get("aliases", ())):
                    if name in prices or name in aliases or normalize_model(name) != name:
                        raise ValueError(f"price table: duplicate or non-canonical model name {name!r}")
                prices[model] = ModelPrice(
                    input=entry["input"], output=entry["output"], cached_input=entry.get("cached_input")
                )
                providers[model] = provider
                aliases.update(dict.fromkeys(entry.get("aliases", ()), model))
        return cls(
            prices=MappingProxyType(prices),
            aliases=MappingProxyType(aliases),
            providers=MappingProxyType(providers),
            sources=MappingProxyType(sources),
            as_of=document.get("as_of"),
            currency=document.get("currency", "USD"),
        )

    def resolve(self, model: str | None) -> str | None:
        """The table entry that prices ``model``, or None."""
        return _resolve(self, model)

    def _resolve_uncached(self, model: str | None) -> str | None:
        name = normalize_model(model)
        if name is None:
            return None
        if name in self.prices:
            return name
        if name in self.aliases:
            return self.aliases[name]
        best: str | None = None
        for key in self.prices:
            if name.startswith(key + "-") and (best is None or len(key) > len(best)):
                suffix = _LLAMA_SUFFIX if key.startswith("llama-") else _SNAPSHOT_SUFFIX
                if suffix.fullmatch(name, len(key)):
                    best = key
        return best

    def lookup(self, model: str | None) -> ModelPrice | None:
        key = self.resolve(model)
        return self.prices[key] if key else None


@functools.lru_cache(maxsize=8192)
def _resolve(table: PriceTable, model: str | None) -> str | None:
    return table._resolve_uncached(model)


@functools.cache
def price_table() -> PriceTable:
    """The bundled price table, loaded once."""
    text = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
    return PriceTable.from_document(json.loads(text, parse_float=Decimal))


def _override_price(
    overrides: Mapping[str, ModelPrice], *, model: str | None, provider: str | None
) -> ModelPrice | None:
    provider_key = normalize_provider(provider, model)
    scoped: dict[str, ModelPrice] = {}
    plain: dict[str, ModelPrice] = {}
    for key, price in overrides.items():
        head, slash, tail = key.partition("/")
        if not slash:
            plain[key] = price
        elif provider_key and normalize_provider(head) == provider_key:
            scoped[tail] = price
    for group in (scoped, plain):
        if group:
            price = PriceTable.from_prices(group).lookup(model)
            if price is not None:
                return price
    return None


def estimate_cost(
    *,
    model: str | None,
    provider: str | None,
    input_tokens: int,
    output_tokens: int,
    cached_input_tokens: int = 0,
    overrides: Mapping[str, ModelPrice] | None = None,
) -> Decimal | None:
    """The cost of one call in USD, or None when no price is known for ``model``.

    ``input_tokens`` counts every prompt token, cached ones included (OpenAI's
    ``prompt_tokens``); ``cached_input_tokens`` of them are billed at the
    cache-read price. ``overrides`` are an organisation's own prices and win over
    the table; a key is a model name (resolved like the table's) or
    ``provider/model`` to apply to one provider only.
    """
    for name, value in (
        ("input_tokens", input_tokens),
        ("output_tokens", output_tokens),
        ("cached_input_tokens", cached_input_tokens),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int")
    price = _override_price(overrides, model=model, provider=provider) if overrides else None
    if price is None:
        price = price_table().lookup(model)
    if price is None:
        return None
    cached = min(cached_input_tokens, input_tokens)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    cost = (input_tokens - cached) * price.input + cached * cached_rate + output_tokens * price.output
    return (cost / _MILLION).quantize(COST_QUANTUM, rounding=ROUND_HALF_UP)
