from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

RESOURCE = {
    "service.name": "chatbot",
    "service.version": "2.1.0",
    "deployment.environment.name": "staging",
}


class Recorder:
    """An OpenTelemetry SDK tracer whose finished spans are encoded as an OTLP export request."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create(RESOURCE))
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests.instrumentation", "0.3.1")

    @property
    def spans(self):
        return self.exporter.get_finished_spans()

    def request(self):
        return encode_spans(self.spans)

    def protobuf(self) -> bytes:
        return self.request().SerializeToString()
