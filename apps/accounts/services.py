"""Writes for users, organizations, memberships, projects and invitations."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from apps.accounts.models import Invitation, Membership, Organization, Project, Role, User
from apps.audit.services import audit_record

INVITATION_TTL = timedelta(days=7)


class InvitationError(Exception):
    """An invitation that cannot be accepted; the message says why."""


def _unique_slug(base: str, exists) -> str:
    root = (slugify(base) or "untitled")[:60]
    slug, n = root, 1
    while exists(slug):
        n += 1
        slug = f"{root}-{n}"
    return slug


@transaction.atomic
def organization_create(*, name: str, owner: User) -> Organization:
    slug = _unique_slug(name, lambda s: Organization.objects.filter(slug=s).exists())
    organization = Organization.objects.create(name=name, slug=slug)
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    return organization


def project_create(*, organization: Organization, name: str) -> Project:
    slug = _unique_slug(name, lambda s: organization.projects.filter(slug=s).exists())
    return Project.objects.create(organization=organization, name=name, slug=slug)


@transaction.atomic
def user_onboard(*, user: User) -> Project:
    """A new user's own organization and first project, so they can start at once."""
    local_part = user.email.split("@", 1)[0]
    organization = organization_create(name=f"{local_part}'s organization", owner=user)
    return project_create(organization=organization, name="Default")


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_create(
    *, organization: Organization, email: str, role: str, invited_by: User
) -> tuple[Invitation, str]:
    """Store an invitation (only its token's hash) and email the link. Returns the token."""
    if role not in Role.values or role == Role.OWNER:
        raise InvitationError(f"Role must be one of admin, member, viewer; got {role!r}.")
    email = email.strip().lower()
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=_hash_token(token),
        invited_by=invited_by,
        expires_at=timezone.now() + INVITATION_TTL,
    )
    link = settings.UNTRACE_PUBLIC_URL.rstrip("/") + reverse(
        "accounts:invitation-accept", kwargs={"token": token}
    )
    audit_record(
        action="invitation.created",
        organization_id=organization.pk,
        actor_user_id=invited_by.pk,
        target_type="invitation",
        target_id=invitation.pk,
        details={"email": email, "role": role},
    )
    send_mail(
        subject=f"You are invited to {organization.name} on Untrace",
        message=(
            f"{invited_by.email} invited you to join {organization.name} on Untrace "
            f"as {role}.\n\nAccept: {link}\n\nThe link expires in 7 days."
        ),
        from_email=None,
        recipient_list=[email],
    )
    return invitation, token


def invitation_accept(*, token: str, user: User) -> Membership:
    invitation = (
        Invitation.objects.select_related("organization").filter(token_hash=_hash_token(token)).first()
    )
    if invitation is None or invitation.revoked_at is not None:
        raise InvitationError("This invitation does not exist or was withdrawn.")
    if invitation.accepted_at is not None:
        raise InvitationError("This invitation was already accepted.")
    if invitation.expires_at <= timezone.now():
        raise InvitationError("This invitation has expired; ask for a new one.")
    if invitation.email != user.email.lower():
        raise InvitationError(f"This invitation was sent to {invitation.email}.")
    with transaction.atomic():
        try:
            membership, _ = Membership.objects.get_or_create(
                organization=invitation.organization,
                user=user,
                defaults={"role": invitation.role},
            )
        except IntegrityError as exc:  # a concurrent accept of the same invitation
            raise InvitationError("This invitation was already accepted.") from exc
        invitation.accepted_at = timezone.now()
        invitation.save(update_fields=["accepted_at", "updated_at"])
        audit_record(
            action="membership.accepted",
            organization_id=invitation.organization_id,
            actor_user_id=user.pk,
            target_type="membership",
            target_id=membership.pk,
            details={"role": membership.role, "invitation_id": str(invitation.pk)},
        )
    return membership


def invitations_delete_expired() -> int:
    cutoff = timezone.now() - INVITATION_TTL
    deleted, _ = Invitation.objects.filter(expires_at__lt=cutoff, accepted_at__isnull=True).delete()
    return deleted


def project_rename(*, project: Project, name: str) -> Project:
    """Give the project a new display name; its id and slug stay, so links and keys keep working."""
    name = name.strip()
    if not name:
        raise ValueError("A project needs a name.")
    limit = Project._meta.get_field("name").max_length
    if len(name) > limit:
        raise ValueError(f"Use at most {limit} characters.")
    project.name = name
    project.save(update_fields=["name", "updated_at"])
    return project
