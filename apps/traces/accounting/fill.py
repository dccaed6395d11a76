"""Fill in the accounting a client left out of a canonical span.

``fill_accounting`` returns a new dict and never replaces a value the client
sent (a key holding None counts as not sent), with one exception: ``provider``
and ``model`` are rewritten to their canonical spelling (see ``normalize``),
and ``provider`` is inferred from the model when missing.

What it fills, when missing:

- ``response.usage.prompt_tokens`` / ``completion_tokens`` counted with the
  tokenizer from ``request.messages`` (or ``request.prompt``) and
  ``response.content`` (or ``response.messages``), for ``llm`` and
  ``embedding`` spans; ``usage_estimated: true`` is added to the usage when
  any count came from the tokenizer. An embedding has 0 completion tokens.
  ``total_tokens`` is the sum when both parts are known.
- ``metrics.estimated_cost`` (USD, a float rounded to 8 places) from the price
  table or ``price_overrides``, for ``llm`` and ``embedding`` spans; cached
  prompt tokens are read from ``usage.prompt_tokens_details.cached_tokens`` or
  ``usage.cached_tokens``.
- ``metrics.latency_ms`` from ``start_time`` and ``end_time`` (epoch ms; a
  datetime or an RFC 3339 string is accepted too).
- ``metrics.time_per_output_token_ms`` when ``metrics.time_to_first_token_ms``
  is given, and ``metrics.tokens_per_second``, from the latency and the
  completion tokens (see ``timings``).
"""

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .normalize import normalize_model, normalize_provider
from .pricing import ModelPrice, estimate_cost
from .timings import compute_timings
from .tokens import count_message_tokens, count_reply_tokens, count_text_tokens

__all__ = ["fill_accounting"]

_COUNTED_KINDS = frozenset({"llm", "embedding"})


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, int) and value >= 0 else None


def _amount(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def _epoch_ms(value: Any) -> float | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.timestamp() * 1000
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _prompt_tokens(request: Any, model: str | None) -> int | None:
    if not isinstance(request, Mapping):
        return None
    messages = request.get("messages")
    if isinstance(messages, list) and messages:
        return count_message_tokens(messages=messages, model=model)
    if isinstance(request.get("prompt"), str):
        return count_text_tokens(text=request["prompt"], model=model)
    return None


def _completion_tokens(response: Mapping[str, Any], model: str | None) -> int | None:
    if isinstance(response.get("content"), str):
        return count_text_tokens(text=response["content"], model=model)
    messages = response.get("messages")
    if isinstance(messages, list) and messages:
        return count_reply_tokens(messages=messages, model=model)
    return None


def _cached_tokens(usage: Mapping[str, Any]) -> int:
    details = usage.get("prompt_tokens_details")
    if isinstance(details, Mapping) and _count(details.get("cached_tokens")) is not None:
        return _count(details["cached_tokens"])
    return _count(usage.get("cached_tokens")) or 0


def _fill_usage(span: dict[str, Any], model: str | None) -> tuple[int | None, int | None, int]:
    """Fill ``response.usage`` in place; return prompt, completion and cached tokens."""
    response = span.get("response")
    if response is not None and not isinstance(response, dict):
        return None, None, 0
    usage = response.get("usage") if response else None
    if usage is not None and not isinstance(usage, dict):
        return None, None, 0
    usage = usage if usage is not None else {}

    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    added: dict[str, Any] = {}
    counted = False
    if usage.get("prompt_tokens") is None:
        prompt = _prompt_tokens(span.get("request"), model)
        if prompt is not None:
            added["prompt_tokens"] = prompt
            counted = True
    if usage.get("completion_tokens") is None:
        if span.get("kind") == "embedding":
            completion = 0
        else:
            completion = _completion_tokens(response, model) if response else None
            counted = counted or completion is not None
        if completion is not None:
            added["completion_tokens"] = completion
    if usage.get("total_tokens") is None and prompt is not None and completion is not None:
        added["total_tokens"] = prompt + completion
    if counted and usage.get("usage_estimated") is None:
        added["usage_estimated"] = True

    if added:
        usage = {**usage, **added}  # new objects: the caller's span is never mutated
        span["response"] = {**(response or {}), "usage": usage}
    return prompt, completion, _cached_tokens(usage)


def fill_accounting(
    span: Mapping[str, Any], *, price_overrides: Mapping[str, ModelPrice] | None = None
) -> dict[str, Any]:
    out = dict(span)  # nested objects that change are replaced, never mutated
    raw_model = out.get("model") if isinstance(out.get("model"), str) else None
    raw_provider = out.get("provider") if isinstance(out.get("provider"), str) else None
    provider = normalize_provider(raw_provider, raw_model)
    model = normalize_model(raw_model)
    if provider:
        out["provider"] = provider
    if model:
        out["model"] = model

    metrics = out.get("metrics")
    fill_metrics = metrics is None or isinstance(metrics, dict)
    metrics = metrics if isinstance(metrics, dict) else {}
    added: dict[str, Any] = {}

    completion = None
    if (out.get("kind") or "llm") in _COUNTED_KINDS:
        prompt, completion, cached = _fill_usage(out, model)
        if metrics.get("estimated_cost") is None and prompt is not None and completion is not None:
            cost = estimate_cost(
                model=model,
                provider=provider,
                input_tokens=prompt,
                output_tokens=completion,
                cached_input_tokens=cached,
                overrides=price_overrides,
            )
            if cost is not None:
                added["estimated_cost"] = float(cost)

    latency = _amount(metrics.get("latency_ms"))
    if metrics.get("latency_ms") is None:
        latency = compute_timings(
            start_ms=_epoch_ms(out.get("start_time")),
            end_ms=_epoch_ms(out.get("end_time")),
            first_token_ms=None,
            output_tokens=None,
        ).latency_ms
        if latency is not None:
            added["latency_ms"] = latency
    ttft = _amount(metrics.get("time_to_first_token_ms"))
    derived = compute_timings(start_ms=0.0, end_ms=latency, first_token_ms=ttft, output_tokens=completion)
    if metrics.get("time_per_output_token_ms") is None and derived.time_per_output_token_ms is not None:
        added["time_per_output_token_ms"] = derived.time_per_output_token_ms
    if metrics.get("tokens_per_second") is None and derived.tokens_per_second is not None:
        added["tokens_per_second"] = derived.tokens_per_second

    if added and fill_metrics:
        out["metrics"] = {**metrics, **added}
    return out
