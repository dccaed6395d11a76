"""Saving routing configurations as versions, and loading the live one."""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jsonpatch
from django.conf import settings
from django.db import transaction

from apps.accounts.models import Project
from apps.audit.services import Actor, actor_fields, audit_record
from apps.core import crypto
from apps.core.errors import ApiError
from apps.destinations.models import Destination
from apps.keys.models import ApiKey
from apps.routing.config import (
    CompiledConfig,
    compile_config,
    empty_document,
    normalize_document,
    referenced_destinations,
)
from apps.routing.context import TransformContext
from apps.routing.errors import ConfigError
from apps.routing.models import ProjectRouting, RoutingConfigVersion

_EMPTY = compile_config(empty_document())


def _destination_ids(project_id: uuid.UUID) -> set[str]:
    return {str(pk) for pk in Destination.objects.for_project(project_id).values_list("id", flat=True)}


def _state(project_id: uuid.UUID, *, lock: bool) -> ProjectRouting:
    """The project's routing row, made on first use (with a fresh hash key)."""
    queryset = ProjectRouting.objects.select_for_update() if lock else ProjectRouting.objects
    state = queryset.filter(project_id=project_id).first()
    if state is None:
        state, _ = ProjectRouting.objects.get_or_create(
            project_id=project_id,
            defaults={"hash_key_encrypted": crypto.encrypt(secrets.token_urlsafe(32))},
        )
        if lock:
            state = ProjectRouting.objects.select_for_update().get(pk=state.pk)
    return state


def active_version(project_id: uuid.UUID) -> RoutingConfigVersion | None:
    state = ProjectRouting.objects.filter(project_id=project_id).select_related("active_version").first()
    return state.active_version if state else None


def active_document(project_id: uuid.UUID) -> tuple[int, dict[str, Any]]:
    """(version number, document); version 0 and an empty document before any change."""
    version = active_version(project_id)
    return (version.number, version.document) if version else (0, empty_document())


def config_save(
    *,
    project_id: uuid.UUID,
    document: Any,
    actor: Actor,
    summary: str,
    base_version: int | None = None,
) -> RoutingConfigVersion:
    """Validate `document` and make it the live version. With `base_version`,
    refuse (409) if someone saved another version since the caller read it."""
    return _save(
        project_id=project_id,
        document=document,
        actor=actor,
        summary=summary,
        base_version=base_version,
        action="routing.config_saved",
    )


def _save(
    *,
    project_id: uuid.UUID,
    document: Any,
    actor: Actor,
    summary: str,
    base_version: int | None,
    action: str,
) -> RoutingConfigVersion:
    document = normalize_document(document)
    compile_config(document, destination_ids=_destination_ids(project_id))
    with transaction.atomic():
        state = _state(project_id, lock=True)
        current = state.active_version
        number = current.number if current else 0
        if base_version is not None and base_version != number:
            raise ApiError(
                status_code=409,
                code="version_conflict",
                message=f"The routing configuration is at version {number}, not {base_version}; "
                "reload it and apply the change again.",
                details={"version": number},
            )
        previous = current.document if current else empty_document()
        last = RoutingConfigVersion.objects.for_project(project_id).order_by("-number").first()
        version = RoutingConfigVersion.objects.create(
            project_id=project_id,
            number=(last.number if last else 0) + 1,
            document=document,
            summary=summary[:500],
            changes=jsonpatch.make_patch(previous, document).patch,
            created_by_id=actor.user_id,
            created_by_key_id=actor.key_id,
        )
        state.active_version = version
        state.save(update_fields=["active_version", "updated_at"])
        audit_record(
            action=action,
            organization_id=None,
            project_id=project_id,
            **actor_fields(actor),
            target_type="routing_config",
            target_id=version.pk,
            details={"version": version.number, "summary": version.summary},
        )
    return version


def config_rollback(*, project_id: uuid.UUID, number: int, actor: Actor) -> RoutingConfigVersion:
    """Make an earlier version's document live again, as a new version."""
    old = RoutingConfigVersion.objects.for_project(project_id).filter(number=number).first()
    if old is None:
        raise ApiError(
            status_code=404, code="not_found", message=f"No routing configuration version {number}."
        )
    try:
        return _save(
            project_id=project_id,
            document=old.document,
            actor=actor,
            summary=f"Rolled back to version {number}",
            base_version=None,
            action="routing.config_rolled_back",
        )
    except ConfigError as exc:
        raise ApiError(
            status_code=409,
            code="rollback_conflict",
            message=f"Version {number} cannot run any more: {exc.field}: {exc.message}",
            details={"field": exc.field},
        ) from exc


def _rule_index(document: dict[str, Any], rule_id: uuid.UUID) -> int:
    for i, rule in enumerate(document["rules"]):
        if rule.get("id") == str(rule_id):
            return i
    raise ApiError(status_code=404, code="not_found", message=f"No routing rule with id {rule_id}.")


def _rule_error(exc: ConfigError, index: int) -> ConfigError:
    """Errors of a single-rule request name fields of that rule, not of the document."""
    prefix = f"rules[{index}]"
    if exc.field == prefix or exc.field.startswith(prefix + "."):
        return ConfigError(exc.field[len(prefix) + 1 :] or "rule", exc.message)
    return exc


def rule_save(
    *, project_id: uuid.UUID, rule: dict[str, Any], actor: Actor, rule_id: uuid.UUID | None = None
) -> tuple[dict[str, Any], RoutingConfigVersion]:
    """Create a rule (no `rule_id`) or replace one; returns the stored rule and the new version."""
    if not isinstance(rule, dict):
        raise ConfigError("rule", "must be an object")
    _, document = active_document(project_id)
    document = {**document, "rules": list(document["rules"])}
    rule = {k: v for k, v in rule.items() if k != "id"}
    if rule_id is None:
        new_id = str(uuid.uuid4())
        document["rules"].append({"id": new_id, **rule})
        index, verb = len(document["rules"]) - 1, "Created"
    else:
        index, verb = _rule_index(document, rule_id), "Changed"
        new_id = str(rule_id)
        document["rules"][index] = {"id": new_id, **rule}
    try:
        version = config_save(
            project_id=project_id, document=document, actor=actor, summary=f"{verb} rule {rule.get('name')!r}"
        )
    except ConfigError as exc:
        raise _rule_error(exc, index) from exc
    return version.document["rules"][index], version


def rule_delete(*, project_id: uuid.UUID, rule_id: uuid.UUID, actor: Actor) -> RoutingConfigVersion:
    _, document = active_document(project_id)
    index = _rule_index(document, rule_id)
    name = document["rules"][index].get("name")
    rules = [r for i, r in enumerate(document["rules"]) if i != index]
    return config_save(
        project_id=project_id,
        document={**document, "rules": rules},
        actor=actor,
        summary=f"Deleted rule {name!r}",
    )


def default_destination_if_unrouted(
    *, project_id: uuid.UUID, destination_id: uuid.UUID, actor: Actor
) -> bool:
    """Make a destination the default for unmatched spans when the project routes
    nowhere yet (no rules, no defaults), so a first destination receives traces
    at once. True when it did."""
    _, document = active_document(project_id)
    if document["rules"] or document["default_destinations"]:
        return False
    document = {**document, "default_destinations": [str(destination_id)]}
    config_save(
        project_id=project_id, document=document, actor=actor, summary="Added a first default destination"
    )
    return True


def rule_move(
    *, project_id: uuid.UUID, rule_id: uuid.UUID, offset: int, actor: Actor
) -> RoutingConfigVersion | None:
    """Move a rule `offset` places in evaluation order (-1: one earlier, 1: one later).
    Every rule gets a priority 10, 20, 30, ... in the new order, saved as one version;
    None when the rule is already first (or last) and nothing changes."""
    _, document = active_document(project_id)
    index = _rule_index(document, rule_id)
    rules = [dict(rule) for rule in document["rules"]]
    order = sorted(range(len(rules)), key=lambda i: (rules[i].get("priority", 100), i))
    at = order.index(index)
    target = at + offset
    if offset == 0 or not 0 <= target < len(order):
        return None
    order.insert(target, order.pop(at))
    for rank, i in enumerate(order, start=1):
        rules[i]["priority"] = rank * 10
    direction = "up" if offset < 0 else "down"
    return config_save(
        project_id=project_id,
        document={**document, "rules": rules},
        actor=actor,
        summary=f"Moved rule {rules[index].get('name')!r} {direction}",
    )


def destination_users(destination: Destination) -> list[str]:
    """Where the live configuration names a destination (so it is not deleted from under a rule)."""
    _, document = active_document(destination.project_id)
    if str(destination.pk) not in referenced_destinations(document):
        return []
    names = [
        r.get("name", "")
        for r in document["rules"]
        if str(destination.pk) in referenced_destinations({"rules": [r]})
    ]
    if str(destination.pk) in document.get("default_destinations", []):
        names.append("default destinations")
    if str(destination.pk) in (document.get("destination_policies") or {}):
        names.append("destination policies")
    return names


# --- The live configuration, as the worker applies it -------------------------------------------

_compiled: dict[uuid.UUID, CompiledConfig] = {}
_compiled_lock = threading.Lock()
_COMPILED_LIMIT = 512


@dataclass(frozen=True)
class LiveRouting:
    config: CompiledConfig
    version_id: uuid.UUID | None
    hash_key: bytes


def compiled_version(version_id: uuid.UUID | None) -> CompiledConfig:
    """A saved version, compiled once per process (versions never change)."""
    if version_id is None:
        return _EMPTY
    config = _compiled.get(version_id)
    if config is None:
        version = RoutingConfigVersion.objects.get(pk=version_id)
        config = compile_config(version.document, version=version.number)
        with _compiled_lock:
            if len(_compiled) >= _COMPILED_LIMIT:
                _compiled.clear()
            _compiled[version_id] = config
    return config


def project_hash_key(project_id: uuid.UUID) -> bytes:
    return crypto.decrypt(_state(project_id, lock=False).hash_key_encrypted).encode()


def live_routing(project_id: uuid.UUID) -> LiveRouting:
    """The project's live version, compiled once per version per process. Versions
    never change, so a cached compilation is always the one saved; a batch is
    routed with exactly one version."""
    state = _state(project_id, lock=False)
    hash_key = crypto.decrypt(state.hash_key_encrypted).encode()
    return LiveRouting(compiled_version(state.active_version_id), state.active_version_id, hash_key)


_context_values: dict[tuple[uuid.UUID, uuid.UUID | None], tuple[float, dict[str, Any]]] = {}
CONTEXT_CACHE_SECONDS = 30.0  # project and key names: a rename reaches transformations within this


def transform_context(
    project_id: uuid.UUID, hash_key: bytes, api_key_id: uuid.UUID | None
) -> TransformContext:
    """What transformations may read under `context.`: the project, the key that
    sent the spans (when one did), and the deployment's environment name. Cached
    per process briefly: the route task asks for it on every batch."""
    cache_key = (project_id, api_key_id)
    cached = _context_values.get(cache_key)
    if cached is not None and cached[0] > time.monotonic():
        return TransformContext(hash_key=hash_key, values=cached[1])
    project = Project.objects.only("id", "name").get(pk=project_id)
    values: dict[str, Any] = {
        "project": {"id": str(project.pk), "name": project.name},
        "environment": settings.UNTRACE_ENVIRONMENT,
    }
    if api_key_id is not None:
        key = ApiKey.objects.filter(pk=api_key_id).only("id", "name").first()
        if key is not None:
            values["api_key"] = {"id": str(key.pk), "name": key.name}
    if len(_context_values) > 10_000:
        _context_values.clear()
    _context_values[cache_key] = (time.monotonic() + CONTEXT_CACHE_SECONDS, values)
    return TransformContext(hash_key=hash_key, values=values)
