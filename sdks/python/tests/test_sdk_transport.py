"""The queue and the sender: batching, gzip, retries, drops; against a loopback HTTP server."""

import socket
import subprocess
import sys
import time

import pytest

from untrace_sdk import Untrace
from untrace_sdk._client import _retry_after


def _client(url, **kwargs):
    kwargs.setdefault("flush_interval", 0.05)
    return Untrace(api_key="ut_test_key", base_url=url, **kwargs)


def test_spans_are_sent_in_gzip_batches_with_the_key(collector):
    client = _client(collector.url, batch_size=10, flush_interval=60)
    for i in range(25):
        client.span(f"s{i}").end()
    assert client.flush(5)
    assert [len(r["body"]["traces"]) for r in collector.requests] == [10, 10, 5]
    request = collector.requests[0]
    assert request["path"] == "/v1/traces/batch"
    assert request["headers"]["X-Untrace-Key"] == "ut_test_key"
    assert request["headers"]["Content-Encoding"] == "gzip"
    assert [s["name"] for s in collector.spans] == [f"s{i}" for i in range(25)]
    assert client.sent == 25 and client.dropped == 0
    client.shutdown()


def test_the_interval_sends_a_partial_batch_without_flush(collector):
    client = _client(collector.url, batch_size=100, flush_interval=0.05)
    client.span("alone").end()
    deadline = time.monotonic() + 5
    while not collector.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert collector.spans[0]["name"] == "alone"
    client.shutdown()


def test_429_with_retry_after_is_retried_after_the_wait(collector):
    collector.script = [(429, {"Retry-After": "0.3"})]
    client = _client(collector.url, backoff_base=0.001)
    client.span("limited").end()
    started = time.monotonic()
    assert client.flush(5)
    assert len(collector.requests) == 2
    gap = time.monotonic() - started
    assert gap >= 0.3
    assert client.sent == 1 and client.retries == 1 and client.dropped == 0
    client.shutdown()


def test_retry_after_is_bounded_by_max_backoff(collector):
    collector.script = [(503, {"Retry-After": "3600"})]
    client = _client(collector.url, max_backoff=0.2)
    client.span("x").end()
    started = time.monotonic()
    assert client.flush(5)
    assert time.monotonic() - started < 2 and client.sent == 1
    client.shutdown()


def test_server_errors_are_retried_then_dropped(collector):
    collector.script = [(500, {})] * 3
    client = _client(collector.url, max_retries=2, backoff_base=0.01)
    client.span("x").end()
    assert client.flush(5)
    assert len(collector.requests) == 3
    assert client.sent == 0 and client.dropped == 1 and client.dropped_send_failed == 1


def test_a_400_is_not_retried(collector):
    collector.script = [(400, {})]
    client = _client(collector.url, backoff_base=0.01)
    client.span("bad").end()
    assert client.flush(5)
    assert len(collector.requests) == 1 and client.rejected == 1 and client.dropped == 1


def test_413_splits_the_batch(collector):
    collector.script = [(413, {})]
    client = _client(collector.url, batch_size=4, flush_interval=60)
    for i in range(4):
        client.span(f"s{i}").end()
    assert client.flush(5)
    assert [len(r["body"]["traces"]) for r in collector.requests] == [4, 2, 2]
    assert client.sent == 4


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_untrace_down_never_raises_and_counts_the_drops():
    client = _client(f"http://127.0.0.1:{_closed_port()}", max_retries=2, backoff_base=0.01, timeout=1)
    with client.span("root"):
        for i in range(5):
            with client.span(f"child{i}"):
                pass
    assert client.flush(10)
    assert client.dropped == 6 and client.dropped_send_failed == 6 and client.sent == 0
    assert client.shutdown(1)


def test_a_full_queue_drops_the_oldest(collector):
    client = _client(collector.url, max_queue=3, batch_size=100, flush_interval=60)
    for i in range(5):
        client.span(f"s{i}").end()
    assert client.dropped == 2 and client.dropped_queue_full == 2
    assert client.flush(5)
    assert [s["name"] for s in collector.spans] == ["s2", "s3", "s4"]


def test_shutdown_flushes_and_later_spans_are_ignored(collector):
    client = _client(collector.url, flush_interval=60)
    client.span("before").end()
    assert client.shutdown(5)
    client.span("after").end()
    assert [s["name"] for s in collector.spans] == ["before"]
    assert not client._thread.is_alive()


def test_shutdown_gives_up_retrying_at_its_deadline():
    client = _client(f"http://127.0.0.1:{_closed_port()}", max_retries=50, backoff_base=0.2, max_backoff=0.5)
    client.span("x").end()
    started = time.monotonic()
    client.shutdown(1)
    assert time.monotonic() - started < 3
    assert client.dropped == 1


def test_no_key_disables_sending(monkeypatch):
    monkeypatch.delenv("UNTRACE_API_KEY", raising=False)
    client = Untrace(base_url="http://127.0.0.1:9")
    with client.span("x"):
        pass
    assert not client.enabled and client.flush(1) and client.queued == 0


def test_settings_come_from_the_environment(monkeypatch, collector):
    monkeypatch.setenv("UNTRACE_API_KEY", "ut_from_env")
    monkeypatch.setenv("UNTRACE_BASE_URL", collector.url + "/")
    client = Untrace(flush_interval=60)
    client.span("x").end()
    assert client.flush(5)
    assert collector.requests[0]["headers"]["X-Untrace-Key"] == "ut_from_env"


def test_a_non_http_base_url_is_refused():
    with pytest.raises(ValueError):
        Untrace(api_key="k", base_url="file:///etc/passwd")


def test_values_json_cannot_encode_are_sent_as_text(collector):
    client = _client(collector.url)

    class Thing:
        def __repr__(self):
            return "<thing>"

    with client.span("x") as span:
        span.set_input({"obj": Thing(), "raw": b"bytes", "set": {1}})
    assert client.flush(5)
    assert collector.spans[0]["request"] == {"input": {"obj": "<thing>", "raw": "bytes", "set": [1]}}


def test_retry_after_header_forms():
    assert _retry_after("2") == 2.0
    assert _retry_after("-4") == 0.0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_pending_spans_are_sent_at_interpreter_exit(collector):
    code = (
        "from untrace_sdk import Untrace\n"
        f"client = Untrace(api_key='ut_exit', base_url={collector.url!r}, flush_interval=60)\n"
        "client.span('last words').end()\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)
    assert [s["name"] for s in collector.spans] == ["last words"]
