"""Untrace SDK: nested spans, provider wrappers and W3C trace context, sent in batches off the hot path."""

from ._client import Untrace, get_client
from ._span import RemoteParent, Span, current_span, from_traceparent, traceparent
from ._wrappers import wrap_anthropic, wrap_openai

__all__ = [
    "RemoteParent",
    "Span",
    "Untrace",
    "current_span",
    "from_traceparent",
    "get_client",
    "traceparent",
    "wrap_anthropic",
    "wrap_openai",
]

__version__ = "0.1.0"
