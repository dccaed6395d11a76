"""Durable writes of canonical spans: one bulk statement per request, idempotent.

On PostgreSQL the spans whose ids the project has not stored yet go in with
one COPY (measured about 1.5x faster than a multi-row INSERT or
`jsonb_to_recordset` for 2 KB spans); the unique (project, span id) constraint
makes a re-sent span a no-op even under concurrent retries. SQLite
(development only) takes the ORM's bulk insert.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.core.metrics import SPANS_SUPPRESSED
from apps.privacy.suppression import rows_without_suppressed
from apps.traces.accounting import ModelPrice, fill_accounting
from apps.traces.enqueue import enqueue_routing
from apps.traces.models import IngestBatch, Span
from apps.traces.schema import Span as CanonicalSpan
from apps.traces.schema import span_to_dict

SEARCH_TEXT_LIMIT = 4000

# The columns a stored row carries, in COPY order; the JSON ones go in as JSON text.
_COLUMNS = (
    "project_id",
    "batch_id",
    "span_id",
    "trace_id",
    "parent_id",
    "session_id",
    "user_id",
    "name",
    "kind",
    "provider",
    "model",
    "status",
    "start_time",
    "end_time",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "cost",
    "latency_ms",
    "request",
    "response",
    "metadata",
    "metrics",
    "error",
    "attributes",
    "search_text",
    "received_at",
)
_JSON_COLUMNS = frozenset({"request", "response", "metadata", "metrics", "error", "attributes"})
_COPY_SQL = f"COPY traces_span ({', '.join(_COLUMNS)}) FROM STDIN"
_EXISTING_SQL = "SELECT span_id FROM traces_span WHERE project_id = %s AND span_id = ANY(%s)"
_TYPES = {
    "project_id": "uuid",
    "batch_id": "uuid",
    "start_time": "timestamptz",
    "end_time": "timestamptz",
    "received_at": "timestamptz",
    "prompt_tokens": "bigint",
    "completion_tokens": "bigint",
    "total_tokens": "bigint",
    "cost": "numeric",
    "latency_ms": "double precision",
}
_RECORD = ", ".join(f"{c} {'jsonb' if c in _JSON_COLUMNS else _TYPES.get(c, 'text')}" for c in _COLUMNS)
_BATCH_COLUMNS = "id, project_id, source, api_key_id, span_count, created_at, updated_at"
_BATCH_SQL = f"INSERT INTO traces_ingestbatch ({_BATCH_COLUMNS}) VALUES (%s, %s, %s, %s, %s, now(), now())"
_UPSERT_SQL = (
    f"WITH stored AS (INSERT INTO traces_span ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} "
    f"FROM jsonb_to_recordset(%s::jsonb) AS r({_RECORD}) "
    "ON CONFLICT (project_id, span_id) DO NOTHING RETURNING span_id), "
    f"batch AS (INSERT INTO traces_ingestbatch ({_BATCH_COLUMNS}) "
    "SELECT %s, %s, %s, %s, count(*), now(), now() FROM stored HAVING count(*) > 0) "
    "SELECT span_id FROM stored"
)
COPY_THRESHOLD = 50  # spans; below it one upsert statement beats SELECT + COPY round trips
# PostgreSQL text and jsonb cannot hold U+0000; it is stored as U+FFFD. The
# pattern skips an escaped backslash followed by "u0000" (literal text, not a NUL).
_NUL_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\u0000")


@dataclass(frozen=True)
class StoreResult:
    batch_id: uuid.UUID | None  # None when every span was already stored
    ids: list[str]  # every accepted span id, in request order (new and re-sent)
    inserted: int
    suppressed: int = 0  # spans of an erased user or session, dropped unstored
    cost: float = 0.0  # traced cost (USD) of the newly stored spans, for budgets


def _text_of(messages: Any) -> list[str]:
    parts: list[str] = []
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
                )
    return parts


def _search_text(request: Mapping | None, response: Mapping | None) -> str:
    parts: list[str] = []
    if request:
        parts.extend(_text_of(request.get("messages")))
        if isinstance(request.get("prompt"), str):
            parts.append(request["prompt"])
    if response:
        if isinstance(response.get("content"), str):
            parts.append(response["content"])
        parts.extend(_text_of(response.get("messages")))
    return "\n".join(parts)[:SEARCH_TEXT_LIMIT]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def span_row(
    span: CanonicalSpan, *, received_at: datetime, price_overrides: Mapping[str, ModelPrice] | None = None
) -> dict[str, Any]:
    """The stored row of one canonical span, accounting filled in (JSON-ready values)."""
    data = fill_accounting(span_to_dict(span), price_overrides=price_overrides)
    response = data.get("response")
    usage = (response or {}).get("usage") or {}
    metrics = data.get("metrics") or {}
    return {
        "span_id": data["id"],
        "trace_id": data.get("trace_id") or data["id"],
        "parent_id": data.get("parent_id"),
        "session_id": data.get("session_id"),
        "user_id": data.get("user_id"),
        "name": data.get("name"),
        "kind": data.get("kind", "llm"),
        "provider": data.get("provider"),
        "model": data.get("model"),
        "status": "error" if data.get("error") else "ok",
        "start_time": data.get("start_time") or received_at.isoformat(),
        "end_time": data.get("end_time"),
        "prompt_tokens": _int(usage.get("prompt_tokens")),
        "completion_tokens": _int(usage.get("completion_tokens")),
        "total_tokens": _int(usage.get("total_tokens")),
        "cost": metrics.get("estimated_cost"),
        "latency_ms": metrics.get("latency_ms"),
        "request": data.get("request"),
        "response": response,
        "metadata": data.get("metadata"),
        "metrics": metrics or None,
        "error": data.get("error"),
        "attributes": data.get("attributes"),
        "search_text": _search_text(data.get("request"), response),
        "received_at": received_at.isoformat(),
    }


def storable_text(value: str) -> str:
    """The text as stored: PostgreSQL cannot hold U+0000, which becomes U+FFFD."""
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def _pg_value(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in _JSON_COLUMNS:
        text = orjson.dumps(value).decode()
        return _NUL_ESCAPE.sub(r"\1\\ufffd", text) if "\\u0000" in text else text
    if isinstance(value, str):
        return storable_text(value)
    return value


def _upsert(cursor: Any, rows: list[dict[str, Any]], batch: tuple[Any, ...]) -> set[str]:
    """One statement: the spans not stored yet, and the batch row that counts them."""
    payload = orjson.dumps([{c: row.get(c) for c in _COLUMNS} for row in rows], default=str).decode()
    if "\\u0000" in payload:
        payload = _NUL_ESCAPE.sub(r"\1\\ufffd", payload)
    # A server-binding cursor: Django's default client-side binding quotes the whole JSON
    # payload into the SQL text in Python (about 0.8 ms for one 2 KB span here).
    with connection.wrap_database_errors, psycopg.Cursor(cursor.connection) as bound:
        bound.execute(_UPSERT_SQL, [payload, *batch])
        return {span_id for (span_id,) in bound.fetchall()}


def _insert_postgresql(
    project_id: uuid.UUID,
    rows: list[dict[str, Any]],
    batch_id: uuid.UUID,
    source: str,
    api_key_id: uuid.UUID | None,
) -> set[str]:
    """Small requests take one statement: a single round trip, atomic on its own. Large ones
    COPY the spans not stored yet in a transaction; an id stored meanwhile by a concurrent
    request trips the unique constraint, and the upsert takes over."""
    batch = (batch_id, project_id, source, api_key_id)
    with connection.cursor() as cursor:
        if len(rows) <= COPY_THRESHOLD:
            if not connection.in_atomic_block:
                return _upsert(cursor, rows, batch)
            with transaction.atomic():  # a savepoint, so a refused statement spares the caller's work
                return _upsert(cursor, rows, batch)
        with transaction.atomic():
            cursor.execute(_EXISTING_SQL, [project_id, [row["span_id"] for row in rows]])
            existing = {span_id for (span_id,) in cursor.fetchall()}
            fresh = [row for row in rows if row["span_id"] not in existing]
            if not fresh:
                return set()
            try:
                with transaction.atomic(), cursor.copy(_COPY_SQL) as copy:
                    for row in fresh:
                        copy.write_row([_pg_value(c, row.get(c)) for c in _COLUMNS])
            except IntegrityError:
                return _upsert(cursor, fresh, batch)
            cursor.execute(_BATCH_SQL, [*batch, len(fresh)])
    return {row["span_id"] for row in fresh}


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value).astimezone(UTC) if value else None


def _insert_generic(project_id: uuid.UUID, rows: list[dict[str, Any]]) -> set[str]:
    ids = [row["span_id"] for row in rows]
    existing = set(
        Span.objects.for_project(project_id).filter(span_id__in=ids).values_list("span_id", flat=True)
    )
    fresh = [row for row in rows if row["span_id"] not in existing]
    Span.objects.bulk_create(
        [
            Span(
                **{
                    **row,
                    "start_time": _parse_time(row["start_time"]),
                    "end_time": _parse_time(row["end_time"]),
                    "received_at": _parse_time(row["received_at"]),
                }
            )
            for row in fresh
        ],
        ignore_conflicts=True,
    )
    return {row["span_id"] for row in fresh}


def spans_store(
    *,
    project_id: uuid.UUID,
    spans: Sequence[CanonicalSpan],
    source: str,
    price_overrides: Mapping[str, ModelPrice] | None = None,
    api_key_id: uuid.UUID | None = None,
) -> StoreResult:
    """Store spans durably (commit before return) and enqueue their routing after commit.
    `api_key_id` records which key sent them (routing transformations may read it)."""
    received_at = timezone.now()
    batch_id = uuid.uuid4()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for span in spans:
        if span.id in seen:  # the same id twice in one request: the first wins
            continue
        seen.add(span.id)
        row = span_row(span, received_at=received_at, price_overrides=price_overrides)
        row["project_id"] = project_id
        row["batch_id"] = batch_id
        rows.append(row)
    # An erased subject's spans are accepted (the client sees no error) and never stored.
    storable, suppressed = rows_without_suppressed(project_id, rows)
    if suppressed:
        SPANS_SUPPRESSED.labels(source).inc(suppressed)
    if not storable:
        inserted: set[str] = set()
    elif connection.vendor == "postgresql":
        inserted = _insert_postgresql(project_id, storable, batch_id, source, api_key_id)
    else:
        with transaction.atomic():
            inserted = _insert_generic(project_id, storable)
            if inserted:
                IngestBatch.objects.create(
                    id=batch_id,
                    project_id=project_id,
                    source=source,
                    api_key_id=api_key_id,
                    span_count=len(inserted),
                )
    if inserted:  # at once when committed; inside a caller's transaction, after its commit
        transaction.on_commit(lambda: enqueue_routing(batch_id=batch_id))
    return StoreResult(
        batch_id=batch_id if inserted else None,
        ids=[row["span_id"] for row in rows],
        inserted=len(inserted),
        suppressed=suppressed,
        cost=sum(row["cost"] or 0 for row in rows if row["span_id"] in inserted),
    )
