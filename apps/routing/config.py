"""The routing document of a project, validated and compiled.

```
{"rules": [rule, ...],
 "default_destinations": [id, ...],      # for spans no rule matched
 "sampling": policy | null,              # project level, applies to every destination
 "transformations": [step, ...],         # project level, before the rules' own
 "destination_policies": {id: {"sampling": policy, "transformations": [step, ...]}}}

rule = {"id", "name", "description"?, "enabled", "priority",
        "conditions": {"all": [...], "any": [...], "not": cond},
        "actions": {"destinations": [id], "split": {id: percent}, "fallback": id,
                    "shadow": [id], "transformations": [step], "sampling": policy,
                    "metadata": {...}, "stop": false}}
```

Compilation happens once per version; the result is immutable and shared by
every batch routed with that version. Anything that cannot run raises
ConfigError naming the exact place.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from typing import Any

import orjson

from apps.routing.conditions import Predicate, compile_conditions
from apps.routing.errors import ConfigError
from apps.routing.sampling import Sampler, compile_sampler
from apps.routing.transforms import EMPTY, Pipeline, compile_pipeline

MAX_RULES = 200
MAX_DESTINATIONS_PER_RULE = 50
MAX_NAME = 200
MAX_METADATA_BYTES = 16_384

DOCUMENT_KEYS = ("rules", "default_destinations", "sampling", "transformations", "destination_policies")
RULE_KEYS = ("id", "name", "description", "enabled", "priority", "conditions", "actions")
ACTION_KEYS = (
    "destinations",
    "split",
    "fallback",
    "shadow",
    "transformations",
    "sampling",
    "metadata",
    "stop",
)


def empty_document() -> dict[str, Any]:
    return {
        "rules": [],
        "default_destinations": [],
        "sampling": None,
        "transformations": [],
        "destination_policies": {},
    }


@dataclass(frozen=True, slots=True)
class Split:
    """Percent split: one destination per trace, chosen by the trace id's hash."""

    destinations: tuple[str, ...]
    bounds: tuple[float, ...]  # cumulative upper bounds in [0, 1]

    def choose(self, u: float) -> str:
        for destination, bound in zip(self.destinations, self.bounds, strict=True):
            if u < bound:
                return destination
        return self.destinations[-1]


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    name: str
    priority: int
    position: int
    matches: Predicate
    destinations: tuple[str, ...]
    split: Split | None
    fallback: str | None
    shadow: tuple[str, ...]
    sampler: Sampler | None
    pipeline: Pipeline
    metadata: dict[str, Any] | None
    stop: bool


@dataclass(frozen=True, slots=True)
class DestinationPolicy:
    sampler: Sampler | None = None
    pipeline: Pipeline = EMPTY


NO_POLICY = DestinationPolicy()


@dataclass(frozen=True)
class CompiledConfig:
    version: int
    rules: tuple[Rule, ...]  # enabled rules in evaluation order
    default_destinations: tuple[str, ...]
    sampler: Sampler | None
    pipeline: Pipeline
    policies: dict[str, DestinationPolicy] = field(default_factory=dict)
    # (rule id, destination id) -> the sampling levels that apply; filled by the router.
    sampler_cache: dict[tuple[str | None, str], tuple[Sampler, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def uses_trace_facts(self) -> bool:
        """Whether sampling looks at errors, latency or cost (so earlier batches of a trace matter)."""
        samplers = [
            self.sampler,
            *(r.sampler for r in self.rules),
            *(p.sampler for p in self.policies.values()),
        ]
        return any(s is not None and s.uses_facts for s in samplers)

    def policy(self, destination_id: str) -> DestinationPolicy:
        return self.policies.get(destination_id, NO_POLICY)

    @functools.cached_property
    def rules_by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}


class _Ids:
    """Checks destination ids against the project's own."""

    def __init__(self, known: set[str] | None) -> None:
        self.known = known

    def one(self, value: Any, where: str) -> str:
        try:
            normalized = str(uuid.UUID(str(value))) if isinstance(value, str) else None
        except ValueError:
            normalized = None
        if normalized is None:
            raise ConfigError(where, f"{value!r} is not a destination id (a UUID string)")
        if self.known is not None and normalized not in self.known:
            raise ConfigError(where, f"no destination {normalized} in this project")
        return normalized

    def many(self, value: Any, where: str, *, limit: int = MAX_DESTINATIONS_PER_RULE) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or len(value) > limit:
            raise ConfigError(where, f"must be a list of at most {limit} destination ids")
        ids = [self.one(item, f"{where}[{i}]") for i, item in enumerate(value)]
        return tuple(dict.fromkeys(ids))


def _check_keys(obj: dict[str, Any], allowed: tuple[str, ...], where: str, what: str) -> None:
    unknown = sorted(set(obj) - set(allowed))
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"{prefix}{unknown[0]}", f"is not a {what} setting; known: {', '.join(allowed)}")


def _split(value: Any, where: str, ids: _Ids) -> Split | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(where, "must be an object of destination id to percent")
    destinations, bounds, total = [], [], 0.0
    for key, percent in value.items():
        destination = ids.one(key, f"{where}.{key}")
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 < percent <= 100:
            raise ConfigError(f"{where}.{key}", "must be a percent greater than 0 and at most 100")
        total += percent
        destinations.append(destination)
        bounds.append(total / 100)
    if abs(total - 100) > 1e-9:
        raise ConfigError(where, f"percents must sum to 100, not {total:g}")
    bounds[-1] = 1.0
    return Split(tuple(destinations), tuple(bounds))


def _metadata(value: Any, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ConfigError(where, "must be an object")
    if len(orjson.dumps(value)) > MAX_METADATA_BYTES:
        raise ConfigError(where, f"is larger than {MAX_METADATA_BYTES} bytes")
    return value or None


def _rule(raw: Any, position: int, ids: _Ids) -> Rule:
    where = f"rules[{position}]"
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be an object")
    _check_keys(raw, RULE_KEYS, where, "rule")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise ConfigError(f"{where}.name", f"must be a non-empty string of at most {MAX_NAME} characters")
    description = raw.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"{where}.description", "must be a string")
    enabled = raw.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigError(f"{where}.enabled", "must be true or false")
    priority = raw.get("priority", 100)
    if isinstance(priority, bool) or not isinstance(priority, int) or not -1_000_000 <= priority <= 1_000_000:
        raise ConfigError(f"{where}.priority", "must be an integer (lower runs first)")
    matches = compile_conditions(raw.get("conditions"), where=f"{where}.conditions")
    actions = raw.get("actions")
    awhere = f"{where}.actions"
    if not isinstance(actions, dict):
        raise ConfigError(awhere, "must be an object")
    _check_keys(actions, ACTION_KEYS, awhere, "rule action")
    destinations = ids.many(actions.get("destinations"), f"{awhere}.destinations")
    split = _split(actions.get("split"), f"{awhere}.split", ids)
    fallback = (
        ids.one(actions["fallback"], f"{awhere}.fallback") if actions.get("fallback") is not None else None
    )
    shadow = ids.many(actions.get("shadow"), f"{awhere}.shadow")
    stop = actions.get("stop", False)
    if not isinstance(stop, bool):
        raise ConfigError(f"{awhere}.stop", "must be true or false")
    if not (destinations or split or shadow or stop):
        raise ConfigError(awhere, "must send somewhere (destinations, split or shadow) or stop evaluation")
    if fallback is not None and fallback in destinations + shadow + (split.destinations if split else ()):
        raise ConfigError(f"{awhere}.fallback", "must differ from the destinations it stands in for")
    return Rule(
        id=str(raw.get("id") or ""),
        name=name,
        priority=priority,
        position=position,
        matches=matches,
        destinations=destinations,
        split=split,
        fallback=fallback,
        shadow=shadow,
        sampler=compile_sampler(actions.get("sampling"), where=f"{awhere}.sampling"),
        pipeline=compile_pipeline(actions.get("transformations") or [], where=f"{awhere}.transformations"),
        metadata=_metadata(actions.get("metadata"), f"{awhere}.metadata"),
        stop=stop,
    )


def _policies(raw: Any, ids: _Ids) -> dict[str, DestinationPolicy]:
    where = "destination_policies"
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(where, "must be an object of destination id to policy")
    policies = {}
    for key, value in raw.items():
        pwhere = f"{where}.{key}"
        destination = ids.one(key, pwhere)
        if not isinstance(value, dict):
            raise ConfigError(pwhere, "must be an object with sampling and/or transformations")
        _check_keys(value, ("sampling", "transformations"), pwhere, "destination policy")
        policies[destination] = DestinationPolicy(
            sampler=compile_sampler(value.get("sampling"), where=f"{pwhere}.sampling"),
            pipeline=compile_pipeline(value.get("transformations") or [], where=f"{pwhere}.transformations"),
        )
    return policies


def normalize_document(document: Any) -> dict[str, Any]:
    """The document with every key present and every rule carrying an id."""
    if not isinstance(document, dict):
        raise ConfigError("", "the routing configuration must be a JSON object")
    _check_keys(document, DOCUMENT_KEYS, "", "routing configuration")
    normalized = {**empty_document(), **{k: v for k, v in document.items() if v is not None}}
    if not isinstance(normalized["rules"], list):
        raise ConfigError("rules", "must be a list of rules")
    if len(normalized["rules"]) > MAX_RULES:
        raise ConfigError("rules", f"a project may have at most {MAX_RULES} rules")
    rules, seen = [], set()
    for i, rule in enumerate(normalized["rules"]):
        if isinstance(rule, dict):
            rule_id = rule.get("id") or str(uuid.uuid4())
            try:
                rule_id = str(uuid.UUID(str(rule_id)))
            except ValueError:
                raise ConfigError(f"rules[{i}].id", f"{rule_id!r} is not a UUID") from None
            if rule_id in seen:
                raise ConfigError(f"rules[{i}].id", f"duplicate rule id {rule_id}")
            seen.add(rule_id)
            rule = {"id": rule_id, **{k: v for k, v in rule.items() if k != "id"}}
        rules.append(rule)
    normalized["rules"] = rules
    return normalized


def compile_config(
    document: Any, *, version: int = 0, destination_ids: set[str] | None = None
) -> CompiledConfig:
    """Validate and compile a routing document. With `destination_ids`, every
    destination it names must be one of them (the project's own)."""
    document = normalize_document(document)
    ids = _Ids(destination_ids)
    rules = [_rule(raw, i, ids) for i, raw in enumerate(document["rules"])]
    ordered = tuple(
        sorted(
            (r for r, raw in zip(rules, document["rules"], strict=True) if raw.get("enabled", True)),
            key=lambda r: (r.priority, r.position),
        )
    )
    return CompiledConfig(
        version=version,
        rules=ordered,
        default_destinations=ids.many(document["default_destinations"], "default_destinations"),
        sampler=compile_sampler(document["sampling"], where="sampling"),
        pipeline=compile_pipeline(document["transformations"] or [], where="transformations"),
        policies=_policies(document["destination_policies"], ids),
    )


def referenced_destinations(document: dict[str, Any]) -> set[str]:
    """Every destination id a (valid, normalized) document names."""
    found: set[str] = set(document.get("default_destinations") or [])
    found.update((document.get("destination_policies") or {}).keys())
    for rule in document.get("rules") or []:
        actions = rule.get("actions") or {}
        found.update(actions.get("destinations") or [])
        found.update((actions.get("split") or {}).keys())
        found.update(actions.get("shadow") or [])
        if actions.get("fallback"):
            found.add(actions["fallback"])
    return {str(uuid.UUID(str(value))) for value in found}
