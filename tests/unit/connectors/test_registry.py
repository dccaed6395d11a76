import pytest

from apps.destinations.connectors import connector_for, connector_types
from apps.destinations.types import destination_types

CONTRACT = {
    "langsmith", "langfuse", "keywordsai", "helicone", "langwatch", "phoenix", "otlp",
    "datadog", "honeyhive", "lunary", "mlflow", "webhook", "s3",
}  # fmt: skip


def test_every_destination_type_of_the_contract_has_a_connector():
    assert set(connector_types()) == CONTRACT


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_each_type_declares_a_label_and_its_settings(name):
    connector = connector_for(name)
    kind = destination_types()[name]
    assert connector.type == name and connector.label
    assert kind.field("api_url") is not None  # every type can point elsewhere
    names = [f.name for f in kind.fields]
    assert len(names) == len(set(names))
    assert connector.max_batch_spans > 0 and connector.max_request_bytes > 0
    for field in kind.fields:
        assert field.kind in ("string", "url", "choice", "headers")
        assert not field.choices or field.default in (None, *field.choices)
