"""The interface every destination connector implements.

A connector turns a batch of rendered canonical spans into the HTTP requests its
platform expects (`build_requests`) and reads the platform's answer
(`classify`). Sending, retries, circuit breaking and the delivery ledger are the
delivery pipeline's (`apps.delivery`), the same for every platform.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx

from apps.core.http import retry_after_seconds
from apps.destinations.models import Destination

# Answers that mean "try again later"; every other 4xx is the request's fault.
RETRYABLE_4XX = frozenset({408, 409, 425, 429})
MAX_ERROR_BODY = 2000


@dataclass(frozen=True)
class Field:
    """One setting of a destination type; the API validates with it and the
    dashboard builds its form from it. `secret` fields are credentials:
    encrypted at rest, never returned."""

    name: str
    kind: str = "string"  # string | url | choice | headers
    required: bool = False
    secret: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    help: str = ""


def api_key(required: bool = True, help: str = "") -> Field:  # noqa: A002 (a form's help text)
    return Field("api_key", required=required, secret=True, help=help)


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    span_count: int


@dataclass(frozen=True)
class Outcome:
    """What a platform said about one request."""

    ok: bool
    retryable: bool = False
    status: int | None = None
    message: str = ""
    body: str = ""
    retry_after: float | None = None  # seconds
    item_errors: list[dict[str, Any]] = field(default_factory=list)  # per-span refusals in a partial success

    @property
    def gone(self) -> bool:
        """410: the endpoint no longer exists; the destination is disabled."""
        return self.status == 410


class Connector(abc.ABC):
    type: ClassVar[str]
    label: ClassVar[str]
    fields: ClassVar[tuple[Field, ...]] = ()  # `api_url` is added to every type
    max_batch_spans: ClassVar[int] = 500  # spans per request
    max_request_bytes: ClassVar[int] = 5 * 1024 * 1024

    @classmethod
    def field_named(cls, name: str) -> Field | None:
        return next((f for f in cls.fields if f.name == name), None)

    @abc.abstractmethod
    def endpoint(self, destination: Destination) -> str:
        """The base URL requests go to (the `api_url` override wins)."""

    @abc.abstractmethod
    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        """The platform's requests for these rendered spans, within its limits."""

    def classify(self, response: httpx.Response) -> Outcome:
        status = response.status_code
        body = response.text[:MAX_ERROR_BODY]
        if 200 <= status < 300:
            return Outcome(ok=True, status=status, body=body)
        retryable = status >= 500 or status in RETRYABLE_4XX
        return Outcome(
            ok=False,
            retryable=retryable,
            status=status,
            message=f"{self.type} answered {status}",
            body=body,
            retry_after=retry_after_seconds(response.headers.get("retry-after")),
        )
