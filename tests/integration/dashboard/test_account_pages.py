"""Every account page (django-allauth) in the product's look: the app's CSS, a centered card,
a labelled field per input, errors next to their field, the primary button style."""

from __future__ import annotations

import re

import pytest
from allauth.account.models import EmailAddress, EmailConfirmationHMAC
from django.core import mail

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


@pytest.fixture
def user(db):
    user = UserFactory(email="ada@example.com")
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=False)
    return user


def card(response) -> str:
    """The page's main element, which must be the account card."""
    body = response.content.decode()
    assert '<link rel="stylesheet" href="/static/css/app.css">' in body
    match = re.search(r'<main class="auth-card( auth-manage)?">(.*)</main>', body, re.S)
    assert match, "the page is not in the account card"
    return re.sub(r"\s+", " ", re.sub(r"\s*(<[^>]+>)\s*", r"\1", match.group(2)))  # no layout whitespace


def labels_for_every_input(html: str) -> None:
    inputs = re.findall(r"<input [^>]*>", html)
    visible = [i for i in inputs if 'type="hidden"' not in i]
    assert visible, "no input on the page"
    for tag in visible:
        field_id = re.search(r'id="([^"]+)"', tag).group(1)
        assert f'<label for="{field_id}">' in html, f"no label for #{field_id}"


ENTRANCE_PAGES = [
    ("/accounts/login/", "Sign In", "prominent"),
    ("/accounts/signup/", "Sign Up", "prominent"),
    ("/accounts/password/reset/", "Password Reset", ""),
]


@pytest.mark.parametrize(("path", "title", "button"), ENTRANCE_PAGES)
def test_entrance_pages_are_cards_with_labelled_fields(client, path, title, button):
    response = client.get(path)

    assert response.status_code == 200
    html = card(response)
    assert f'<h1 class="auth-title">{title}</h1>' in html
    assert '<form method="post" action="' in html and 'class="auth-form stack"' in html
    labels_for_every_input(html)
    button_class = f' class="{button}"' if button else ""
    assert f'<button{button_class} type="submit">' in html


def test_sign_in_error_is_shown_above_the_fields(client, user):
    response = client.post("/accounts/login/", {"login": user.email, "password": "wrong"})

    assert response.status_code == 200
    html = card(response)
    errors = re.search(
        r'<div class="errorlist auth-errors" role="alert" id="form-errors">(.*?)</div>', html, re.S
    )
    assert errors and "The email address and/or password you specified are not correct." in errors.group(1)
    assert html.index("auth-errors") < html.index('id="id_login"')


def test_sign_up_errors_sit_next_to_their_field(client, user):
    response = client.post(
        "/accounts/signup/", {"email": "ada@", "password1": "a-long-passphrase", "password2": "other"}
    )

    html = card(response)
    email_field = re.search(
        r'<div class="auth-field has-error"><label for="id_email">(.*?)</div></div>', html
    ).group(1)
    assert re.search(
        r'<input type="email" name="email"[^>]* aria-invalid="true" aria-describedby="id_email_error"',
        email_field,
    )
    assert (
        '<div class="errorlist" role="alert" id="id_email_error"><p>Enter a valid email address.</p>'
        in email_field
    )
    mismatch = "<p>You must type the same password each time.</p>"
    assert f'<div class="errorlist" role="alert" id="id_password2_error">{mismatch}' in html


def test_password_reset_done_and_a_bad_key(client, user):
    done = client.post("/accounts/password/reset/", {"email": user.email})
    assert done["Location"] == "/accounts/password/reset/done/"
    assert '<h1 class="auth-title">Password Reset</h1>' in card(client.get(done["Location"]))

    bad = client.get("/accounts/password/reset/key/1-not-a-key/", follow=True)
    assert '<h1 class="auth-title">Bad Token</h1>' in card(bad)


def test_password_reset_from_key_form(client, user):
    client.post("/accounts/password/reset/", {"email": user.email})
    link = next(w for w in mail.outbox[-1].body.split() if "/accounts/password/reset/key/" in w)

    response = client.get("/" + link.split("//", 1)[1].split("/", 1)[1], follow=True)

    html = card(response)
    assert '<h1 class="auth-title">Change Password</h1>' in html
    labels_for_every_input(html)
    assert '<button class="link auth-link" form="logout-from-stage" type="submit">Cancel</button>' in html


def test_email_confirmation_pages(client, user):
    address = EmailAddress.objects.get(user=user)
    key = EmailConfirmationHMAC(address).key

    valid = client.get(f"/accounts/confirm-email/{key}/")
    invalid = client.get("/accounts/confirm-email/not-a-key/")

    assert '<h1 class="auth-title">Confirm Email Address</h1>' in card(valid)
    assert '<button type="submit">Confirm</button>' in card(valid)
    assert "This email confirmation link expired or is invalid." in card(invalid)


def test_logout_and_account_management_pages_use_the_wider_card(client, user):
    client.force_login(user)

    for path, title in [
        ("/accounts/logout/", "Sign Out"),
        ("/accounts/password/change/", "Change Password"),
        ("/accounts/email/", "Email Addresses"),
    ]:
        response = client.get(path)
        assert response.status_code == 200, path
        assert '<main class="auth-card auth-manage">' in response.content.decode(), path
        assert f'<h1 class="auth-title">{title}</h1>' in card(response), path


def test_the_mfa_pages_keep_their_own_layout_in_the_product_frame(client, user):
    client.force_login(user)

    response = client.get("/accounts/2fa/")

    body = response.content.decode()
    assert '<link rel="stylesheet" href="/static/css/app.css">' in body
    assert "<h1>Account security</h1>" in body and 'class="mfa-page"' in body
