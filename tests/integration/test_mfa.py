"""Account security: TOTP two-factor sign-in, recovery codes, and password reset by email."""

from __future__ import annotations

import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa import app_settings as mfa_settings
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import format_hotp_value, hotp_value
from django.core import mail
from django.core.cache import cache

from apps.core import crypto
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
SECRET_RE = re.compile(r'<code id="totp-secret"[^>]*>([A-Z2-7=]+)</code>')


@pytest.fixture(autouse=True)
def _fresh_cache():
    """allauth keeps rate limits and used TOTP codes in the cache; each test starts clean."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user(db):
    user = UserFactory(email="ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    return user


def totp_code(secret: str, offset: int = 0) -> str:
    """The code an authenticator app shows now (away from a period boundary)."""
    period = mfa_settings.TOTP_PERIOD
    if time.time() % period > period - 3:
        time.sleep(period - time.time() % period + 0.2)
    return format_hotp_value(hotp_value(secret, int(time.time()) // period + offset))


def wrong_code(secret: str) -> str:
    right = totp_code(secret)
    return f"{(int(right) + 1) % 10**mfa_settings.TOTP_DIGITS:0{mfa_settings.TOTP_DIGITS}}"


def sign_in(client, email="ada@example.com", password=PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


def sign_out(client):
    client.post("/accounts/logout/")


def activate_totp(client) -> tuple[str, list[str]]:
    """Turns TOTP on through the pages; returns the secret and the recovery codes shown."""
    confirm = client.get("/accounts/2fa/totp/activate/")
    assert confirm["Location"] == "/accounts/reauthenticate/?next=%2Faccounts%2F2fa%2Ftotp%2Factivate%2F"
    response = client.post(confirm["Location"], {"password": PASSWORD})
    assert response["Location"] == "/accounts/2fa/totp/activate/"
    page = client.get("/accounts/2fa/totp/activate/")
    assert page.status_code == 200
    html = page.content.decode()
    secret = SECRET_RE.search(html).group(1)
    assert 'src="data:image/svg+xml;base64,' in html  # the QR code
    response = client.post("/accounts/2fa/totp/activate/", {"code": totp_code(secret)})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/2fa/recovery-codes/"
    codes_page = client.get(response["Location"])
    assert codes_page.status_code == 200
    codes = codes_page.context["unused_codes"]
    assert len(codes) == mfa_settings.RECOVERY_CODE_COUNT
    for code in codes:
        assert f"<code>{code}</code>" in codes_page.content.decode()
    return secret, codes


def test_account_security_page_needs_a_signed_in_user(client):
    response = client.get("/accounts/2fa/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_account_security_page_and_top_bar_link(client, user):
    sign_in(client)
    page = client.get("/accounts/2fa/")
    assert page.status_code == 200
    html = page.content.decode()
    assert '<a href="/accounts/2fa/">Account security</a>' in html  # top bar
    assert "<h1>Account security</h1>" in html
    assert "Activate authenticator app" in html
    assert "No recovery codes yet" in html


def test_activate_totp_then_sign_in_needs_the_code(client, user):
    assert sign_in(client)["Location"] == "/"
    secret, _codes = activate_totp(client)
    stored = Authenticator.objects.get(user=user, type=Authenticator.Type.TOTP).data["secret"]
    assert secret not in stored  # encrypted at rest
    assert crypto.decrypt(stored) == secret
    seed = Authenticator.objects.get(user=user, type=Authenticator.Type.RECOVERY_CODES).data["seed"]
    assert crypto.decrypt(seed)
    index = client.get("/accounts/2fa/").content.decode()
    assert '<span class="badge ok">On</span>' in index
    assert "10 of 10 recovery codes left" in index

    sign_out(client)
    response = sign_in(client)
    assert response["Location"] == "/accounts/2fa/authenticate/"
    assert "Account security" not in client.get("/").content.decode()  # not signed in yet
    assert "_auth_user_id" not in client.session

    step = client.get("/accounts/2fa/authenticate/")
    assert step.status_code == 200
    assert '<label for="id_code">Authentication code</label>' in step.content.decode()

    refused = client.post("/accounts/2fa/authenticate/", {"code": wrong_code(secret)})
    assert refused.status_code == 200
    html = refused.content.decode()
    assert '<div class="errorlist" id="id_code_error" role="alert">Incorrect code.</div>' in html
    assert 'aria-invalid="true"' in html
    assert "_auth_user_id" not in client.session

    accepted = client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})
    assert accepted.status_code == 302
    assert accepted["Location"] == "/"
    assert client.session["_auth_user_id"] == str(user.pk)


def test_activation_refuses_a_wrong_code_next_to_the_field(client, user):
    sign_in(client)
    client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    page = client.get("/accounts/2fa/totp/activate/")
    secret = SECRET_RE.search(page.content.decode()).group(1)
    response = client.post("/accounts/2fa/totp/activate/", {"code": wrong_code(secret)})
    assert response.status_code == 200
    assert 'id="id_code_error" role="alert">Incorrect code.</div>' in response.content.decode()
    assert SECRET_RE.search(response.content.decode()).group(1) == secret  # same secret to retry
    assert not Authenticator.objects.filter(user=user).exists()


def test_activation_needs_a_verified_email(client, settings):
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    user = UserFactory(email="unverified@example.com")
    EmailAddress.objects.create(user=user, email=user.email, verified=False, primary=True)
    sign_in(client, email=user.email)
    assert "Verify unverified@example.com first" in client.get("/accounts/2fa/").content.decode()
    response = client.get("/accounts/2fa/totp/activate/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/2fa/"
    assert "verified your email address" in response.content.decode()


def test_a_recovery_code_signs_in_once(client, user):
    sign_in(client)
    _secret, codes = activate_totp(client)
    sign_out(client)

    sign_in(client)
    response = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert response["Location"] == "/"
    index = client.get("/accounts/2fa/").content.decode()
    assert "9 of 10 recovery codes left" in index
    sign_out(client)

    sign_in(client)
    again = client.post("/accounts/2fa/authenticate/", {"code": codes[0]})
    assert again.status_code == 200
    assert "Incorrect code." in again.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.post("/accounts/2fa/authenticate/", {"code": codes[1]})["Location"] == "/"


def test_recovery_codes_download_and_regenerate(client, user):
    sign_in(client)
    _secret, codes = activate_totp(client)
    download = client.get("/accounts/2fa/recovery-codes/download/")
    assert download.status_code == 200
    assert download["Content-Disposition"] == 'attachment; filename="recovery-codes.txt"'
    assert download.content.decode().split() == codes

    confirm = client.get("/accounts/2fa/recovery-codes/generate/")
    assert "The 10 codes you have now stop working." in confirm.content.decode()
    response = client.post("/accounts/2fa/recovery-codes/generate/")
    assert response["Location"] == "/accounts/2fa/recovery-codes/"
    fresh = client.get(response["Location"]).context["unused_codes"]
    assert len(fresh) == 10
    assert not set(fresh) & set(codes)


def test_deactivate_totp(client, user):
    sign_in(client)
    activate_totp(client)
    page = client.get("/accounts/2fa/totp/deactivate/")
    assert page.status_code == 200
    assert "<h1>Deactivate authenticator app</h1>" in page.content.decode()
    response = client.post("/accounts/2fa/totp/deactivate/")
    assert response["Location"] == "/accounts/2fa/"
    assert not Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()
    sign_out(client)
    assert sign_in(client)["Location"] == "/"  # no second step any more


def test_password_reset_by_email(client, user):
    form = client.get("/accounts/password/reset/")
    assert form.status_code == 200
    response = client.post("/accounts/password/reset/", {"email": "ADA@example.com"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password/reset/done/"
    assert client.get(response["Location"]).status_code == 200

    message = mail.outbox[-1]
    assert message.to == ["ada@example.com"]
    link = next(w for w in message.body.split() if "/accounts/password/reset/key/" in w)
    path = "/" + link.split("//", 1)[1].split("/", 1)[1]
    opened = client.get(path)
    assert opened.status_code == 302  # the key moves into the session, out of the address bar
    set_password = opened["Location"]
    assert client.get(set_password).status_code == 200

    new_password = "a-brand-new-passphrase"
    done = client.post(set_password, {"password1": new_password, "password2": new_password})
    assert done.status_code == 302
    assert done["Location"] == "/accounts/password/reset/key/done/"
    user.refresh_from_db()
    assert user.check_password(new_password)

    assert client.get(path).context["token_fail"]  # the link works once
    assert sign_in(client, password=PASSWORD).status_code == 200  # old password refused
    assert sign_in(client, password=new_password)["Location"] == "/"


def test_password_reset_keeps_the_second_step(client, user):
    sign_in(client)
    secret, _codes = activate_totp(client)
    sign_out(client)
    client.post("/accounts/password/reset/", {"email": user.email})
    link = next(w for w in mail.outbox[-1].body.split() if "/accounts/password/reset/key/" in w)
    set_password = client.get("/" + link.split("//", 1)[1].split("/", 1)[1])["Location"]
    new_password = "another-long-passphrase"
    client.post(set_password, {"password1": new_password, "password2": new_password})
    assert sign_in(client, password=new_password)["Location"] == "/accounts/2fa/authenticate/"
    assert client.post("/accounts/2fa/authenticate/", {"code": totp_code(secret)})["Location"] == "/"
