import subprocess
import sys
import textwrap

import pytest

from apps.traces.accounting import (
    count_message_tokens,
    count_reply_tokens,
    count_text_tokens,
    encoding_for_model,
)
from apps.traces.accounting.tokens import IMAGE_TOKENS


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-mini-2024-07-18", "o200k_base"),
        ("gpt-4.1", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"),
        ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("openai/gpt-4", "cl100k_base"),
        ("claude-3-5-sonnet-20241022", "o200k_base"),
        ("gemini-2.5-pro", "o200k_base"),
        ("llama-3.3-70b", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_encoding_for_model(model, encoding):
    assert encoding_for_model(model) == encoding


@pytest.mark.parametrize(
    ("text", "model", "expected"),
    [
        ("hello world", "gpt-4o", 2),
        ("hello world", "gpt-4", 2),
        ("hello world", None, 2),
        ("tiktoken is great!", "gpt-4o", 6),
        ("The quick brown fox jumps over the lazy dog.", "gpt-3.5-turbo", 10),
        ("こんにちは世界", "gpt-4", 4),
        ("こんにちは世界", "gpt-4o", 2),
        ("<|endoftext|>", "gpt-4o", 7),  # special-token text in user input is plain text
        ("", "gpt-4o", 0),
    ],
)
def test_count_text_tokens(text, model, expected):
    assert count_text_tokens(text=text, model=model) == expected


def test_long_text_is_counted_in_one_piece():
    assert count_text_tokens(text="word " * 300_000, model="gpt-4o") == 300_001


def test_message_overhead():
    # 3 per message + "user" (1) + "hello world" (2) + 3 for the reply
    assert count_message_tokens(messages=[{"role": "user", "content": "hello world"}], model="gpt-4o") == 9
    assert count_message_tokens(messages=[], model="gpt-4o") == 3
    two = [
        {"role": "system", "content": "hello world"},
        {"role": "user", "content": "tiktoken is great!"},
    ]
    assert count_message_tokens(messages=two, model="gpt-4o") == 3 + (3 + 1 + 2) + (3 + 1 + 6)


def test_name_costs_one_more_token_plus_its_text():
    messages = [{"role": "user", "name": "example_user", "content": "hello world"}]
    assert count_message_tokens(messages=messages, model="gpt-4o") == 9 + 1 + 2


def test_content_parts_count_like_a_string_and_images_count_a_flat_estimate():
    as_string = [{"role": "user", "content": "hello world tiktoken is great!"}]
    as_parts = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hello world"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                {"type": "text", "text": " tiktoken is great!"},
            ],
        }
    ]
    text_only = count_message_tokens(messages=as_string, model="gpt-4o")
    assert count_message_tokens(messages=as_parts, model="gpt-4o") == text_only + IMAGE_TOKENS


def test_tool_calls_and_odd_messages():
    messages = [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
            ],
        },
        "not a message",
        {"role": "tool", "content": "hello world"},
    ]
    # assistant: 3 + 1 + get_weather (2) + arguments (6); tool: 3 + 1 + 2; reply: 3
    assert count_message_tokens(messages=messages, model="gpt-4o") == 12 + 6 + 3


def test_reply_tokens_have_no_chat_overhead():
    replies = [{"role": "assistant", "content": "hello world"}]
    assert count_reply_tokens(messages=replies, model="gpt-4o") == 2


def test_counting_needs_no_network():
    script = textwrap.dedent(
        """
        import socket

        def refuse(*args, **kwargs):
            raise OSError("network use during token counting")

        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        from apps.traces.accounting import count_text_tokens
        print(count_text_tokens(text="hello world", model="gpt-4o"))
        print(count_text_tokens(text="hello world", model="gpt-4"))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "2"]
