from __future__ import annotations

import functools

from django.conf import settings

from apps.traces.schema import SpanLimits


@functools.cache
def span_limits() -> SpanLimits:
    """Ingest limits from settings (UNTRACE_MAX_* variables)."""
    return SpanLimits(
        max_body_bytes=settings.UNTRACE_MAX_BODY_BYTES,
        max_items_per_batch=settings.UNTRACE_MAX_BATCH_ITEMS,
        max_string_length=settings.UNTRACE_MAX_STRING_LENGTH,
        max_depth=settings.UNTRACE_MAX_DEPTH,
    )
