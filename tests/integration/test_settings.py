"""Configuration read back, so a misspelt setting cannot silently do nothing."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from untrace.celery import app
from workers.queues import Queue

ROOT = Path(__file__).resolve().parents[2]


def test_celery_is_configured_for_at_least_once_delivery():
    conf = app.conf
    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.worker_prefetch_multiplier == 1
    assert conf.task_ignore_result is True
    assert conf.broker_url == settings.CELERY_BROKER_URL
    visibility = conf.broker_transport_options["visibility_timeout"]
    assert visibility > conf.task_time_limit > conf.task_soft_time_limit
    assert conf.worker_soft_shutdown_timeout > 0
    assert {q.name for q in conf.task_queues} == {"ingest", "route", "deliver", "maintenance"}


def test_every_beat_entry_names_a_registered_task_on_a_known_queue():
    app.loader.import_default_modules()
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks
        assert entry["options"]["queue"] in set(Queue)


def test_registered_tasks_run_on_their_queue():
    app.loader.import_default_modules()
    ours = [t for name, t in app.tasks.items() if name.startswith("workers.")]
    assert ours
    for task in ours:
        assert task.queue in set(Queue)


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DEBUG", "UNTRACE_", "DJANGO_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "untrace.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        UNTRACE_SECRET_KEY="k" * 20 + "Z9-long-random-production-secret-value-abcdefghij",
        UNTRACE_ENCRYPTION_KEYS="dGVzdC1lbmNyeXB0aW9uLWtleS0wMDAwMDAwMDAwMDA=",
        ALLOWED_HOSTS="untrace.example.com",
        DATABASE_URL="sqlite:///:memory:",
    )
    assert result.returncode == 0, result.stderr + result.stdout


def test_production_settings_load_with_sentry_and_its_scrubbing():
    result = _manage(
        "shell",
        "-c",
        "import sentry_sdk; options = sentry_sdk.get_client().options; "
        "print(options['before_send'].__name__, 'x-untrace-key' in options['event_scrubber'].denylist)",
        DEBUG="false",
        UNTRACE_SECRET_KEY="k" * 20 + "Z9-long-random-production-secret-value-abcdefghij",
        UNTRACE_ENCRYPTION_KEYS="dGVzdC1lbmNyeXB0aW9uLWtleS0wMDAwMDAwMDAwMDA=",
        ALLOWED_HOSTS="untrace.example.com",
        DATABASE_URL="sqlite:///:memory:",
        SENTRY_DSN="https://public@127.0.0.1:9/1",
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert result.stdout.strip().splitlines()[-1].split() == ["sentry_before_send", "True"]


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", DEBUG="false", DATABASE_URL="sqlite:///:memory:")
    assert result.returncode != 0
    assert "UNTRACE_SECRET_KEY must be set" in result.stderr


@pytest.mark.django_db
def test_openapi_document_is_valid_and_complete(tmp_path):
    out = tmp_path / "schema.yaml"
    result = _manage(
        "spectacular",
        "--validate",
        "--fail-on-warn",
        "--file",
        str(out),
        DJANGO_SETTINGS_MODULE="untrace.settings_test",
    )
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    for path in (
        "/v1/keys:",
        "/v1/keys/{id}/revoke:",
        "/v1/keys/{id}/rotate:",
        "/v1/destinations/{id}:",
        "/v1/routing/rules/{rule_id}:",
        "/v1/routing/config:",
        "/v1/routing/versions/{number}/rollback:",
        "/v1/routing/dry-run:",
        "/v1/deliveries:",
        "/v1/deliveries/{id}/replay:",
        "/v1/deliveries/replay:",
    ):
        assert path in text


def test_schema_and_docs_pages_are_public(client):
    assert client.get("/v1/schema").status_code == 200
    docs = client.get("/v1/docs")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


def test_pages_carry_a_content_security_policy_without_inline_scripts(client):
    policy = client.get("/accounts/login/").headers["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "'unsafe-eval'" not in policy
