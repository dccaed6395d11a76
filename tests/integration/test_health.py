import os
import subprocess
import sys
from pathlib import Path

import pytest

from apps.core.health import check_broker


@pytest.mark.django_db
def test_health_and_ready(client):
    assert client.get("/health").json() == {"status": "ok"}
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}


def test_broker_check_really_talks_to_redis(settings):
    assert check_broker() is None
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    assert "Connection" in check_broker()


@pytest.mark.django_db
def test_ready_is_503_naming_what_is_down(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {"database": "ok", "broker": "down"}
    assert "broker" in body["errors"]


@pytest.mark.django_db
def test_metrics_count_requests_by_route(client, api):
    api.get("/v1/keys")
    text = client.get("/metrics").content.decode()
    assert 'untrace_http_requests_total{method="GET",route="keys-list",status="200"}' in text
    assert 'untrace_api_key_auth_total{result="ok"}' in text


@pytest.mark.django_db
def test_metrics_token_guards_the_endpoint(client, settings):
    settings.UNTRACE_METRICS_TOKEN = "s3cret"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret").status_code == 200


_WORKER = """
import os, sys
from prometheus_client import Counter
Counter("untrace_test_events_total", "test", ["source"]).labels("x").inc(int(sys.argv[1]))
"""

_READER = """
import os, django
os.environ["DJANGO_SETTINGS_MODULE"] = "untrace.settings_test"
django.setup()
from apps.core.metrics import render_metrics
print(render_metrics()[0].decode())
"""


def test_metrics_add_up_across_processes(tmp_path: Path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for count in (3, 4):  # two separate "web workers"
        subprocess.run([sys.executable, "-c", _WORKER, str(count)], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", _READER], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'untrace_test_events_total{source="x"} 7.0' in out
