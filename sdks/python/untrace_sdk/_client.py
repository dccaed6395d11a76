"""The client: a bounded queue of ended spans, drained by one background thread."""

from __future__ import annotations

import atexit
import functools
import gzip
import http.client
import inspect
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections import deque
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar, overload
from urllib.parse import urlsplit

from ._span import _ABSENT, RemoteParent, Span, _current, from_traceparent

__all__ = ["Untrace", "get_client"]

logger = logging.getLogger("untrace_sdk")

DEFAULT_BASE_URL = "https://api.untrace.dev"
MAX_BATCH = 1000  # the server's limit per request
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_USER_AGENT = "untrace-sdk-python/0.1.0"

F = TypeVar("F", bound=Callable[..., Any])

_default: Untrace | None = None
_default_lock = threading.Lock()


def get_client() -> Untrace:
    """The default client: the first one created, or a new one configured from the environment."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Untrace()
        return _default


def _json_default(value: Any) -> Any:
    """What ``json.dumps`` cannot encode itself: pydantic models, dataclasses, sets, bytes, others."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:  # noqa: BLE001 - any failure falls back to repr
            return repr(value)
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return repr(value)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


class _Answer:
    __slots__ = ("body", "retry_after", "status")

    def __init__(self, status: int, body: bytes, retry_after: float | None) -> None:
        self.status, self.body, self.retry_after = status, body, retry_after


class Untrace:
    """Sends spans to Untrace without blocking the application.

    Ended spans go to a bounded in-memory queue (the oldest are dropped when it
    is full, counted in ``dropped``); one daemon thread sends them in gzip
    batches of ``batch_size`` or every ``flush_interval`` seconds, retrying
    429, 5xx and network errors with exponential backoff and full jitter
    (honouring Retry-After, at most ``max_backoff`` seconds a wait). Failures
    are logged on the ``untrace_sdk`` logger, never raised.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
        *,
        max_retries: int = 5,
        backoff_base: float = 0.5,
        max_backoff: float = 30.0,
        timeout: float = 10.0,
        gzip_level: int = 5,
        environment: str | None = None,
        version: str | None = None,
        tags: dict[str, str] | None = None,
        enabled: bool = True,
        shutdown_timeout: float = 5.0,
    ) -> None:
        global _default
        self.api_key = api_key or os.environ.get("UNTRACE_API_KEY") or ""
        base = base_url or os.environ.get("UNTRACE_BASE_URL") or DEFAULT_BASE_URL
        self.base_url = base.rstrip("/")
        if urlsplit(self.base_url).scheme not in ("http", "https"):
            raise ValueError(f"base_url must be an http(s) URL, not {base!r}")
        self.endpoint = self.base_url + "/v1/traces/batch"
        self.batch_size = max(1, min(int(batch_size), MAX_BATCH))
        self.flush_interval = float(flush_interval)
        self.max_queue = max(1, int(max_queue))
        self.max_retries = max(0, int(max_retries))
        self.backoff_base = float(backoff_base)
        self.max_backoff = float(max_backoff)
        self.timeout = float(timeout)
        self.gzip_level = gzip_level
        self.shutdown_timeout = shutdown_timeout
        self.enabled = enabled and bool(self.api_key)
        if enabled and not self.api_key:
            logger.warning("untrace: no API key (UNTRACE_API_KEY); spans will not be sent")
        meta: dict[str, Any] = {}
        if environment or os.environ.get("UNTRACE_ENVIRONMENT"):
            meta["environment"] = environment or os.environ["UNTRACE_ENVIRONMENT"]
        if version:
            meta["version"] = version
        if tags:
            meta["tags"] = {str(k): str(v) for k, v in tags.items()}
        self._defaults_metadata = meta

        # Counters (read them; written by the client only).
        self.sent = 0
        self.dropped = 0  # all spans lost: queue full, rejected, or undeliverable
        self.dropped_queue_full = 0
        self.dropped_send_failed = 0
        self.rejected = 0  # refused by the server (400, or errors[] of a 207)
        self.retries = 0

        self._queue: deque[Span] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Condition(threading.Lock())
        self._flush_requests = 0
        self._in_flight = 0
        self._closed = False
        self._deadline: float | None = None  # set by shutdown: stop retrying after this
        self._thread: threading.Thread | None = None
        self._rng = random.Random()  # noqa: S311 - backoff jitter, not security
        if self.enabled:
            self._start_worker()
        ref = weakref.ref(self)
        atexit.register(_atexit_shutdown, ref)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=functools.partial(_after_fork, ref))
        with _default_lock:
            if _default is None:
                _default = self

    # -- spans -------------------------------------------------------------------------------

    def span(
        self,
        name: str,
        kind: str = "span",
        *,
        parent: Span | RemoteParent | None | object = _ABSENT,
        traceparent: str | None = None,
        **fields: Any,
    ) -> Span:
        """A new span, child of the current one; use it with ``with`` (it becomes current) or end it.

        ``fields`` are canonical span fields set at once: ``input``, ``output``,
        ``model``, ``provider``, ``user_id``, ``session_id``, ``metadata``,
        ``tags``, ``request``, ``response``, ``metrics``, ``id``, ``trace_id``."""
        if traceparent is not None:
            parent = from_traceparent(traceparent)
        span = Span(
            self,
            name,
            kind,
            parent=parent,
            trace_id=fields.pop("trace_id", None),
            span_id=fields.pop("id", None),
        )
        if self._defaults_metadata:
            meta = span.fields["metadata"] = dict(self._defaults_metadata)
            if "tags" in meta:
                meta["tags"] = dict(meta["tags"])
        if fields:
            _apply_fields(span, fields)
        return span

    start_span = span

    @overload
    def observe(self, func: F) -> F: ...

    @overload
    def observe(
        self,
        func: None = None,
        *,
        name: str | None = None,
        kind: str = "span",
        capture_input: bool = True,
        capture_output: bool = True,
        **fields: Any,
    ) -> Callable[[F], F]: ...

    def observe(
        self,
        func: F | None = None,
        *,
        name: str | None = None,
        kind: str = "span",
        capture_input: bool = True,
        capture_output: bool = True,
        **fields: Any,
    ) -> Any:
        """Decorator: each call of the function (sync or async) is a span, child of the current one."""

        def decorate(fn: F) -> F:
            span_name = name or getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "function")
            try:
                signature: inspect.Signature | None = inspect.signature(fn)
            except (TypeError, ValueError):
                signature = None

            def inputs(args: tuple, kwargs: dict) -> Any:
                if signature is None:
                    return {"args": list(args), "kwargs": kwargs}
                try:
                    bound = signature.bind_partial(*args, **kwargs)
                except TypeError:
                    return {"args": list(args), "kwargs": kwargs}
                values = dict(bound.arguments)
                for skip in ("self", "cls"):
                    values.pop(skip, None)
                return values

            def start(args: tuple, kwargs: dict) -> Span:
                span = self.span(span_name, kind, **fields)
                if capture_input:
                    span.set_input(inputs(args, kwargs))
                return span

            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                    with start(args, kwargs) as span:
                        result = await fn(*args, **kwargs)
                        if capture_output:
                            span.set_output(result)
                        return result

                return async_wrapper  # type: ignore[return-value]

            @functools.wraps(fn)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                with start(args, kwargs) as span:
                    result = fn(*args, **kwargs)
                    if capture_output:
                        span.set_output(result)
                    return result

            return wrapper  # type: ignore[return-value]

        if func is not None and callable(func):
            return decorate(func)
        return decorate

    @staticmethod
    def current_span() -> Span | None:
        span = _current.get()
        return span if isinstance(span, Span) else None

    @staticmethod
    def traceparent() -> str | None:
        span = _current.get()
        return None if span is None else span.traceparent()

    @staticmethod
    def from_traceparent(header: str | None) -> RemoteParent | None:
        return from_traceparent(header)

    # -- queue ---------------------------------------------------------------------------------

    def _enqueue(self, span: Span) -> None:
        if not self.enabled or self._closed:
            return
        queue = self._queue
        with self._lock:
            if len(queue) >= self.max_queue:
                queue.popleft()
                self.dropped += 1
                self.dropped_queue_full += 1
            queue.append(span)
            size = len(queue)
        if size >= self.batch_size and not self._wake.is_set():
            self._wake.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def stats(self) -> dict[str, int]:
        return {
            "queued": len(self._queue),
            "sent": self.sent,
            "dropped": self.dropped,
            "dropped_queue_full": self.dropped_queue_full,
            "dropped_send_failed": self.dropped_send_failed,
            "rejected": self.rejected,
            "retries": self.retries,
        }

    def flush(self, timeout: float | None = 10.0) -> bool:
        """Send what is queued now; True when the queue is empty and nothing is in flight in time."""
        if not self.enabled:
            return True
        self._ensure_worker()
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._idle:
            self._flush_requests += 1
        self._wake.set()
        with self._idle:
            while self._queue or self._in_flight:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._idle.wait(remaining if remaining is None else min(remaining, 0.1))
                self._wake.set()
            return True

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush (retries stop at the deadline), then stop the thread; later spans are ignored."""
        if self._closed:
            return True
        timeout = self.shutdown_timeout if timeout is None else timeout
        self._deadline = time.monotonic() + timeout
        done = self.flush(timeout)
        self._closed = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, self._deadline - time.monotonic()) + 0.1)
        return done

    close = shutdown

    def __enter__(self) -> Untrace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # -- worker ----------------------------------------------------------------------------------

    def _start_worker(self) -> None:
        self._thread = threading.Thread(target=self._run, name="untrace-sdk-sender", daemon=True)
        self._thread.start()

    def _ensure_worker(self) -> None:
        if self.enabled and not self._closed and (self._thread is None or not self._thread.is_alive()):
            self._start_worker()

    def _take(self) -> list[Span]:
        with self._idle, self._lock:  # in flight before leaving the queue: flush never sees a gap
            queue = self._queue
            count = min(len(queue), self.batch_size)
            batch = [queue.popleft() for _ in range(count)]
            self._in_flight += count
        return batch

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while True:
                batch = self._take()
                if not batch:
                    break
                try:
                    self._send(batch)
                except Exception:  # the sender thread never dies
                    logger.exception("untrace: unexpected error sending %d spans", len(batch))
                    self._lost(len(batch))
                finally:
                    with self._idle:
                        self._in_flight -= len(batch)
                        self._idle.notify_all()
                if len(self._queue) < self.batch_size and not self._flush_requests and not self._closed:
                    break
            with self._idle:
                self._flush_requests = 0
                self._idle.notify_all()
            if self._closed:
                return

    def _lost(self, count: int) -> None:
        self.dropped += count
        self.dropped_send_failed += count

    def _encode(self, batch: list[Span]) -> bytes:
        raw = json.dumps(
            {"traces": [span.to_dict() for span in batch]},
            default=_json_default,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8", "replace")
        return gzip.compress(raw, compresslevel=self.gzip_level)

    def _send(self, batch: list[Span]) -> None:
        body = self._encode(batch)
        attempt = 0
        while True:
            answer = self._post(body)
            if answer is not None and answer.status in (200, 202):
                self.sent += len(batch)
                return
            if answer is not None and answer.status == 207:
                self._partial(batch, answer.body)
                return
            if answer is not None and answer.status == 413 and len(batch) > 1:
                half = len(batch) // 2
                self._send(batch[:half])
                self._send(batch[half:])
                return
            retryable = answer is None or answer.status in RETRY_STATUSES
            if not retryable:
                self._rejected(batch, answer)
                return
            delay = self._backoff(attempt, answer.retry_after if answer is not None else None)
            if attempt >= self.max_retries or not self._may_wait(delay):
                what = "network error" if answer is None else f"HTTP {answer.status}"
                logger.warning(
                    "untrace: dropping %d spans after %d tries (%s)", len(batch), attempt + 1, what
                )
                self._lost(len(batch))
                return
            attempt += 1
            self.retries += 1
            time.sleep(delay)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_backoff)
        ceiling = min(self.max_backoff, self.backoff_base * (2**attempt))
        return self._rng.uniform(0, ceiling)  # full jitter

    def _may_wait(self, delay: float) -> bool:
        deadline = self._deadline
        return deadline is None or time.monotonic() + delay < deadline

    def _post(self, body: bytes) -> _Answer | None:
        request = urllib.request.Request(  # noqa: S310 - base_url is checked to be http(s)
            self.endpoint,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Content-Encoding": "gzip",
                "X-Untrace-Key": self.api_key,
                "User-Agent": _USER_AGENT,
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return _Answer(response.status, response.read(), None)
        except urllib.error.HTTPError as exc:
            try:
                content = exc.read()
            except (OSError, http.client.HTTPException):
                content = b""
            return _Answer(exc.code, content, _retry_after(exc.headers.get("Retry-After")))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            logger.debug("untrace: %s unreachable: %s", self.endpoint, exc)
            return None

    def _partial(self, batch: list[Span], body: bytes) -> None:
        try:
            errors = json.loads(body).get("errors") or []
        except (ValueError, AttributeError):
            errors = []
        bad = len(errors)
        self.sent += len(batch) - bad
        self.rejected += bad
        self.dropped += bad
        for error in errors[:5]:
            logger.warning("untrace: span rejected: %s", error)

    def _rejected(self, batch: list[Span], answer: _Answer) -> None:
        self.rejected += len(batch)
        self.dropped += len(batch)
        text = answer.body[:500].decode("utf-8", "replace")
        logger.warning("untrace: %d spans refused with HTTP %d: %s", len(batch), answer.status, text)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(threading.Lock())
        self._wake = threading.Event()
        self._queue.clear()
        self._in_flight = 0
        self._flush_requests = 0
        self._thread = None
        if self.enabled and not self._closed:
            self._start_worker()


def _atexit_shutdown(ref: weakref.ref) -> None:
    client = ref()
    if client is not None:
        client.shutdown()


def _after_fork(ref: weakref.ref) -> None:
    client = ref()
    if client is not None:
        client._after_fork_in_child()


def _apply_fields(span: Span, fields: dict[str, Any]) -> None:
    for key, value in fields.items():
        if key == "input":
            span.set_input(value)
        elif key == "output":
            span.set_output(value)
        elif key == "tags":
            span.set_tags(value)
        elif key == "metadata":
            span.set_metadata(value)
        elif key == "usage":
            span.set_usage(**value)
        elif key == "user_id":
            span.set_user(value)
        elif key == "session_id":
            span.set_session(value)
        elif key in ("request", "response", "metrics", "attributes") and isinstance(value, dict):
            span._sub(key).update(value)
        else:
            span.fields[key] = value
