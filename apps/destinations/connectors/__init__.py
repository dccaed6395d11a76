"""The connector registry: every module in this package that defines a
`Connector` subclass with a `type` is found and registered; adding a platform
means adding one module here."""

from __future__ import annotations

import importlib
import pkgutil

from apps.destinations.connectors.base import Connector

_registry: dict[str, Connector] = {}


def _load() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    pending = list(Connector.__subclasses__())
    while pending:  # connectors may build on one another (Phoenix on OTLP)
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "type" in cls.__dict__:
            _registry[cls.type] = cls()


def connector_for(destination_type: str) -> Connector | None:
    if not _registry:
        _load()
    return _registry.get(destination_type)


def connector_types() -> list[str]:
    if not _registry:
        _load()
    return sorted(_registry)
