"""MLflow tracing through its OTLP endpoint.

The tracking server mounts the OTLP receiver at the server root: `POST {tracking_uri}/v1/traces`
(`OTLP_TRACES_PATH` in `mlflow/tracing/utils/otlp.py`), with the experiment in the required header
`x-mlflow-experiment-id` (`MLFLOW_EXPERIMENT_ID_HEADER`). The body is sent as `application/x-protobuf`,
which every MLflow version with the endpoint accepts. MLflow translates OpenInference attributes first
and the GenAI conventions next (`mlflow/tracing/otel/translation`), so both are sent: span type, inputs and
outputs, model, provider and token usage come through either.

Answers (`mlflow/server/otel_api.py`): 200 with an `ExportTraceServiceResponse`; 400 for a bad content type or
body; 422 when a span cannot be converted or logged; 501 when the tracking store cannot log spans (a file
store); none of them is retried. A batch is stored all-or-nothing.

Limits: MLflow documents none; 512 spans and 4 MiB per request keep to the OTLP exporter defaults.
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from apps.destinations.connectors import otlp_encoding as otlp
from apps.destinations.connectors.base import Connector, Field, Outcome
from apps.destinations.models import Destination

EXPERIMENT_HEADER = "x-mlflow-experiment-id"


class MlflowConnector(otlp.OtlpExport, Connector):
    type = "mlflow"
    label = "MLflow"
    fields = (Field("tracking_uri", "url", required=True), Field("experiment_id", required=True))
    max_batch_spans = 512
    max_request_bytes = 4 * 1024 * 1024
    styles = (otlp.GENAI, otlp.OPENINFERENCE)
    user_agent = "untrace-mlflow/1"

    def endpoint(self, destination: Destination) -> str:
        return destination.config.get("api_url") or destination.config["tracking_uri"]

    def export_headers(self, destination: Destination) -> dict[str, str]:
        return {EXPERIMENT_HEADER: str(destination.config.get("experiment_id") or "0")}

    def classify(self, response: httpx.Response) -> Outcome:
        """501: the tracking store cannot log spans at all, so retrying cannot help."""
        outcome = super().classify(response)
        return replace(outcome, retryable=False) if outcome.status == 501 else outcome
