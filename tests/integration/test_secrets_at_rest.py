"""Secrets at rest: no plaintext in a dump of the database, and key rotation."""

from __future__ import annotations

from io import StringIO

import pytest
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import TOTP
from cryptography.fernet import Fernet
from django.core.management import call_command

from apps.core import crypto
from apps.core.key_rotation import encrypted_columns
from apps.destinations.models import Destination
from apps.ingest.models import WebhookEndpoint
from apps.proxy.models import ProxySettings
from apps.proxy.project_settings import proxy_settings_save
from tests.factories import ApiKeyFactory, DestinationFactory, UserFactory, WebhookEndpointFactory

pytestmark = pytest.mark.django_db

DESTINATION_SECRET = "whsec_UGxhaW50ZXh0RGVzdGluYXRpb25TZWNyZXQ="
PROVIDER_KEY = "sk-proj-PlaintextProviderKey0123456789"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


@pytest.fixture
def secrets_stored(project):
    destination = DestinationFactory(
        project=project, config={"url": "https://hooks.example.com/in", "secret": DESTINATION_SECRET}
    )
    proxy_settings_save(project_id=project.pk, changes={"openai_key": PROVIDER_KEY})
    endpoint = WebhookEndpointFactory(project=project)
    key = ApiKeyFactory(project=project)
    TOTP.activate(UserFactory(), TOTP_SECRET)
    return {
        "destination": destination,
        "endpoint": endpoint,
        "endpoint_secret": endpoint.secret,
        "plaintexts": [DESTINATION_SECRET, PROVIDER_KEY, TOTP_SECRET, endpoint.secret, key.secret],
    }


def _dump() -> str:
    out = StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def test_no_secret_appears_in_a_dump_of_the_database(secrets_stored):
    dump = _dump()
    assert len(dump) > 1000
    for plaintext in secrets_stored["plaintexts"]:
        assert plaintext not in dump
    # ...while the encrypted values are there and decrypt to the secrets.
    destination = Destination.objects.get(pk=secrets_stored["destination"].pk)
    assert destination.secrets_encrypted in dump
    assert destination.secrets["secret"] == DESTINATION_SECRET


def test_every_encrypted_column_is_found_by_name():
    columns = {f"{model._meta.label}.{field}" for model, field in encrypted_columns()}
    assert {
        "destinations.Destination.secrets_encrypted",
        "proxy.ProxySettings.openai_key_encrypted",
        "proxy.ProxySettings.anthropic_key_encrypted",
        "ingest.WebhookEndpoint.secret_encrypted",
        "ingest.WebhookEndpoint.previous_secret_encrypted",
    } <= columns


def test_rotation_re_encrypts_everything_with_the_newest_key(secrets_stored, settings):
    old = settings.UNTRACE_ENCRYPTION_KEYS[0]
    new = Fernet.generate_key().decode()
    settings.UNTRACE_ENCRYPTION_KEYS = [new, old]

    dry = StringIO()
    call_command("rotate_encryption_keys", "--dry-run", stdout=dry)
    assert "would re-encrypt 4 value(s)" in dry.getvalue()  # destination, provider key, endpoint, TOTP
    out = StringIO()
    call_command("rotate_encryption_keys", stdout=out)
    report = out.getvalue()
    assert "destinations.Destination.secrets_encrypted: re-encrypted 1" in report
    assert "proxy.ProxySettings.openai_key_encrypted: re-encrypted 1" in report
    assert "ingest.WebhookEndpoint.secret_encrypted: re-encrypted 1" in report
    assert "mfa.Authenticator.data.secret: re-encrypted 1" in report

    settings.UNTRACE_ENCRYPTION_KEYS = [new]  # the old key is gone: everything still reads
    destination = Destination.objects.get(pk=secrets_stored["destination"].pk)
    assert destination.secrets["secret"] == DESTINATION_SECRET
    assert crypto.decrypt(ProxySettings.objects.get().openai_key_encrypted) == PROVIDER_KEY
    endpoint = WebhookEndpoint.objects.get(pk=secrets_stored["endpoint"].pk)
    assert endpoint.secret == secrets_stored["endpoint_secret"]
    totp = Authenticator.objects.get(type=Authenticator.Type.TOTP)
    assert crypto.decrypt(totp.data["secret"]) == TOTP_SECRET

    again = StringIO()
    call_command("rotate_encryption_keys", stdout=again)
    assert "re-encrypted 0 value(s)" in again.getvalue()


def test_a_dry_run_writes_nothing(secrets_stored, settings):
    before = Destination.objects.get(pk=secrets_stored["destination"].pk).secrets_encrypted
    settings.UNTRACE_ENCRYPTION_KEYS = [Fernet.generate_key().decode(), *settings.UNTRACE_ENCRYPTION_KEYS]
    call_command("rotate_encryption_keys", "--dry-run", stdout=StringIO())
    assert Destination.objects.get(pk=secrets_stored["destination"].pk).secrets_encrypted == before
