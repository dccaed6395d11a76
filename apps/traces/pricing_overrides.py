"""Per-organization model prices, cached per process for a minute."""

from __future__ import annotations

import time
import uuid

from apps.traces.accounting import ModelPrice
from apps.traces.models import ModelPriceOverride

CACHE_SECONDS = 60.0
_cache: dict[uuid.UUID, tuple[float, dict[str, ModelPrice]]] = {}


def price_overrides_for(organization_id: uuid.UUID) -> dict[str, ModelPrice]:
    entry = _cache.get(organization_id)
    if entry is not None and time.monotonic() - entry[0] < CACHE_SECONDS:
        return entry[1]
    overrides = {
        row.model.lower(): ModelPrice(
            input=row.input_per_million,
            output=row.output_per_million,
            cached_input=row.cached_input_per_million,
        )
        for row in ModelPriceOverride.objects.filter(organization_id=organization_id)
    }
    _cache[organization_id] = (time.monotonic(), overrides)
    return overrides


def forget(organization_id: uuid.UUID) -> None:
    _cache.pop(organization_id, None)


def clear() -> None:
    _cache.clear()
