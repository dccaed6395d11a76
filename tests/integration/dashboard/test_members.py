"""Members: changing roles, removing members, leaving, withdrawing invitations; every change audited."""

from __future__ import annotations

import pytest

from apps.accounts.models import Invitation, Membership
from apps.accounts.services import invitation_create
from apps.audit.models import AuditEvent
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def org():
    organization = OrganizationFactory()
    ProjectFactory(organization=organization)
    return organization


def _member(org, role):
    return MembershipFactory(organization=org, role=role)


def _role(client, org, target, role):
    return client.post(f"/orgs/{org.pk}/members/{target.pk}/role", {"role": role})


def _remove(client, org, target):
    return client.post(f"/orgs/{org.pk}/members/{target.pk}/remove")


def _messages(client, org) -> str:
    return client.get(f"/orgs/{org.pk}/members").content.decode()


def test_an_owner_changes_a_role_and_it_is_audited(client, org):
    owner, member = _member(org, "owner"), _member(org, "member")
    client.force_login(owner.user)
    assert _role(client, org, member, "admin").status_code == 302
    member.refresh_from_db()
    assert member.role == "admin"
    (event,) = AuditEvent.objects.filter(action="membership.role_changed")
    assert event.actor_user_id == owner.user_id
    assert event.details == {
        "email": member.user.email,
        "before": {"role": "member"},
        "after": {"role": "admin"},
    }


def test_an_admin_cannot_touch_owners_nor_make_one(client, org):
    owner, admin, member = _member(org, "owner"), _member(org, "admin"), _member(org, "member")
    client.force_login(admin.user)
    _role(client, org, owner, "member")
    _role(client, org, member, "owner")
    _remove(client, org, owner)
    owner.refresh_from_db()
    member.refresh_from_db()
    assert (owner.role, member.role) == ("owner", "member")
    assert "Only an owner changes or removes owners" in _messages(client, org)
    assert not AuditEvent.objects.filter(action__startswith="membership.").exists()


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_and_viewers_cannot_manage_members(client, org, role):
    actor, other = _member(org, role), _member(org, "viewer")
    client.force_login(actor.user)
    _role(client, org, other, "admin")
    _remove(client, org, other)
    other.refresh_from_db()
    assert other.role == "viewer"
    assert "Only owners and admins manage members." in _messages(client, org)


def test_the_last_owner_can_neither_be_demoted_nor_removed(client, org):
    owner = _member(org, "owner")
    client.force_login(owner.user)
    _role(client, org, owner, "admin")
    _remove(client, org, owner)
    owner.refresh_from_db()
    assert owner.role == "owner"
    assert "keeps at least one owner" in _messages(client, org)

    second = _member(org, "owner")  # with a second owner, the first may step down
    assert _role(client, org, owner, "admin").status_code == 302
    owner.refresh_from_db()
    assert owner.role == "admin"
    assert Membership.objects.filter(pk=second.pk, role="owner").exists()


def test_removing_a_member_ends_their_access_at_once(client, org):
    owner, member = _member(org, "owner"), _member(org, "member")
    project = org.projects.get()
    client.force_login(member.user)
    assert client.get(f"/projects/{project.pk}/overview").status_code == 200
    client.force_login(owner.user)
    assert _remove(client, org, member).status_code == 302
    assert not Membership.objects.filter(pk=member.pk).exists()
    (event,) = AuditEvent.objects.filter(action="membership.removed")
    assert event.details == {"email": member.user.email, "role": "member", "left": False}
    client.force_login(member.user)
    assert client.get(f"/projects/{project.pk}/overview").status_code == 404


def test_a_viewer_may_leave(client, org):
    _member(org, "owner")
    viewer = _member(org, "viewer")
    client.force_login(viewer.user)
    response = _remove(client, org, viewer)
    assert response.status_code == 302 and response.url == "/"
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    assert AuditEvent.objects.get(action="membership.removed").details["left"] is True


def test_another_organizations_member_is_404(client, org):
    owner = _member(org, "owner")
    stranger = MembershipFactory(role="member")
    client.force_login(owner.user)
    assert _role(client, org, stranger, "admin").status_code == 404
    assert _remove(client, org, stranger).status_code == 404
    assert client.post(f"/orgs/{stranger.organization_id}/members/{stranger.pk}/remove").status_code == 404
    stranger.refresh_from_db()
    assert stranger.role == "member"


def test_withdrawn_invitations_cannot_be_accepted(client, org):
    owner = _member(org, "owner")
    invitation, token = invitation_create(
        organization=org, email="x@example.com", role="member", invited_by=owner.user
    )
    client.force_login(owner.user)
    assert client.post(f"/orgs/{org.pk}/invitations/{invitation.pk}/revoke").status_code == 302
    invitation.refresh_from_db()
    assert invitation.revoked_at is not None
    assert f"/invitations/{invitation.pk}/revoke" not in _messages(client, org)
    assert AuditEvent.objects.filter(action="invitation.revoked", target_id=str(invitation.pk)).exists()
    assert Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).exists()


def test_the_page_offers_role_changes_only_to_managers(client, org):
    owner, member = _member(org, "owner"), _member(org, "member")
    client.force_login(member.user)
    page = _messages(client, org)
    assert f"/members/{owner.pk}/role" not in page
    assert f"Leave {org.name}" in page
    client.force_login(owner.user)
    page = _messages(client, org)
    assert f"/members/{member.pk}/role" in page
    assert f"/members/{owner.pk}/role" not in page  # not on yourself
