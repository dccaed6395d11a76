"""The proxy's trace writer: a bounded queue drained by one thread, and a spill file.

The request path only enqueues (`submit` never blocks and never raises). The
thread collects what arrives within UNTRACE_PROXY_FLUSH_INTERVAL of the first
queued call, builds the spans and stores each project's spans with one
`spans_store` call (one write and one routing task per batch, not per call),
so a trace is durable within about 100 ms of its call. When storing fails (PostgreSQL
down), the spans are appended to a JSON-lines file in the spill folder; the
thread replays spill files every UNTRACE_PROXY_REPLAY_INTERVAL seconds once
storing works again (re-sent span ids are no-ops, so a replay is safe to
repeat). A full queue drops the trace and counts it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from apps.billing.usage import usage_record
from apps.budgets.spend import spend_increment
from apps.core.metrics import PROXY_TRACES
from apps.proxy.capture import ProxiedCall, build_span, minimal_span
from apps.traces.pricing_overrides import price_overrides_for
from apps.traces.schema import SchemaError, SpanLimits, decode_span
from apps.traces.store import spans_store

logger = logging.getLogger(__name__)
_BATCH = 500
# What a PostgreSQL outage raises; anything else is a trace the store refuses, never retried.
_STORAGE_DOWN = (OperationalError, InterfaceError)
_LIMITS = SpanLimits()
# (project id, organization id, span, id of the key that sent it); spill files
# written before the key was recorded hold three-item entries.
Entry = tuple[str, str, dict[str, Any], str | None]
Target = tuple[str, str, str | None]  # (project id, organization id, key id)


def _entry(target: Target, span: dict[str, Any]) -> Entry:
    project_id, organization_id, key_id = target
    return (project_id, organization_id, span, key_id)


def _span_of(call: ProxiedCall) -> dict[str, Any]:
    try:
        return build_span(call)
    except Exception as exc:  # a parsing bug must not lose the trace
        logger.exception("could not assemble the trace of a proxied call")
        return minimal_span(
            {
                "id": call.meta.span_id,
                "trace_id": call.meta.trace_id,
                "parent_id": call.meta.parent_id,
                "name": f"{call.provider}.{call.path.strip('/').replace('/', '.')}",
                "start_time": call.start_ms,
                "end_time": call.end_ms,
                "provider": call.provider,
            },
            f"assembly failed: {exc.__class__.__name__}",
        )


class TraceWriter:
    def __init__(self, *, queue_size: int, window: float, replay_interval: float, spill_dir: Path) -> None:
        # None in the queue asks the thread to write what it collected without waiting.
        self._queue: queue.Queue[ProxiedCall | None] = queue.Queue(maxsize=queue_size)
        self._window = window
        self._replay_interval = replay_interval
        self._spill_dir = spill_dir
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._last_replay = 0.0

    # --- request path ---

    def submit(self, call: ProxiedCall) -> None:
        if self._thread is None:
            self._start()
        try:
            self._queue.put_nowait(call)
        except queue.Full:
            PROXY_TRACES.labels("dropped").inc()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="proxy-trace-writer", daemon=True)
                self._thread.start()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is stored or spilled; False on timeout."""
        deadline = time.monotonic() + timeout
        if self._thread is None:
            return True
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)  # ends the collection window at once
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    # --- writer thread ---

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=min(1.0, self._replay_interval))
            except queue.Empty:
                self._maybe_replay()
                continue
            calls = [first]
            deadline = time.monotonic() + self._window
            while len(calls) < _BATCH and calls[-1] is not None:
                remaining = deadline - time.monotonic()
                try:
                    calls.append(
                        self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
            try:
                entries = []
                for call in filter(None, calls):
                    key_id = str(call.key_id) if call.key_id else None
                    entries.append((str(call.project_id), str(call.organization_id), _span_of(call), key_id))
                    time.sleep(0)  # hand the GIL to the event loop if it waits: requests come first
                self._write(entries, outcome="stored")
            finally:
                for _ in calls:
                    self._queue.task_done()
            self._maybe_replay()

    def _write(self, entries: list[Entry], *, outcome: str) -> bool:
        """Store the entries; spill those that could not be stored. True when all were stored."""
        groups: dict[tuple[str, str, str | None], list[dict[str, Any]]] = defaultdict(list)
        for project_id, organization_id, span, key_id in entries:
            groups[(project_id, organization_id, key_id)].append(span)
        stored_all = True
        close_old_connections()
        try:
            for target, spans in groups.items():
                try:
                    self._store(target, spans)
                    PROXY_TRACES.labels(outcome).inc(len(spans))
                except _STORAGE_DOWN as exc:
                    logger.warning("could not store %d proxy traces, spilling: %s", len(spans), exc)
                    stored_all = False
                    self._spill([_entry(target, s) for s in spans], first_time=outcome == "stored")
                    _discard_connection()
                except Exception:  # a span the store refuses (e.g. its project was deleted): keep the rest
                    logger.exception("the store refused a batch of proxy traces; storing them one by one")
                    stored_all = self._write_one_by_one(target, spans, outcome) and stored_all
        finally:
            close_old_connections()
        return stored_all

    def _write_one_by_one(self, target: Target, spans: list[dict[str, Any]], outcome: str) -> bool:
        stored_all = True
        for span in spans:
            try:
                self._store(target, [span])
                PROXY_TRACES.labels(outcome).inc()
            except _STORAGE_DOWN:
                stored_all = False
                self._spill([_entry(target, span)], first_time=outcome == "stored")
                _discard_connection()
            except Exception:
                logger.exception("dropping proxy trace %s: the store refused it", span.get("id"))
                PROXY_TRACES.labels("dropped").inc()
        return stored_all

    @staticmethod
    def _store(target: Target, spans: list[dict[str, Any]]) -> None:
        project_id, organization_id, key_id = target
        decoded = []
        for span in spans:
            try:
                decoded.append(decode_span(span, limits=_LIMITS))
            except SchemaError as exc:
                decoded.append(decode_span(minimal_span(span, str(exc)), limits=_LIMITS))
        result = spans_store(
            project_id=uuid.UUID(project_id),
            spans=decoded,
            source="proxy",
            price_overrides=price_overrides_for(uuid.UUID(organization_id)),
            api_key_id=uuid.UUID(key_id) if key_id else None,
        )
        usage_record(organization_id, result.inserted, spend_increment(project_id, key_id, result.cost))

    def _spill(self, entries: list[Entry], *, first_time: bool) -> None:
        """Append to this process's spill file; a failed replay spills again without counting."""
        try:
            self._spill_dir.mkdir(parents=True, exist_ok=True)
            lines = b"".join(orjson.dumps(entry) + b"\n" for entry in entries)
            with open(self._spill_dir / f"spill-{os.getpid()}.jsonl", "ab") as file:
                file.write(lines)
                file.flush()
                os.fsync(file.fileno())
            if first_time:
                PROXY_TRACES.labels("spilled").inc(len(entries))
        except OSError:
            logger.exception("could not spill %d proxy traces", len(entries))
            PROXY_TRACES.labels("dropped").inc(len(entries))

    def _maybe_replay(self) -> None:
        now = time.monotonic()
        if now - self._last_replay < self._replay_interval:
            return
        self._last_replay = now
        try:
            pending = sorted(self._spill_dir.glob("spill-*.jsonl"))
        except OSError:
            return
        for path in pending:
            # Claim the file (several web processes share the folder); a rename is atomic.
            claimed = path.with_name(f"{path.stem}.{os.getpid()}.replaying")
            try:
                path.rename(claimed)
            except OSError:
                continue
            entries = [orjson.loads(line) for line in claimed.read_bytes().splitlines() if line.strip()]
            entries = [(*e, None) if len(e) == 3 else tuple(e) for e in entries]
            stored = self._write(entries, outcome="replayed") if entries else True
            claimed.unlink()
            if not stored:
                return  # still down; what failed was spilled again


def _discard_connection() -> None:
    with contextlib.suppress(Exception):  # the connection is broken anyway
        connection.close()


_writer: TraceWriter | None = None
_writer_lock = threading.Lock()


def trace_writer() -> TraceWriter:
    global _writer
    if _writer is None:
        with _writer_lock:
            if _writer is None:
                _writer = TraceWriter(
                    queue_size=settings.UNTRACE_PROXY_QUEUE_SIZE,
                    window=settings.UNTRACE_PROXY_FLUSH_INTERVAL,
                    replay_interval=settings.UNTRACE_PROXY_REPLAY_INTERVAL,
                    spill_dir=Path(settings.UNTRACE_PROXY_SPILL_DIR),
                )
                atexit.register(flush_traces)
    return _writer


def flush_traces(timeout: float = 10.0) -> bool:
    return _writer.flush(timeout) if _writer is not None else True
