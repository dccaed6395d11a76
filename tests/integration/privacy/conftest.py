"""The delivery tests' sinks, destinations and ingest helper, for erasure tests that deliver."""

from tests.integration.delivery.conftest import (  # noqa: F401 (fixtures)
    SECRET,
    _fast_delivery,
    backup,
    backup_sink,
    hook,
    ingest,
    sink,
)
