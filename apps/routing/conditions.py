"""Rule conditions compiled to plain closures once per config version.

`{"all": [...], "any": [...], "not": cond}` groups nest; a leaf is
`{"field": path, "operator": op, "value": v}`. Empty conditions match every span.

Operators: eq, neq, gt, gte, lt, lte, in, contains, regex, glob, exists.
- A missing field makes every operator false except `neq` (true) and
  `exists: false` (true).
- gt/gte/lt/lte compare numbers only (a string field never matches).
- contains: substring of a string, item of a list, key of an object.
- regex: searched anywhere in the string, RE2 syntax (linear time, so a user's
  pattern cannot stall a worker); glob: shell pattern over the whole string
  (`gpt-4*`, `claude-?-*`), case-sensitive.
Field aliases for the common cases: environment, tags.<k>, cost, latency_ms,
tokens, prompt_tokens, completion_tokens, user, session.
"""

from __future__ import annotations

import fnmatch
import operator
from collections.abc import Callable
from typing import Any

import re2

from apps.routing.errors import ConfigError
from apps.routing.paths import MISSING, compile_getter, parse_path

Predicate = Callable[[dict[str, Any]], bool]

OPERATORS = ("eq", "neq", "gt", "gte", "lt", "lte", "in", "contains", "regex", "glob", "exists")
ALIASES = {
    "environment": "metadata.environment",
    "cost": "metrics.estimated_cost",
    "latency_ms": "metrics.latency_ms",
    "tokens": "response.usage.total_tokens",
    "prompt_tokens": "response.usage.prompt_tokens",
    "completion_tokens": "response.usage.completion_tokens",
    "user": "user_id",
    "session": "session_id",
}
MAX_DEPTH = 8
MAX_CONDITIONS = 200
MAX_IN_VALUES = 1000
MAX_PATTERN = 1000


def _always(_span: dict[str, Any]) -> bool:
    return True


_NUMBERS = (int, float)  # exact types: a bool is not a number here


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(actual: Any, expected: Any) -> bool:
    if actual is MISSING:
        return False
    if isinstance(actual, bool) or isinstance(expected, bool):  # true is not 1
        return actual is expected
    return actual == expected


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _is_prefix_glob(pattern: str) -> bool:
    return pattern.endswith("*") and not any(c in pattern[:-1] for c in "*?[")


def _resolve(field: Any, where: str) -> tuple[str, ...]:
    if isinstance(field, str) and field.startswith("tags."):
        field = "metadata." + field
    elif isinstance(field, str):
        field = ALIASES.get(field, field)
    return parse_path(field, where=where, wildcards=False)


def _compile_regex(value: Any, where: str) -> Any:
    if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
        raise ConfigError(where, f"must be a regular expression of 1 to {MAX_PATTERN} characters")
    try:
        options = re2.Options()
        options.log_errors = False
        # Compiled over UTF-8 bytes: the same matches, without the str wrapper's
        # offset bookkeeping (three times slower per call).
        return re2.compile(value.encode(), options)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else ""
        reason = reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason)
        raise ConfigError(where, f"is not a valid regular expression: {reason}") from None


def _leaf(cond: dict[str, Any], where: str) -> Predicate:
    unknown = sorted(set(cond) - {"field", "operator", "value"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", "is not part of a condition (field, operator, value)")
    path = _resolve(cond.get("field"), f"{where}.field")
    op = cond.get("operator")
    if op not in OPERATORS:
        raise ConfigError(f"{where}.operator", f"unknown operator {op!r}; known: {', '.join(OPERATORS)}")
    vwhere = f"{where}.value"
    if "value" not in cond and op != "exists":
        raise ConfigError(vwhere, f"is required for operator {op}")
    value = cond.get("value", True)

    get = compile_getter(path)

    if op in ("eq", "neq"):
        if isinstance(value, (dict, list)):
            raise ConfigError(vwhere, f"must be a string, number, boolean or null for {op}")
        if isinstance(value, str) and len(path) == 1:  # the common case, `model` eq "gpt-4o": one lookup
            key = path[0]
            if op == "eq":
                return lambda span: span.get(key) == value
            return lambda span: span.get(key) != value
        if isinstance(value, str):  # nothing but an equal string is equal
            if op == "eq":
                return lambda span: get(span) == value
            return lambda span: get(span) != value
        if op == "eq":
            return lambda span: _equal(get(span), value)
        return lambda span: not _equal(get(span), value)
    if op in ("gt", "gte", "lt", "lte"):
        if not _is_number(value):
            raise ConfigError(vwhere, f"must be a number for {op}")
        compare = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le}[op]
        return lambda span: type(v := get(span)) in _NUMBERS and compare(v, value)
    if op == "in":
        if not isinstance(value, list) or not value or len(value) > MAX_IN_VALUES:
            raise ConfigError(vwhere, f"must be a list of 1 to {MAX_IN_VALUES} values for in")
        if any(isinstance(item, (dict, list)) for item in value):
            raise ConfigError(vwhere, "must hold strings, numbers, booleans or null")
        hashable = frozenset(value)
        return lambda span: (
            (v := get(span)) is not MISSING and not isinstance(v, (dict, list)) and v in hashable
        )
    if op == "contains":
        if isinstance(value, (dict, list)) or value is None:
            raise ConfigError(vwhere, "must be a string, number or boolean for contains")

        def contains(span: dict[str, Any]) -> bool:
            v = get(span)
            if isinstance(v, str):
                return isinstance(value, str) and value in v
            if isinstance(v, (list, dict)):
                return value in v
            return False

        return contains
    if op == "regex":
        pattern = _compile_regex(value, vwhere)
        return lambda span: type(v := get(span)) is str and pattern.search(_utf8(v)) is not None
    if op == "glob":
        if not isinstance(value, str) or not value or len(value) > MAX_PATTERN:
            raise ConfigError(vwhere, f"must be a pattern of 1 to {MAX_PATTERN} characters such as 'gpt-4*'")
        translated = fnmatch.translate(value)  # `(?s:...)\Z`; RE2 has no \Z, and fullmatch anchors anyway
        if _is_prefix_glob(value):  # `gpt-4*`: a prefix test, no regex needed
            prefix = value[:-1]
            return lambda span: isinstance(v := get(span), str) and v.startswith(prefix)
        pattern = _compile_regex(translated.removesuffix("\\Z"), vwhere)
        return lambda span: type(v := get(span)) is str and pattern.fullmatch(_utf8(v)) is not None
    if not isinstance(value, bool):
        raise ConfigError(vwhere, "must be true or false for exists")
    if value:
        return lambda span: get(span) not in (MISSING, None)
    return lambda span: get(span) in (MISSING, None)


def _all(predicates: tuple[Predicate, ...]) -> Predicate:
    """AND of predicates; short ones unrolled (a generator costs more than the tests)."""
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        a, b = predicates
        return lambda span: a(span) and b(span)
    if len(predicates) == 3:
        a, b, c = predicates
        return lambda span: a(span) and b(span) and c(span)
    return lambda span: all(p(span) for p in predicates)


def _any(predicates: tuple[Predicate, ...]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        a, b = predicates
        return lambda span: a(span) or b(span)
    if len(predicates) == 3:
        a, b, c = predicates
        return lambda span: a(span) or b(span) or c(span)
    return lambda span: any(p(span) for p in predicates)


class _Counter:
    def __init__(self) -> None:
        self.count = 0


def _node(cond: Any, where: str, depth: int, counter: _Counter) -> Predicate:
    if not isinstance(cond, dict):
        raise ConfigError(where, "must be an object: a condition or an all/any/not group")
    if depth > MAX_DEPTH:
        raise ConfigError(where, f"nests deeper than {MAX_DEPTH} levels")
    counter.count += 1
    if counter.count > MAX_CONDITIONS:
        raise ConfigError(where, f"a rule may have at most {MAX_CONDITIONS} conditions")
    if "field" in cond or "operator" in cond:
        return _leaf(cond, where)
    return _group(cond, where, depth, counter)


def _group(cond: dict[str, Any], where: str, depth: int, counter: _Counter) -> Predicate:
    unknown = sorted(set(cond) - {"all", "any", "not"})
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", "is not a condition group; use all, any or not")
    parts: list[Predicate] = []
    for key in ("all", "any"):
        if key not in cond:
            continue
        items = cond[key]
        if not isinstance(items, list):
            raise ConfigError(f"{where}.{key}", "must be a list of conditions")
        compiled = tuple(
            _node(item, f"{where}.{key}[{i}]", depth + 1, counter) for i, item in enumerate(items)
        )
        if not compiled:
            continue
        parts.append(_all(compiled) if key == "all" else _any(compiled))
    if "not" in cond:
        inner = _node(cond["not"], f"{where}.not", depth + 1, counter)
        parts.append(lambda span: not inner(span))
    return _all(tuple(parts)) if parts else _always


def compile_conditions(conditions: Any, *, where: str) -> Predicate:
    """A predicate over canonical span dicts; ConfigError names the bad spot."""
    if conditions is None:
        return _always
    if not isinstance(conditions, dict):
        raise ConfigError(where, "must be an object with all, any and/or not")
    return _group(conditions, where, 0, _Counter())
