"""Token and cost accounting for canonical spans: plain functions, no Django, no I/O.

``fill_accounting`` fills in what a client left out of a span at ingest: the
canonical provider and model, token usage, estimated cost and latency metrics.
"""

from .fill import fill_accounting
from .normalize import normalize_model, normalize_provider
from .pricing import COST_QUANTUM, ModelPrice, PriceTable, estimate_cost, price_table
from .timings import Timings, compute_timings
from .tokens import (
    count_message_tokens,
    count_reply_tokens,
    count_text_tokens,
    encoding_for_model,
)

__all__ = [
    "COST_QUANTUM",
    "ModelPrice",
    "PriceTable",
    "Timings",
    "compute_timings",
    "count_message_tokens",
    "count_reply_tokens",
    "count_text_tokens",
    "encoding_for_model",
    "estimate_cost",
    "fill_accounting",
    "normalize_model",
    "normalize_provider",
    "price_table",
]
