"""Any HTTPS endpoint: JSON signed per Standard Webhooks, so receivers verify it
with the `standardwebhooks` library (`Webhook(secret).verify(body, headers)`).

Body: `{"type": "untrace.spans", "spans": [canonical span, ...]}`. The
`webhook-id` is stable for a given delivery, so a retried request carries the
same id and receivers can de-duplicate on it (and on the span ids).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks import Webhook

from apps.destinations.connectors.base import Connector, Field, HttpRequest
from apps.destinations.models import Destination


class WebhookConnector(Connector):
    type = "webhook"
    label = "Webhook"
    fields = (
        Field("url", "url", required=True),
        Field("secret", secret=True, help="whsec_... to sign requests per Standard Webhooks"),
        Field("headers", "headers", secret=True),
    )
    max_batch_spans = 1000
    max_request_bytes = 8 * 1024 * 1024

    def endpoint(self, destination: Destination) -> str:
        return destination.config.get("api_url") or destination.config["url"]

    def _chunks(self, spans: list[dict[str, Any]]) -> list[tuple[bytes, int]]:
        """Bodies under the size limit (a single larger span still goes alone)."""
        chunks: list[tuple[bytes, int]] = []
        pending = [spans[i : i + self.max_batch_spans] for i in range(0, len(spans), self.max_batch_spans)]
        while pending:
            part = pending.pop(0)
            body = orjson.dumps({"type": "untrace.spans", "spans": part})
            if len(body) > self.max_request_bytes and len(part) > 1:
                half = len(part) // 2
                pending[:0] = [part[:half], part[half:]]
                continue
            chunks.append((body, len(part)))
        return chunks

    def build_requests(
        self, destination: Destination, spans: list[dict[str, Any]], *, message_id: str
    ) -> list[HttpRequest]:
        secrets = destination.secrets
        signer = Webhook(secrets["secret"]) if secrets.get("secret") else None
        requests = []
        for index, (body, count) in enumerate(self._chunks(spans)):
            msg_id = message_id if index == 0 else f"{message_id}-{index}"
            headers = {
                "content-type": "application/json",
                "user-agent": "untrace-webhook/1",
                **(secrets.get("headers") or {}),
            }
            now = datetime.now(UTC)
            headers["webhook-id"] = msg_id
            headers["webhook-timestamp"] = str(int(now.timestamp()))
            if signer is not None:
                headers["webhook-signature"] = signer.sign(msg_id, now, body.decode())
            requests.append(HttpRequest("POST", self.endpoint(destination), headers, body, count))
        return requests
