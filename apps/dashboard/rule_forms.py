"""The visual rule builder: a routing rule as form rows, and back.

The builder edits the common shape of a rule (one all/any list of conditions,
destinations, split, fallback, shadow, sampling, metadata, PII redaction, stop).
What it cannot show (a `not` group, nested groups, other transformations, a
description) travels in a hidden `preserved` field and is put back on save.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from django.http import QueryDict

from apps.routing.conditions import OPERATORS
from apps.routing.pii import MODES

# (value, label) of the field select; "tags" and "other" take a key/path input.
FIELDS = (
    ("model", "model"),
    ("provider", "provider"),
    ("kind", "kind"),
    ("environment", "environment"),
    ("tags", "tags.<key>"),
    ("cost", "cost"),
    ("latency_ms", "latency_ms"),
    ("tokens", "tokens"),
    ("error.type", "error.type"),
    ("user", "user"),
    ("session", "session"),
    ("other", "other path"),
)
COMMON_FIELDS = frozenset(value for value, _ in FIELDS) - {"tags", "other"}
NUMERIC_FIELDS = frozenset({"cost", "latency_ms", "tokens"})
NUMERIC_OPERATORS = frozenset({"gt", "gte", "lt", "lte"})
OPERATOR_LABELS = {
    "eq": "equals",
    "neq": "does not equal",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "is one of (comma-separated)",
    "contains": "contains",
    "regex": "matches regex",
    "glob": "matches glob",
    "exists": "exists (true/false)",
}
OPERATOR_CHOICES = tuple((op, OPERATOR_LABELS[op]) for op in OPERATORS)
PII_MODES = MODES
_INTEGER = re.compile(r"[+-]?\d+")


def parse_number(raw: str) -> int | float:
    """A JSON number from text; ValueError when it is not one."""
    text = raw.strip()
    if _INTEGER.fullmatch(text):
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(text)
    return value


def _text(value: Any) -> str:
    """A JSON scalar as the builder shows it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) >= 1e-4 or value == 0 else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _percent(rate: Any) -> str:
    return f"{round(rate * 100, 6):g}" if isinstance(rate, (int, float)) else ""


def _json_or_text(raw: str) -> Any:
    """A metadata value: JSON when it reads as JSON (5, true, {...}), else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


@dataclass
class Row:
    """One form row of a repeated group (conditions, split, metadata)."""

    values: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)
    uid: str = field(default_factory=lambda: uuid.uuid4().hex[:8])  # for label/input ids

    def get(self, key: str) -> str:
        return self.values.get(key, "")


@dataclass
class Builder:
    name: str = ""
    enabled: bool = True
    priority: str = "100"
    match: str = "all"
    conditions: list[Row] = field(default_factory=list)
    destinations: list[str] = field(default_factory=list)
    split: list[Row] = field(default_factory=list)
    fallback: str = ""
    shadow: list[str] = field(default_factory=list)
    sampling_rate: str = ""
    keep_errors: bool = True
    latency_threshold_ms: str = ""
    cost_threshold: str = ""
    metadata: list[Row] = field(default_factory=list)
    pii: bool = False
    pii_mode: str = "mask"
    stop: bool = False
    preserved: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # conditions.<match>[i] is the row at position _condition_rows[i]
    _condition_rows: list[int] = field(default_factory=list)

    # --- from a stored rule -------------------------------------------------------------------

    @classmethod
    def new(cls) -> Builder:
        return cls(conditions=[Row({"field": "model", "operator": "eq", "value": ""})])

    @classmethod
    def from_rule(cls, rule: dict[str, Any]) -> Builder:
        b = cls(
            name=str(rule.get("name") or ""),
            enabled=rule.get("enabled", True) is not False,
            priority=_text(rule.get("priority", 100)),
        )
        preserved: dict[str, Any] = {}
        if rule.get("description") is not None:
            preserved["description"] = rule["description"]
        conditions = rule.get("conditions") or {}
        if "not" in conditions:
            preserved["not"] = conditions["not"]
        all_, any_ = conditions.get("all") or [], conditions.get("any") or []
        b.match = "any" if any_ and not all_ else "all"
        shown, other = (any_, all_) if b.match == "any" else (all_, any_)
        if other:
            preserved["other_group"] = other
        nested = []
        for cond in shown:
            if isinstance(cond, dict) and isinstance(cond.get("field"), str) and "operator" in cond:
                b.conditions.append(_condition_row(cond))
            else:
                nested.append(cond)
        if nested:
            preserved["groups"] = nested

        actions = rule.get("actions") or {}
        b.destinations = [str(d) for d in actions.get("destinations") or []]
        b.split = [
            Row({"destination": str(d), "percent": _text(p)}) for d, p in (actions.get("split") or {}).items()
        ]
        b.fallback = str(actions.get("fallback") or "")
        b.shadow = [str(d) for d in actions.get("shadow") or []]
        sampling = actions.get("sampling")
        if isinstance(sampling, dict):
            b.sampling_rate = _percent(sampling.get("rate", 1.0))
            b.keep_errors = sampling.get("keep_errors", True) is not False
            b.latency_threshold_ms = (
                _text(sampling["latency_threshold_ms"])
                if sampling.get("latency_threshold_ms") is not None
                else ""
            )
            b.cost_threshold = (
                _text(sampling["cost_threshold"]) if sampling.get("cost_threshold") is not None else ""
            )
        b.metadata = [
            Row({"key": str(k), "value": _text(v)}) for k, v in (actions.get("metadata") or {}).items()
        ]
        steps = list(actions.get("transformations") or [])
        for i, step in enumerate(steps):
            if isinstance(step, dict) and step.get("type") == "redact_pii":
                b.pii = True
                b.pii_mode = str(step.get("mode", "mask"))
                preserved["redact_at"] = i
                extra = {k: v for k, v in step.items() if k not in ("type", "mode")}
                if extra:
                    preserved["redact_extra"] = extra
                del steps[i]
                break
        if steps:
            preserved["transformations"] = steps
        b.stop = actions.get("stop") is True
        b.preserved = preserved
        return b

    # --- from the submitted form --------------------------------------------------------------

    @classmethod
    def from_post(cls, data: QueryDict) -> Builder:
        b = cls(
            name=data.get("name", "").strip(),
            enabled=data.get("enabled") == "on",
            priority=data.get("priority", "").strip(),
            match="any" if data.get("match") == "any" else "all",
            destinations=data.getlist("destinations"),
            fallback=data.get("fallback", ""),
            shadow=data.getlist("shadow"),
            sampling_rate=data.get("sampling_rate", "").strip(),
            keep_errors=data.get("keep_errors") == "on",
            latency_threshold_ms=data.get("latency_threshold_ms", "").strip(),
            cost_threshold=data.get("cost_threshold", "").strip(),
            pii=data.get("pii") == "on",
            pii_mode=data.get("pii_mode", "mask"),
            stop=data.get("stop") == "on",
        )
        for f, key, op, value in zip(
            data.getlist("cond_field"),
            data.getlist("cond_key"),
            data.getlist("cond_operator"),
            data.getlist("cond_value"),
            strict=False,
        ):
            b.conditions.append(Row({"field": f, "key": key.strip(), "operator": op, "value": value.strip()}))
        for destination, percent in zip(
            data.getlist("split_destination"), data.getlist("split_percent"), strict=False
        ):
            b.split.append(Row({"destination": destination, "percent": percent.strip()}))
        for key, value in zip(data.getlist("meta_key"), data.getlist("meta_value"), strict=False):
            b.metadata.append(Row({"key": key.strip(), "value": value.strip()}))
        try:
            preserved = json.loads(data.get("preserved") or "{}")
        except ValueError:
            preserved = {}
        b.preserved = preserved if isinstance(preserved, dict) else {}
        return b

    @property
    def preserved_json(self) -> str:
        return json.dumps(self.preserved)

    @property
    def preserved_parts(self) -> list[str]:
        """What the rule holds beyond the builder, in words."""
        labels = {
            "description": "a description",
            "not": "a “not” condition group",
            "other_group": f"“{'all' if self.match == 'any' else 'any'}” conditions",
            "groups": "nested condition groups",
            "transformations": "other transformations",
            "redact_extra": "PII redaction settings",
        }
        return [label for key, label in labels.items() if key in self.preserved]

    # --- to a rule ----------------------------------------------------------------------------

    def to_rule(self) -> dict[str, Any] | None:
        """The rule JSON, or None with `errors` (and row errors) filled."""
        rule: dict[str, Any] = {"name": self.name, "enabled": self.enabled}
        if "description" in self.preserved:
            rule["description"] = self.preserved["description"]
        try:
            rule["priority"] = int(self.priority)
        except ValueError:
            self.errors["priority"] = "Enter a whole number (lower runs first)."
        rule["conditions"] = self._conditions()
        rule["actions"] = self._actions()
        if self.has_errors:
            return None
        return rule

    @property
    def has_errors(self) -> bool:
        rows = (*self.conditions, *self.split, *self.metadata)
        return bool(self.errors) or any(row.errors for row in rows)

    def _conditions(self) -> dict[str, Any]:
        items: list[Any] = []
        self._condition_rows = []
        for position, row in enumerate(self.conditions):
            cond = _condition(row)
            if cond is not None:
                items.append(cond)
                self._condition_rows.append(position)
        items.extend(self.preserved.get("groups") or [])
        conditions: dict[str, Any] = {}
        if items:
            conditions[self.match] = items
        if self.preserved.get("other_group"):
            conditions["any" if self.match == "all" else "all"] = self.preserved["other_group"]
        if "not" in self.preserved:
            conditions["not"] = self.preserved["not"]
        return conditions

    def _actions(self) -> dict[str, Any]:
        actions: dict[str, Any] = {}
        if self.destinations:
            actions["destinations"] = list(dict.fromkeys(self.destinations))
        split: dict[str, Any] = {}
        for row in self.split:
            if not row.get("destination") and not row.get("percent"):
                continue
            if not row.get("destination"):
                row.errors["destination"] = "Choose a destination."
            elif row.get("destination") in split:
                row.errors["destination"] = "This destination is already in the split."
            try:
                percent = parse_number(row.get("percent"))
            except ValueError:
                row.errors["percent"] = "Enter a percent, such as 90."
                continue
            if row.get("destination"):
                split[row.get("destination")] = percent
        if split:
            actions["split"] = split
        if self.fallback:
            actions["fallback"] = self.fallback
        if self.shadow:
            actions["shadow"] = list(dict.fromkeys(self.shadow))
        sampling = self._sampling()
        if sampling is not None:
            actions["sampling"] = sampling
        metadata: dict[str, Any] = {}
        for row in self.metadata:
            if not row.get("key") and not row.get("value"):
                continue
            if not row.get("key"):
                row.errors["key"] = "Enter a key."
            else:
                metadata[row.get("key")] = _json_or_text(row.get("value"))
        if metadata:
            actions["metadata"] = metadata
        steps = list(self.preserved.get("transformations") or [])
        if self.pii:
            step = {"type": "redact_pii", **(self.preserved.get("redact_extra") or {}), "mode": self.pii_mode}
            at = self.preserved.get("redact_at", 0)
            steps.insert(min(at if isinstance(at, int) else 0, len(steps)), step)
        if steps:
            actions["transformations"] = steps
        if self.stop:
            actions["stop"] = True
        return actions

    def _sampling(self) -> dict[str, Any] | None:
        if not (self.sampling_rate or self.latency_threshold_ms or self.cost_threshold):
            return None
        policy: dict[str, Any] = {"rate": 1.0}
        if self.sampling_rate:
            try:
                percent = parse_number(self.sampling_rate)
            except ValueError:
                percent = -1
            if not 0.1 <= percent <= 100:
                self.errors["sampling_rate"] = "Enter a percent from 0.1 to 100."
            else:
                policy["rate"] = round(percent / 100, 8)
        policy["keep_errors"] = self.keep_errors
        for key in ("latency_threshold_ms", "cost_threshold"):
            raw = getattr(self, key)
            if raw:
                try:
                    policy[key] = parse_number(raw)
                except ValueError:
                    self.errors[key] = "Enter a number."
        return policy

    # --- errors of the service, back on their fields ------------------------------------------

    def add_config_error(self, path: str, message: str) -> None:
        """Put a ConfigError of `rule_save` (a path inside the rule) next to its field."""
        if path in ("name", "priority", "enabled"):
            self.errors[path] = message
            return
        found = re.match(r"conditions\.(all|any)\[(\d+)\](?:\.(field|operator|value))?", path)
        if found and found.group(1) == self.match and int(found.group(2)) < len(self._condition_rows):
            row = self.conditions[self._condition_rows[int(found.group(2))]]
            part = found.group(3) or "value"
            row.errors[part if part != "field" else "key"] = message
            return
        if path.startswith("conditions"):
            self.errors["conditions"] = f"{path}: {message}"
            return
        if path.startswith("actions.split."):
            destination = path.removeprefix("actions.split.")
            for row in self.split:
                if row.get("destination") == destination:
                    row.errors["percent"] = message
                    return
        simple = {
            "actions.destinations": "destinations",
            "actions.split": "split",
            "actions.fallback": "fallback",
            "actions.shadow": "shadow",
            "actions.metadata": "metadata",
            "actions.stop": "stop",
            "actions.sampling.rate": "sampling_rate",
            "actions.sampling.latency_threshold_ms": "latency_threshold_ms",
            "actions.sampling.cost_threshold": "cost_threshold",
            "actions.sampling": "sampling_rate",
        }
        for prefix, key in simple.items():
            if path == prefix or path.startswith(prefix + "[") or path.startswith(prefix + "."):
                self.errors[key] = message
                return
        if path.startswith("actions.transformations"):
            at = re.match(r"actions\.transformations\[(\d+)\]", path)
            if self.pii and at and int(at.group(1)) == self.preserved.get("redact_at", 0):
                self.errors["pii"] = message
            else:
                self.errors["actions"] = f"{path}: {message} (change it in the JSON view)"
            return
        if path == "actions":
            self.errors["actions"] = message
            return
        self.errors["rule"] = f"{path}: {message}" if path and path != "rule" else message


def _condition_row(cond: dict[str, Any]) -> Row:
    path = cond["field"]
    value = cond.get("value", True)
    shown = ", ".join(_text(v) for v in value) if isinstance(value, list) else _text(value)
    if path in COMMON_FIELDS:
        values = {"field": path, "key": ""}
    elif path.startswith("tags."):
        values = {"field": "tags", "key": path.removeprefix("tags.")}
    else:
        values = {"field": "other", "key": path}
    return Row({**values, "operator": str(cond.get("operator", "eq")), "value": shown})


def _scalar(kind: str, raw: str) -> Any:
    if kind in NUMERIC_FIELDS:
        try:
            return parse_number(raw)
        except ValueError:
            return raw
    if kind == "other":
        try:
            value = json.loads(raw)
        except ValueError:
            return raw
        return value if not isinstance(value, (dict, list)) else raw
    return raw


def _condition(row: Row) -> dict[str, Any] | None:
    """The condition of a row (None for a blank row); row errors for what cannot be read."""
    kind, op, raw = row.get("field"), row.get("operator"), row.get("value")
    if not raw and not row.get("key") and op != "exists":
        return None
    if kind == "tags" or kind == "other":
        if not row.get("key"):
            row.errors["key"] = "Enter the tag key." if kind == "tags" else "Enter the field path."
            return None
        path = f"tags.{row.get('key')}" if kind == "tags" else row.get("key")
    elif kind in COMMON_FIELDS:
        path = kind
    else:
        row.errors["key"] = "Choose a field."
        return None
    if op not in OPERATORS:
        row.errors["operator"] = "Choose an operator."
        return None
    if op == "exists":
        lowered = raw.lower()
        if lowered not in ("", "true", "false"):
            row.errors["value"] = "Enter true (the field is present) or false (it is missing)."
            return None
        value: Any = lowered != "false"
    elif op in NUMERIC_OPERATORS:
        try:
            value = parse_number(raw)
        except ValueError:
            row.errors["value"] = f"Enter a number to compare with ({op})."
            return None
    elif op == "in":
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if not items:
            row.errors["value"] = "Enter one or more values separated by commas."
            return None
        value = [_scalar(kind, item) for item in items]
    else:
        value = _scalar(kind, raw)
    return {"field": path, "operator": op, "value": value}


# --- one-line summaries for the rule list -----------------------------------------------------

_SYMBOLS = {
    "eq": "=",
    "neq": "≠",
    "gt": ">",
    "gte": "≥",
    "lt": "<",
    "lte": "≤",
    "in": "in",
    "contains": "contains",
    "regex": "~",
    "glob": "matches",
}


def _shown_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_shown_value(item) for item in value) + "]"
    if isinstance(value, str):
        return f"“{value}”"
    return _text(value)


def _summary_node(cond: Any) -> str:
    if not isinstance(cond, dict):
        return "?"
    if "field" in cond or "operator" in cond:
        path, op = cond.get("field"), cond.get("operator")
        if op == "exists":
            return f"{path} {'is missing' if cond.get('value') is False else 'exists'}"
        return f"{path} {_SYMBOLS.get(op, op)} {_shown_value(cond.get('value'))}"
    parts = _summary_parts(cond)
    return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"


def _summary_parts(group: dict[str, Any]) -> list[str]:
    parts = []
    if group.get("all"):
        parts.extend(_summary_node(c) for c in group["all"])
    if group.get("any"):
        items = [_summary_node(c) for c in group["any"]]
        parts.append(items[0] if len(items) == 1 else "(" + " or ".join(items) + ")")
    if "not" in group:
        parts.append(f"not {_summary_node(group['not'])}")
    return parts


def conditions_summary(conditions: Any) -> str:
    """`model matches “gpt-4*” and cost > 0.01`; “every span” when there are none."""
    if not isinstance(conditions, dict):
        return "every span"
    parts = _summary_parts(conditions)
    if not parts:
        return "every span"
    if list(conditions) == ["any"] and len(conditions["any"]) > 1:
        return " or ".join(_summary_node(c) for c in conditions["any"])
    return " and ".join(parts)


def actions_summary(actions: Any, names: dict[str, str]) -> str:
    """`→ Langfuse; split A 90 % / B 10 %; sample 10 %; stop` with destination names."""
    if not isinstance(actions, dict):
        return ""

    def name(destination_id: Any) -> str:
        return names.get(str(destination_id), "unknown destination")

    parts = []
    if actions.get("destinations"):
        parts.append("→ " + ", ".join(name(d) for d in actions["destinations"]))
    if actions.get("split"):
        parts.append("split " + " / ".join(f"{name(d)} {_text(p)} %" for d, p in actions["split"].items()))
    if actions.get("fallback"):
        parts.append(f"fallback {name(actions['fallback'])}")
    if actions.get("shadow"):
        parts.append("shadow " + ", ".join(name(d) for d in actions["shadow"]))
    sampling = actions.get("sampling")
    if isinstance(sampling, dict):
        parts.append(f"sample {_percent(sampling.get('rate', 1.0))} %")
    steps = actions.get("transformations") or []
    redact = [s for s in steps if isinstance(s, dict) and s.get("type") == "redact_pii"]
    if redact:
        parts.append(f"redact PII ({redact[0].get('mode', 'mask')})")
    if len(steps) > len(redact):
        others = len(steps) - len(redact)
        parts.append(f"{others} transformation{'s' if others > 1 else ''}")
    if actions.get("metadata"):
        parts.append("metadata " + ", ".join(str(k) for k in actions["metadata"]))
    if actions.get("stop"):
        parts.append("stop")
    return "; ".join(parts)
