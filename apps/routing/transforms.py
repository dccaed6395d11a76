"""Transformation pipelines: a destination's list of steps, compiled once.

A routing configuration gives each destination a JSON list of steps.
`compile_pipeline` validates that list strictly (every error is a ConfigError
naming the exact sub-field, e.g. `rules[0].actions.transformations[2].max_length`)
and turns it into a `Pipeline`: a tuple of step callables with every path
parsed, every expression compiled and every constant copied up front, so that
applying it to a span parses nothing.

A step is `step(span, ctx, report) -> span`. It never mutates its input: it
returns a new span that shares every unchanged subtree with the old one
(`apps.routing.paths.update_path`), or the very same object when it changed
nothing. One stored span therefore feeds several destinations' pipelines.
Values a step inserts (a `set` value, `enrich` metadata) are shared between the
spans it produces: output spans are to be serialized, not mutated.

Step types (each a JSON object with `"type"`; no other keys than listed):

- `redact_pii`: masks personal data; validated and compiled by `apps.routing.pii.compile_redactor`.
- `set` (`path`, and exactly one of `value` / `from`): writes the constant `value`, or a copy of
  `span.<path>` / `context.<path>` (`project`, `api_key`, `environment`), at `path`. Missing objects
  on the way are created; a missing source is a no-op. `*` in `path` writes at every match.
- `rename` / `move` (`from`, `to`): removes the value at `from` and writes it at `to`. Missing
  source: no-op. No `*`.
- `drop` (`path`): removes the key(s) or list item(s) at `path`; `*` allowed.
- `truncate` (`path`, `max_length` >= 0): strings longer than `max_length` characters are cut with
  the marker below; lists longer than `max_length` items keep their first `max_length` items.
- `limit_size` (`max_bytes` >= 1024): shrinks the span until its orjson serialization is at most
  `max_bytes` bytes; the exact algorithm is `_shrink`'s docstring.
- `enrich` (`metadata` and/or `derived`): deep-merges constant metadata (the step's values win),
  fills derived metrics (`_fill_derived`).
- `jmespath` (`path`, `expression`, optional `set_null`): writes the result of a JMESPath
  expression at `path`. The expression is evaluated against the span itself; the context values
  are visible under the top-level name `context` unless the span has a `context` key of its own.
  A null result (or an evaluation error, e.g. `length()` of a number) leaves `path` unchanged,
  unless `set_null` is true, which writes the null. No `*` in `path`.

No step may write, move or drop `id` or `trace_id` (nor a top-level `*`):
routing and de-duplication depend on them.

The truncation marker: a string cut to `max_length` characters keeps its first
`max_length` characters followed by `…[truncated N chars]`, where N is the
number of characters removed (in total, if the string was already cut by an
earlier step). The result is therefore at most `max_length` characters plus the
marker. Cutting an already cut string to a length its kept part fits in changes
nothing, so truncation is idempotent.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import jmespath
import orjson
from jmespath import exceptions as jmespath_errors
from jmespath import functions as jmespath_functions
from jmespath import visitor as jmespath_visitor

from apps.routing.context import TransformContext, TransformReport
from apps.routing.errors import ConfigError
from apps.routing.paths import (
    MISSING,
    Path,
    delete_path,
    get_path,
    parse_path,
    set_path,
    update_path,
)

__all__ = [
    "DERIVED_METRICS",
    "EMPTY",
    "MAX_STEPS",
    "STEP_TYPES",
    "Pipeline",
    "Step",
    "compile_pipeline",
    "truncate_text",
]

Span = dict[str, Any]
Step = Callable[[Span, TransformContext, TransformReport], Span]

MAX_STEPS = 50
STEP_TYPES = ("redact_pii", "set", "rename", "move", "drop", "truncate", "limit_size", "enrich", "jmespath")
DERIVED_METRICS = ("cost_per_1k_tokens", "tokens_per_second", "output_input_ratio")
CONTEXT_KEYS = ("project", "api_key", "environment")
PROTECTED_FIELDS = frozenset({"id", "trace_id"})

MIN_LIMIT_BYTES = 1024  # below this even an empty span with its ids and marker cannot be promised
LIMIT_KEEP_CHARS = 64  # limit_size never cuts a string shorter than this
MAX_EXPRESSION_LENGTH = 2000
MAX_VALUE_DEPTH = 32

_MARKER_HEAD = "\u2026[truncated "
_MARKER_TAIL = " chars]"
_MARKER = re.compile(r"\u2026\[truncated (\d+) chars\]")
_JSON_SCALARS = (str, int, float, bool, type(None))
# One interpreter for every expression: it holds no per-evaluation state, and its
# warm dispatch cache makes an evaluation about a third cheaper than `search`.
_JMESPATH = jmespath_visitor.TreeInterpreter()


@dataclass(frozen=True, slots=True)
class Pipeline:
    """Compiled steps, applied in order: each step sees the previous one's output."""

    steps: tuple[Step, ...] = ()

    def apply(self, span: Span, ctx: TransformContext) -> tuple[Span, TransformReport]:
        # Counter.__new__ skips Counter.__init__ (an update() call), which is most of the
        # cost of an empty report: this keeps an empty pipeline near free.
        report = TransformReport(Counter.__new__(Counter), [], [])
        for step in self.steps:
            span = step(span, ctx, report)
        return span, report

    def __bool__(self) -> bool:
        return bool(self.steps)


EMPTY = Pipeline()


def compile_pipeline(steps: Any, *, where: str) -> Pipeline:
    """The user's JSON list of steps as a Pipeline, or ConfigError(f"{where}[i].key", why).

    None and [] give `EMPTY`. At most MAX_STEPS steps.
    """
    if steps is None:
        return EMPTY
    if not isinstance(steps, list):
        raise ConfigError(where, "must be a list of transformation steps")
    if len(steps) > MAX_STEPS:
        raise ConfigError(where, f"has {len(steps)} steps; at most {MAX_STEPS} are allowed")
    if not steps:
        return EMPTY
    compiled: list[Step] = []
    for i, spec in enumerate(steps):
        at = f"{where}[{i}]"
        if not isinstance(spec, dict):
            raise ConfigError(at, "must be an object with a 'type' such as {'type': 'drop', 'path': '...'}")
        if "type" not in spec:
            raise ConfigError(f"{at}.type", f"is required; one of: {', '.join(STEP_TYPES)}")
        kind = spec["type"]
        if not isinstance(kind, str) or kind not in _COMPILERS:
            raise ConfigError(
                f"{at}.type", f"unknown step type {kind!r}; known types: {', '.join(STEP_TYPES)}"
            )
        compiled.append(_COMPILERS[kind](spec, at))
    return Pipeline(tuple(compiled))


# --- validation helpers -------------------------------------------------------------------------


def _check_keys(spec: dict[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in spec:
        if key != "type" and key not in allowed:
            raise ConfigError(
                f"{where}.{key}",
                f"unknown key for a '{spec['type']}' step; allowed keys: {', '.join(allowed)}",
            )


def _required(spec: dict[str, Any], key: str, where: str, hint: str) -> Any:
    if key not in spec:
        raise ConfigError(f"{where}.{key}", f"is required ({hint})")
    return spec[key]


def _size(spec: dict[str, Any], key: str, where: str, *, minimum: int, hint: str) -> int:
    value = _required(spec, key, where, hint)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}.{key}", f"must be a whole number ({hint}), not {value!r}")
    if value < minimum:
        raise ConfigError(f"{where}.{key}", f"must be at least {minimum}, not {value}")
    return value


def _target(value: Any, where: str, *, wildcards: bool = True) -> Path:
    """A path a step writes or removes: never `id`, `trace_id` or a top-level `*`."""
    path = parse_path(value, where=where, wildcards=wildcards)
    if path[0] in PROTECTED_FIELDS:
        raise ConfigError(
            where,
            f"'{value}' would change the span's {path[0]}, which routing and de-duplication depend on",
        )
    if path[0] == "*":
        raise ConfigError(where, f"'{value}': a top-level '*' would reach id and trace_id; name the field")
    return path


def _json_copy(value: Any, where: str, depth: int = 0) -> Any:
    """A private deep copy of a JSON value from the configuration, or ConfigError."""
    if depth > MAX_VALUE_DEPTH:
        raise ConfigError(where, f"is nested deeper than {MAX_VALUE_DEPTH} levels")
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(where, f"has a non-string key {key!r}")
            out[key] = _json_copy(item, f"{where}.{key}", depth + 1)
        return out
    if isinstance(value, list):
        return [_json_copy(item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(where, "must be a finite number")
    if isinstance(value, _JSON_SCALARS):
        return value
    raise ConfigError(where, f"must be a JSON value, not {type(value).__name__}")


def _same(old: Any, new: Any) -> bool:
    return old is new or (type(old) is type(new) and old == new)


# --- path helpers -------------------------------------------------------------------------------


def _split_stars(path: Path) -> tuple[Path, ...]:
    """`a.*.b.*.c` -> (('a',), ('b',), ('c',)): the runs of segments between `*`s."""
    parts: list[Path] = []
    run: list[str] = []
    for segment in path:
        if segment == "*":
            parts.append(tuple(run))
            run = []
        else:
            run.append(segment)
    parts.append(tuple(run))
    return tuple(parts)


def _updater(path: Path, *, create: bool = False) -> Callable[[Any, Callable[[Any, list[Any]], Any]], Any]:
    """`update(node, fn)`: `update_path` that tells `fn` where it is and keeps identity across `*`.

    `fn(old, trail)` gets each value `path` reaches (MISSING where the last part
    is absent) and `trail`, the concrete segments before the path's last run
    (`*` replaced by the list index or object key; valid during the call only). Returning
    `old` changes nothing, MISSING removes it. When nothing changes, `node`
    itself is returned, even through `*` segments (where `update_path` rebuilds
    the containers).
    """
    parts = _split_stars(path)
    last = len(parts) - 1
    leaf = parts[last][0] if len(parts[last]) == 1 else None

    def update_at(node: Any, fn: Callable[[Any, list[Any]], Any], level: int, trail: list[Any]) -> Any:
        if level == last:
            if leaf is not None and type(node) is dict:
                # one key of an object: what update_path does, without its generality
                old = node.get(leaf, MISSING)
                new = fn(old, trail)
                if new is old:
                    return node
                copy = dict(node)
                if new is MISSING:
                    del copy[leaf]
                else:
                    copy[leaf] = new
                return copy
            return update_path(node, parts[level], lambda old: fn(old, trail), create=create)
        head = parts[level]
        container = get_path(node, head)
        changed: Any = None
        trail.extend(head)
        if isinstance(container, list):
            inline = leaf is not None and level + 1 == last
            for i, item in enumerate(container):
                trail.append(i)
                if inline and type(item) is dict:  # the common `messages.*.content`, without a call
                    old = item.get(leaf, MISSING)
                    new = fn(old, trail)
                    if new is old:
                        new = item
                    elif new is MISSING:
                        new = {k: v for k, v in item.items() if k != leaf}
                    else:
                        new = {**item, leaf: new}
                else:
                    new = update_at(item, fn, level + 1, trail)
                trail.pop()
                if changed is None:
                    if new is item:
                        continue
                    changed = container[:i]
                if new is not MISSING:
                    changed.append(new)
        elif isinstance(container, dict):
            items = list(container.items())
            for i, (key, item) in enumerate(items):
                if key == "*":  # a literal '*' key cannot be addressed by a concrete path: left alone
                    new = item
                else:
                    trail.append(key)
                    new = update_at(item, fn, level + 1, trail)
                    trail.pop()
                if changed is None:
                    if new is item:
                        continue
                    changed = dict(items[:i])
                if new is not MISSING:
                    changed[key] = new
        if head:
            del trail[-len(head) :]
        if changed is None:
            return node
        if not head:
            return changed
        return update_path(node, head, lambda _old: changed)

    def update(node: Any, fn: Callable[[Any, list[Any]], Any]) -> Any:
        return update_at(node, fn, 0, [])

    return update


def _writer(path: Path, *, create: bool = True) -> Callable[[Span, Any], Span]:
    """`write(span, value)`: the span with `value` at `path` (each match of `*`), or the
    same span when every place already holds an equal value."""

    def keep_or(value: Any) -> Callable[[Any], Any]:
        return lambda old: old if _same(old, value) else value

    if "*" not in path:

        def write(span: Span, value: Any) -> Span:
            return update_path(span, path, keep_or(value), create=create)

        return write

    update = _updater(path, create=create)

    def write_each(span: Span, value: Any) -> Span:
        return update(span, lambda old, _where: old if _same(old, value) else value)

    return write_each


# --- truncation ---------------------------------------------------------------------------------


def _split_marker(text: str) -> tuple[str, int]:
    """(kept text, characters already removed) of a string an earlier cut ended with a marker."""
    if text.endswith(_MARKER_TAIL):
        start = text.rfind(_MARKER_HEAD, max(0, len(text) - 40))
        if start >= 0 and _MARKER.fullmatch(text, start):
            return text[:start], int(text[start + len(_MARKER_HEAD) : -len(_MARKER_TAIL)])
    return text, 0


def truncate_text(text: str, max_length: int) -> str:
    """`text` cut to its first `max_length` characters plus `…[truncated N chars]`, or
    `text` itself when it is not longer than `max_length` (a marker it already ends
    with does not count)."""
    if len(text) <= max_length:
        return text
    kept, removed = _split_marker(text)
    if len(kept) <= max_length:
        return text
    return f"{kept[:max_length]}{_MARKER_HEAD}{removed + len(kept) - max_length}{_MARKER_TAIL}"


def _shorten(value: Any, max_length: int) -> Any:
    if isinstance(value, str):
        return truncate_text(value, max_length)
    if isinstance(value, list) and len(value) > max_length:
        return value[:max_length]
    return value


# --- step compilers -----------------------------------------------------------------------------


def _compile_redact_pii(spec: dict[str, Any], where: str) -> Step:
    from apps.routing.pii import compile_redactor

    return compile_redactor(spec, where=where)


def _compile_set(spec: dict[str, Any], where: str) -> Step:
    _check_keys(spec, ("path", "value", "from"), where)
    label = _required(spec, "path", where, "the field to write, such as 'metadata.team'")
    write = _writer(_target(label, f"{where}.path"))
    if "value" in spec and "from" in spec:
        raise ConfigError(f"{where}.from", "give either 'value' or 'from', not both")
    if "value" in spec:
        value = _json_copy(spec["value"], f"{where}.value")

        def set_value(span: Span, ctx: TransformContext, report: TransformReport) -> Span:
            out = write(span, value)
            if out is not span:
                report.changed.append(label)
            return out

        return set_value

    source = _required(spec, "from", where, "or 'value': a 'span.' or 'context.' path, or a JSON value")
    from_context, source_path = _source(source, f"{where}.from")

    def set_from(span: Span, ctx: TransformContext, report: TransformReport) -> Span:
        value = get_path(ctx.values if from_context else span, source_path)
        if value is MISSING:
            return span
        out = write(span, value)
        if out is not span:
            report.changed.append(label)
        return out

    return set_from


def _source(value: Any, where: str) -> tuple[bool, Path]:
    """`context.api_key.name` -> (True, ('api_key', 'name')); `span.model` -> (False, ('model',))."""
    path = parse_path(value, where=where)
    if path[0] not in ("span", "context") or len(path) < 2:
        raise ConfigError(
            where,
            f"'{value}' must start with 'span.' (a field of the span, e.g. 'span.model') or "
            f"'context.' (one of: {', '.join(CONTEXT_KEYS)}, e.g. 'context.api_key.name')",
        )
    if path[0] == "context" and path[1] not in CONTEXT_KEYS:
        raise ConfigError(where, f"'{value}': the context has {', '.join(CONTEXT_KEYS)}, not '{path[1]}'")
    return path[0] == "context", path[1:]


def _compile_move(spec: dict[str, Any], where: str) -> Step:
    _check_keys(spec, ("from", "to"), where)
    source_label = _required(spec, "from", where, "the field to move, such as 'metadata.customer'")
    target_label = _required(spec, "to", where, "the new place, such as 'metadata.tenant'")
    source = _target(source_label, f"{where}.from", wildcards=False)
    target = _target(target_label, f"{where}.to", wildcards=False)
    if source == target:
        raise ConfigError(f"{where}.to", f"is the same path as 'from' ('{target_label}')")

    def move(span: Span, ctx: TransformContext, report: TransformReport) -> Span:
        value = get_path(span, source)
        if value is MISSING:
            return span
        out = set_path(delete_path(span, source), target, value)
        if get_path(out, target) is not value:  # the target's parent is not an object: keep the span
            return span
        report.changed.append(source_label)
        report.changed.append(target_label)
        return out

    return move


def _compile_drop(spec: dict[str, Any], where: str) -> Step:
    _check_keys(spec, ("path",), where)
    label = _required(spec, "path", where, "the field to remove, such as 'request.messages.*.name'")
    path = _target(label, f"{where}.path")

    update = _updater(path) if "*" in path else None

    def remove(_old: Any, _trail: Any = None) -> Any:
        return MISSING

    def drop(span: Span, ctx: TransformContext, report: TransformReport) -> Span:
        out = update(span, remove) if update else update_path(span, path, remove)
        if out is not span:
            report.changed.append(label)
        return out

    return drop


def _compile_truncate(spec: dict[str, Any], where: str) -> Step:
    _check_keys(spec, ("path", "max_length"), where)
    label = _required(spec, "path", where, "the field to cut, such as 'request.messages.*.content'")
    path = _target(label, f"{where}.path")
    max_length = _size(
        spec, "max_length", where, minimum=0, hint="characters of a string or items of a list to keep"
    )
    update = _updater(path) if "*" in path else None
    last_run = _split_stars(path)[-1]

    def truncate(span: Span, ctx: TransformContext, report: TransformReport) -> Span:
        if update is None:
            value = get_path(span, path)
            new = _shorten(value, max_length)
            if new is value:
                return span
            report.truncated.append(label)
            return update_path(span, path, lambda _old: new)

        def shorten(value: Any, trail: list[Any]) -> Any:
            new = _shorten(value, max_length)
            if new is not value:
                report.truncated.append(".".join(map(str, (*trail, *last_run))))
            return new

        return update(span, shorten)

    return truncate


def _compile_limit_size(spec: dict[str, Any], where: str) -> Step:
    _check_keys(spec, ("max_bytes",), where)
    max_bytes = _size(
        spec, "max_bytes", where, minimum=MIN_LIMIT_BYTES, hint="the largest serialized span, in bytes"
    )

    def limit_size(span: Span, ctx: TransformContext, report: TransformReport) -> Span:
        try:
            size = len(orjson.dumps(span))
        except orjson.JSONEncodeError:
            return span  # not serializable as it is: the delivery reports it, not this step
        if size <= max_bytes:
            return span
        return _shrink(span, size, max_bytes, report)

    return limit_size


_SHRINK_PHASES = (("request", "response"), ("metadata", "attributes", "error"))


def _shrink(span: Span, size: int, max_bytes: int, report: TransformReport) -> Span:
    """Make `len(orjson.dumps(span)) <= max_bytes`, cutting as little as it can.

    1. Every string longer than LIMIT_KEEP_CHARS (64) plus a marker under
       `request` and `response` is a candidate. Largest first (by serialized
       bytes; ties in document order), each candidate is cut, with the
       truncation marker, just enough to remove the whole remaining excess, but
       never below LIMIT_KEEP_CHARS characters; then the next largest, until the
       span fits.
    2. If it does not fit yet, the same with the strings under `metadata`,
       `attributes` and `error`.
    3. If it still does not fit (many small values), `request.messages` items
       are removed from the middle outwards (the middle item, then alternately
       the one after and before the removed block), always keeping the first
       and last message, until it fits or only those two are left; the removed
       block is replaced by one marker message
       `{"role": "system", "content": "…[truncated N messages]"}` and
       `request.messages` is reported as truncated.
    4. If even that is not enough, the span is returned as small as the three
       phases made it, which can be over `max_bytes`.

    Every cut string's concrete path (`request.messages.3.content`) is added to
    `report.truncated`, as it was when it was cut.
    """
    for roots in _SHRINK_PHASES:
        candidates: list[tuple[int, int, Path, str]] = []
        for root in roots:
            for path, text in _long_strings(span.get(root), (root,)):
                candidates.append((len(orjson.dumps(text)), len(candidates), path, text))
        candidates.sort(key=lambda c: (-c[0], c[1]))
        for encoded, _order, path, text in candidates:
            excess = size - max_bytes
            if excess <= 0:
                break
            new = _cut_to_save(text, encoded, excess)
            saved = encoded - len(orjson.dumps(new))
            if saved <= 0:
                continue
            span = update_path(span, path, lambda _old, new=new: new)
            size -= saved
            report.truncated.append(".".join(path))
        if size <= max_bytes:
            return span
    return _drop_middle_messages(span, size, max_bytes, report)


def _long_strings(node: Any, prefix: Path) -> list[tuple[Path, str]]:
    """(concrete path, text) of every string under `node` long enough to be worth cutting,
    in document order."""
    shortest = LIMIT_KEEP_CHARS + 32
    if isinstance(node, str):
        return [(prefix, node)] if len(node) > shortest else []
    found: list[tuple[Path, str]] = []
    stack: list[tuple[Path, Iterator[tuple[str, Any]]]] = [(prefix, _children(node))]
    while stack:
        path, children = stack[-1]
        for key, value in children:
            if isinstance(value, str):
                if len(value) > shortest:
                    found.append(((*path, key), value))
            elif isinstance(value, dict | list):
                stack.append(((*path, key), _children(value)))
                break
        else:
            stack.pop()
    return found


def _children(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        # a literal '*' key cannot be addressed by a concrete path: left alone
        return ((key, value) for key, value in node.items() if key != "*")
    if isinstance(node, list):
        return ((str(i), value) for i, value in enumerate(node))
    return iter(())


def _cut_to_save(text: str, encoded: int, excess: int) -> str:
    """`text` cut so its serialized form is at least `excess` bytes shorter, keeping at
    least LIMIT_KEEP_CHARS characters (so it may save less)."""
    marker = len(f"{_MARKER_HEAD}{len(text)}{_MARKER_TAIL}".encode())
    budget = encoded - excess - marker  # serialized bytes the kept prefix may take, quotes included
    keep = max(LIMIT_KEEP_CHARS, int(len(text) * (budget - 2) / max(1, encoded - 2)))
    while keep > LIMIT_KEEP_CHARS:
        used = len(orjson.dumps(text[:keep]))
        if used <= budget:
            break
        keep = max(LIMIT_KEEP_CHARS, keep - (used - budget))  # each character is at least one byte
    return truncate_text(text, keep)


def _drop_middle_messages(span: Span, size: int, max_bytes: int, report: TransformReport) -> Span:
    request = span.get("request")
    messages = request.get("messages") if isinstance(request, dict) else None
    if not isinstance(messages, list) or len(messages) < 3:
        return span
    n = len(messages)
    costs = [len(orjson.dumps(message)) + 1 for message in messages]  # +1: the comma
    marker_cost = len(orjson.dumps(_messages_marker(n))) + 1
    lo = hi = n // 2  # the removed block is messages[lo:hi]
    removed = 0
    while size - removed + marker_cost > max_bytes:
        grew = False
        if hi < n - 1:
            removed += costs[hi]
            hi += 1
            grew = True
            if size - removed + marker_cost <= max_bytes:
                break
        if lo > 1:
            lo -= 1
            removed += costs[lo]
            grew = True
        if not grew:
            break
    if hi == lo:
        return span
    kept = [*messages[:lo], _messages_marker(hi - lo), *messages[hi:]]
    report.truncated.append("request.messages")
    return update_path(span, ("request", "messages"), lambda _old: kept)


def _messages_marker(count: int) -> dict[str, str]:
    return {"role": "system", "content": f"\u2026[truncated {count} messages]"}


def _compile_enrich(spec: dict[str, Any], where: str) -> Step:
    _check_keys(spec, ("metadata", "derived"), where)
    if "metadata" not in spec and "derived" not in spec:
        raise ConfigError(
            f"{where}.metadata",
            "an enrich step needs 'metadata' (an object merged into the span's metadata) and/or "
            f"'derived' (a list of: {', '.join(DERIVED_METRICS)})",
        )
    metadata: dict[str, Any] = {}
    if "metadata" in spec:
        metadata = spec["metadata"]
        if not isinstance(metadata, dict) or not metadata:
            raise ConfigError(f"{where}.metadata", "must be a non-empty object such as {'team': 'search'}")
        metadata = _json_copy(metadata, f"{where}.metadata")
    derived: tuple[str, ...] = ()
    if "derived" in spec:
        names = spec["derived"]
        if not isinstance(names, list) or not names:
            raise ConfigError(
                f"{where}.derived", f"must be a non-empty list of: {', '.join(DERIVED_METRICS)}"
            )
        for i, name in enumerate(names):
            if name not in DERIVED_METRICS:
                raise ConfigError(
                    f"{where}.derived[{i}]",
                    f"unknown derived metric {name!r}; known: {', '.join(DERIVED_METRICS)}",
                )
            if name in names[:i]:
                raise ConfigError(f"{where}.derived[{i}]", f"'{name}' is listed twice")
        derived = tuple(names)

    def enrich(span: Span, ctx: TransformContext, report: TransformReport) -> Span:
        out = span
        if metadata:
            current = span.get("metadata", MISSING)
            merged = _merge(current, metadata, "metadata", report.changed)
            if merged is not current:
                out = set_path(out, ("metadata",), merged)
        if derived:
            out = _fill_derived(out, derived, report)
        return out

    return enrich


def _merge(base: Any, patch: dict[str, Any], prefix: str, changed: list[str]) -> Any:
    """`patch` deep-merged into `base` (the patch wins), or `base` itself if nothing changed."""
    out: dict[str, Any] | None = None
    if not isinstance(base, dict):
        base = out = {}
    for key, value in patch.items():
        old = base.get(key, MISSING)
        if isinstance(value, dict):
            new = _merge(old, value, f"{prefix}.{key}", changed)
        else:
            new = old if _same(old, value) else value
            if new is not old:
                changed.append(f"{prefix}.{key}")
        if new is not old:
            if out is None:
                out = dict(base)
            out[key] = new
    return base if out is None else out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return value


def _fill_derived(span: Span, names: tuple[str, ...], report: TransformReport) -> Span:
    """Fill `metrics.<name>` for each name whose inputs exist; a value already there is kept.

    - tokens_per_second = completion_tokens * 1000 / metrics.latency_ms (as accounting computes it)
    - output_input_ratio = completion_tokens / prompt_tokens
    - cost_per_1k_tokens = metrics.estimated_cost * 1000 / total_tokens (or prompt + completion)
    Token counts are read from response.usage. A zero divisor skips the metric.
    """
    metrics = span.get("metrics")
    metrics = metrics if isinstance(metrics, dict) else {}
    response = span.get("response")
    usage = response.get("usage") if isinstance(response, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    prompt = _number(usage.get("prompt_tokens"))
    completion = _number(usage.get("completion_tokens"))
    added: dict[str, float] = {}
    for name in names:
        if metrics.get(name) is not None:
            continue
        value = None
        if name == "tokens_per_second":
            latency = _number(metrics.get("latency_ms"))
            if completion is not None and latency:
                value = completion * 1000 / latency
        elif name == "output_input_ratio":
            if completion is not None and prompt:
                value = completion / prompt
        else:
            cost = _number(metrics.get("estimated_cost"))
            total = _number(usage.get("total_tokens"))
            if not total and prompt is not None and completion is not None:
                total = prompt + completion
            if cost is not None and total:
                value = cost * 1000 / total
        if value is not None and math.isfinite(value):
            added[name] = value
    if not added:
        return span
    report.changed.extend(f"metrics.{name}" for name in added)
    return set_path(span, ("metrics",), {**metrics, **added})


def _compile_jmespath(spec: dict[str, Any], where: str) -> Step:
    _check_keys(spec, ("path", "expression", "set_null"), where)
    label = _required(spec, "path", where, "the field to write the result to, such as 'metadata.topic'")
    path = _target(label, f"{where}.path", wildcards=False)
    text = _required(spec, "expression", where, "a JMESPath expression over the span")
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{where}.expression", "must be a non-empty JMESPath expression string")
    if len(text) > MAX_EXPRESSION_LENGTH:
        raise ConfigError(f"{where}.expression", f"is longer than {MAX_EXPRESSION_LENGTH} characters")
    set_null = spec.get("set_null", False)
    if not isinstance(set_null, bool):
        raise ConfigError(f"{where}.set_null", f"must be true or false, not {set_null!r}")
    try:
        expression = jmespath.compile(text)
    except jmespath_errors.JMESPathError as error:
        message = " ".join(str(error).split())
        raise ConfigError(f"{where}.expression", f"is not a valid JMESPath expression: {message}") from None
    known = jmespath_functions.Functions.FUNCTION_TABLE
    uses_context = False
    nodes = [expression.parsed]
    while nodes:
        node = nodes.pop()
        if node.get("type") == "function_expression" and node.get("value") not in known:
            raise ConfigError(
                f"{where}.expression",
                f"unknown JMESPath function {node.get('value')}(); known: {', '.join(sorted(known))}",
            )
        if node.get("type") == "field" and node.get("value") == "context":
            uses_context = True
        nodes.extend(child for child in node.get("children", ()) if isinstance(child, dict))
    write = _writer(path)
    tree = expression.parsed
    errors = (jmespath_errors.JMESPathError, TypeError, ValueError)

    def evaluate(span: Span, ctx: TransformContext, report: TransformReport) -> Span:
        data = span
        if uses_context and "context" not in span:
            data = {**span, "context": ctx.values}
        try:
            result = _JMESPATH.visit(tree, data)
        except errors:
            return span  # e.g. length() of a number in this span: leave it unchanged
        if result is None and not set_null:
            return span
        out = write(span, result)
        if out is not span:
            report.changed.append(label)
        return out

    return evaluate


_COMPILERS: dict[str, Callable[[dict[str, Any], str], Step]] = {
    "redact_pii": _compile_redact_pii,
    "set": _compile_set,
    "rename": _compile_move,
    "move": _compile_move,
    "drop": _compile_drop,
    "truncate": _compile_truncate,
    "limit_size": _compile_limit_size,
    "enrich": _compile_enrich,
    "jmespath": _compile_jmespath,
}
