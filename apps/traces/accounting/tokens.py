"""Offline token counting.

Counts use ``toktok`` (PyPI ``toktok-rs``), whose cl100k_base and o200k_base
vocabularies are compiled into the extension: nothing is downloaded at run
time, and its counts equal tiktoken's. Each encoding is loaded once per process
and cached by toktok.

Encodings: cl100k_base for GPT-4, GPT-3.5 and OpenAI embeddings; o200k_base for
GPT-4o, GPT-4.1, GPT-5 and the o-series, and as the approximation for every
other provider's models, whose tokenizers are not public or not bundled.

Chat messages follow OpenAI's accounting for chat models: 3 tokens per message,
1 more for a ``name``, and 3 to prime the reply. Text parts of list content
count as text; each image part counts a flat ``IMAGE_TOKENS`` (the price of one
low-detail image, so a lower bound); other parts (audio, files) count nothing.
"""

import re
from collections.abc import Iterable, Mapping
from typing import Any

import toktok

from .normalize import normalize_model

__all__ = [
    "IMAGE_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOKENS_REPLY_PRIMING",
    "count_message_tokens",
    "count_reply_tokens",
    "count_text_tokens",
    "encoding_for_model",
]

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3
IMAGE_TOKENS = 85

_CL100K = re.compile(r"^(?:gpt-4(?:-|$)|gpt-3\.5|gpt-35|text-embedding-(?:3|ada))")


def encoding_for_model(model: str | None) -> str:
    name = normalize_model(model)
    if name and _CL100K.match(name):
        return "cl100k_base"
    return "o200k_base"


def count_text_tokens(*, text: str, model: str | None) -> int:
    if not text:
        return 0
    return toktok.batch_count([text], encoding_for_model(model), threads=1)[0]


def _content_texts(content: Any) -> tuple[list[str], int]:
    """The texts of a message's content and its number of image parts."""
    if isinstance(content, str):
        return [content], 0
    texts: list[str] = []
    images = 0
    if isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, Mapping):
                if isinstance(part.get("text"), str):
                    texts.append(part["text"])
                elif "image" in str(part.get("type", "")):
                    images += 1
    return texts, images


def _message_texts(message: Mapping[str, Any], *, header: bool = True) -> tuple[list[str], int]:
    texts, images = _content_texts(message.get("content"))
    for key in ("role", "name") if header else ():
        if isinstance(message.get(key), str):
            texts.append(message[key])
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, Iterable) and not isinstance(tool_calls, str | bytes | Mapping):
        for call in tool_calls:
            function = call.get("function") if isinstance(call, Mapping) else None
            if isinstance(function, Mapping):
                texts.extend(
                    v for v in (function.get("name"), function.get("arguments")) if isinstance(v, str)
                )
    return texts, images


def count_message_tokens(*, messages: list[dict[str, Any]], model: str | None) -> int:
    texts: list[str] = []
    overhead = TOKENS_REPLY_PRIMING
    for message in messages:
        if not isinstance(message, Mapping):
            continue
        message_texts, images = _message_texts(message)
        texts.extend(t for t in message_texts if t)
        overhead += TOKENS_PER_MESSAGE + images * IMAGE_TOKENS
        if isinstance(message.get("name"), str):
            overhead += TOKENS_PER_NAME
    counts = toktok.batch_count(texts, encoding_for_model(model), threads=1) if texts else []
    return overhead + sum(counts)


def count_reply_tokens(*, messages: list[dict[str, Any]], model: str | None) -> int:
    """Tokens of generated messages: their content and tool calls, without chat overhead."""
    texts: list[str] = []
    images = 0
    for message in messages:
        if isinstance(message, Mapping):
            message_texts, message_images = _message_texts(message, header=False)
            texts.extend(t for t in message_texts if t)
            images += message_images
    counts = toktok.batch_count(texts, encoding_for_model(model), threads=1) if texts else []
    return images * IMAGE_TOKENS + sum(counts)
