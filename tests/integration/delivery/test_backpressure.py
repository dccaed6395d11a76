import pytest

from apps.delivery.backpressure import forget_cache, publish_backlog
from apps.delivery.models import Delivery
from tests.factories import ApiKeyFactory
from tests.integration.delivery.conftest import spans
from tests.integration.ingest.helpers import post
from workers.tasks.routing import route_batch

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    forget_cache()
    yield
    forget_cache()


def test_a_project_over_its_backlog_gets_429_until_it_drains(settings, api, client, api_key, hook, ingest):
    from apps.core.metrics import INGEST_THROTTLED

    throttled_before = INGEST_THROTTLED._value.get()
    settings.UNTRACE_PROJECT_BACKLOG_LIMIT = 4
    document = {"rules": [{"name": "all", "conditions": {}, "actions": {"destinations": [str(hook.pk)]}}]}
    assert api.put("/v1/routing/config", document, format="json").status_code == 200
    assert route_batch(str(ingest(spans(5)).pk))
    assert publish_backlog() == {str(api_key.project_id): 5}
    forget_cache()

    response = post(client, "/v1/traces", spans(1, prefix="late")[0], api_key.secret)
    assert response.status_code == 429
    assert response["Retry-After"].isdigit()
    body = response.json()["error"]
    assert body["code"] == "backlog_full" and "5 spans" in body["message"]

    other = ApiKeyFactory()
    assert post(client, "/v1/traces", spans(1, prefix="other")[0], other.secret).status_code == 202

    Delivery.objects.update(status="delivered")
    assert publish_backlog() == {}
    forget_cache()
    assert post(client, "/v1/traces", spans(1, prefix="late")[0], api_key.secret).status_code == 202
    assert INGEST_THROTTLED._value.get() == throttled_before + 1
    assert "untrace_ingest_throttled_total" in client.get("/metrics").content.decode()
