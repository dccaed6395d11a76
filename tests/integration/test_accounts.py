import json
from datetime import timedelta
from io import StringIO

import httpx
import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from apps.accounts.models import Invitation, Membership, Organization, Project, Role, User
from apps.accounts.services import InvitationError, invitation_accept, invitation_create
from apps.keys.auth import authenticate_key
from apps.keys.models import ApiKey
from tests.factories import ApiKeyFactory, MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


PASSWORD = "a-long-enough-passphrase"


def _post_signup(client, email="ada@example.com"):
    return client.post("/accounts/signup/", {"email": email, "password1": PASSWORD, "password2": PASSWORD})


@pytest.fixture
def _signup(settings):
    """Sign up as in development, where email verification is optional."""
    settings.ACCOUNT_EMAIL_VERIFICATION = "optional"
    return _post_signup


def test_production_signup_needs_a_verified_email(client):
    response = _post_signup(client)
    assert response["Location"] == "/accounts/confirm-email/"
    assert b"Verify Your Email Address" in client.get(response["Location"]).content
    login = {"login": "ada@example.com", "password": PASSWORD}
    assert client.post("/accounts/login/", login)["Location"] == "/accounts/confirm-email/"
    link = next(w for w in mail.outbox[-1].body.split() if "/accounts/confirm-email/" in w)
    path = link.split("//", 1)[1].split("/", 1)[1]
    assert client.post(f"/{path}").status_code == 302
    response = client.post("/accounts/login/", login)
    assert response["Location"] == "/"
    assert Membership.objects.get(user__email="ada@example.com").role == Role.OWNER


def test_signup_creates_an_organization_and_first_project(client, _signup):
    response = _signup(client)
    assert response.status_code == 302, response.content
    user = User.objects.get(email="ada@example.com")
    membership = Membership.objects.get(user=user)
    assert membership.role == Role.OWNER
    project = Project.objects.get(organization=membership.organization)
    assert project.name == "Default"
    home = client.get("/")
    assert home.status_code == 302
    assert home["Location"] == f"/projects/{project.pk}/overview"


def test_dashboard_creates_a_key_shown_once(client, _signup):
    _signup(client)
    project = Project.objects.get()
    response = client.post(f"/projects/{project.pk}/keys", {"name": "laptop", "scopes": ["ingest", "read"]})
    assert response.status_code == 200
    key = ApiKey.objects.get(project=project)
    secret = response.context["issued"].secret
    assert secret in response.content.decode()
    assert authenticate_key(secret).key_id == key.pk
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert secret not in page
    assert key.display_prefix in page


def test_dashboard_key_revoke(client, _signup):
    _signup(client)
    project = Project.objects.get()
    client.post(f"/projects/{project.pk}/keys", {"name": "laptop", "scopes": ["read"]})
    key = ApiKey.objects.get()
    response = client.post(f"/projects/{project.pk}/keys/{key.pk}/revoke")
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None


def test_dashboard_hides_other_tenants_projects(client, _signup):
    _signup(client)
    stranger = MembershipFactory(role="owner")
    other = Project.objects.create(organization=stranger.organization, name="x", slug="x")
    assert client.get(f"/projects/{other.pk}/").status_code == 404
    assert client.post(f"/projects/{other.pk}/keys", {"name": "k", "scopes": ["read"]}).status_code == 404
    assert not ApiKey.objects.filter(project=other).exists()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.MEMBER])
def test_only_owners_and_admins_manage_keys(client, role):
    membership = MembershipFactory(role=role)
    project = Project.objects.create(organization=membership.organization, name="p", slug="p")
    key = ApiKeyFactory(project=project)
    client.force_login(membership.user)
    page = client.get(f"/projects/{project.pk}/")
    assert page.status_code == 200
    assert b"Create key" not in page.content
    assert client.post(f"/projects/{project.pk}/keys", {"name": "k", "scopes": ["read"]}).status_code == 403
    assert client.post(f"/projects/{project.pk}/keys/{key.pk}/revoke").status_code == 403
    assert ApiKey.objects.filter(project=project).count() == 1
    key.refresh_from_db()
    assert key.revoked_at is None


def test_invitation_round_trip(client):
    owner = MembershipFactory(role=Role.OWNER)
    client.force_login(owner.user)
    response = client.post(
        f"/orgs/{owner.organization_id}/members", {"email": "Grace@Example.com", "role": "admin"}
    )
    assert response.status_code == 302
    assert mail.outbox[-1].to == ["grace@example.com"]
    link = next(w for w in mail.outbox[-1].body.split() if "/invitations/" in w)
    path = link.split("8000", 1)[1]

    grace = UserFactory(email="grace@example.com")
    client.force_login(grace)
    assert client.get(path).status_code == 200
    assert client.post(path).status_code == 302
    assert Membership.objects.get(user=grace, organization=owner.organization).role == Role.ADMIN
    assert client.post(path).status_code == 400  # used up


def test_invitation_checks_email_expiry_and_role():
    owner = MembershipFactory(role=Role.OWNER)
    _, token = invitation_create(
        organization=owner.organization, email="x@example.com", role="member", invited_by=owner.user
    )
    with pytest.raises(InvitationError, match="sent to x@example.com"):
        invitation_accept(token=token, user=UserFactory(email="y@example.com"))
    Invitation.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(InvitationError, match="expired"):
        invitation_accept(token=token, user=UserFactory(email="x@example.com"))
    with pytest.raises(InvitationError, match="does not exist"):
        invitation_accept(token="nope", user=owner.user)
    with pytest.raises(InvitationError, match="Role must be"):
        invitation_create(
            organization=owner.organization, email="z@example.com", role="owner", invited_by=owner.user
        )


def test_members_cannot_invite():
    member = MembershipFactory(role=Role.MEMBER)
    from django.test import Client

    client = Client()
    client.force_login(member.user)
    url = f"/orgs/{member.organization_id}/members"
    assert client.get(url).status_code == 200
    assert client.post(url, {"email": "a@example.com", "role": "member"}).status_code == 403


def test_create_project_command_prints_a_working_key():
    out = StringIO()
    call_command("create_project", org="Acme", project="Prod", owner_email="ops@acme.test", stdout=out)
    first = json.loads(out.getvalue())
    assert set(first) == {"organization", "project", "api_key"}
    principal = authenticate_key(first["api_key"])
    assert str(principal.project_id) == first["project"]

    out = StringIO()
    call_command("create_project", org="Acme", project="Prod", owner_email="ops@acme.test", stdout=out)
    second = json.loads(out.getvalue())
    assert (second["organization"], second["project"]) == (first["organization"], first["project"])
    assert second["api_key"] != first["api_key"]
    assert Organization.objects.count() == 1


def test_create_project_command_rejects_a_bad_email():
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--owner-email"):
        call_command("create_project", org="A", project="B", owner_email="nope", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_key_from_the_command_works_over_real_http(live_server):
    out = StringIO()
    call_command("create_project", org="Acme", project="Prod", owner_email="ops@acme.test", stdout=out)
    secret = json.loads(out.getvalue())["api_key"]
    with httpx.Client(base_url=live_server.url, timeout=10) as http:
        ok = http.get("/v1/keys", headers={"Authorization": f"Bearer {secret}"})
        assert ok.status_code == 200
        assert ok.json()["results"][0]["name"] == "created by create_project"
        forged = secret[:-1] + ("x" if secret[-1] != "x" else "y")
        bad = http.get("/v1/keys", headers={"X-Untrace-Key": forged})
        assert bad.status_code == 401
        assert bad.json()["error"]["code"] == "invalid_key"


def test_dashboard_rotates_a_key_and_shows_the_new_secret_once(client, _signup):
    _signup(client)
    project = Project.objects.get()
    client.post(f"/projects/{project.pk}/keys", {"name": "ci", "scopes": ["ingest"]})
    old = ApiKey.objects.get()
    response = client.post(f"/projects/{project.pk}/keys/{old.pk}/rotate")
    assert response.status_code == 200
    issued = response.context["issued"]
    assert issued.key.rotated_from_id == old.pk
    assert issued.secret in response.content.decode()
    assert 'data-copy="#new-key-secret"' in response.content.decode()
    assert authenticate_key(issued.secret).key_id == issued.key.pk
    old.refresh_from_db()
    assert old.expires_at is not None  # the old key ends after the grace period

    again = client.post(f"/projects/{project.pk}/keys/{old.pk}/rotate")
    assert "this key was already rotated; rotate its successor" in again.content.decode()
    assert ApiKey.objects.count() == 2
    page = client.get(f"/projects/{project.pk}/").content.decode()
    assert page.count("/rotate") == 1  # only the successor offers rotation


def test_members_cannot_rotate_keys(client):
    membership = MembershipFactory(role=Role.MEMBER)
    project = Project.objects.create(organization=membership.organization, name="p", slug="p")
    key = ApiKeyFactory(project=project)
    client.force_login(membership.user)
    assert client.post(f"/projects/{project.pk}/keys/{key.pk}/rotate").status_code == 403
    assert ApiKey.objects.count() == 1
