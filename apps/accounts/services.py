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
from apps.audit.services import actor_fields, audit_record

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


def _clean_name(name: str, model, what: str) -> str:
    name = name.strip()
    if not name:
        raise ValueError(f"{what} needs a name.")
    limit = model._meta.get_field("name").max_length
    if len(name) > limit:
        raise ValueError(f"Use at most {limit} characters.")
    return name


@transaction.atomic
def organization_start(*, name: str, owner: User, project_name: str = "Default", actor=None) -> Project:
    """A further organization of `owner` (its owner) with a first project, so it can be used
    at once; returns the project. Raises ValueError for an empty or too long name."""
    name = _clean_name(name, Organization, "An organization")
    organization = organization_create(name=name, owner=owner)
    project = project_create(organization=organization, name=project_name)
    audit_record(
        action="organization.created",
        organization_id=organization.pk,
        **actor_fields(actor, user_id=owner.pk),
        target_type="organization",
        target_id=organization.pk,
        details={"name": organization.name, "first_project": project.name},
    )
    return project


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


def project_rename(*, project: Project, name: str, actor=None) -> Project:
    """Give the project a new display name; its id and slug stay, so links and keys keep working."""
    name = _clean_name(name, Project, "A project")
    before = project.name
    project.name = name
    project.save(update_fields=["name", "updated_at"])
    if before != name:
        audit_record(
            action="project.renamed",
            organization_id=project.organization_id,
            project_id=project.pk,
            **actor_fields(actor),
            target_type="project",
            target_id=project.pk,
            details={"before": {"name": before}, "after": {"name": name}},
        )
    return project


# --- members --------------------------------------------------------------------------------


class MembershipError(Exception):
    """A change of members that the rules refuse; the message says which rule."""


def _check_manager(by: Membership, target_role: str, new_role: str | None = None) -> None:
    if by.role not in (Role.OWNER, Role.ADMIN):
        raise MembershipError("Only owners and admins manage members.")
    if by.role != Role.OWNER and Role.OWNER in (target_role, new_role):
        raise MembershipError("Only an owner changes or removes owners, or makes someone an owner.")


def _last_owner(membership: Membership) -> bool:
    return (
        membership.role == Role.OWNER
        and not Membership.objects.filter(organization_id=membership.organization_id, role=Role.OWNER)
        .exclude(pk=membership.pk)
        .exists()
    )


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, by: Membership) -> Membership:
    if role not in Role.values:
        raise MembershipError(f"Role must be one of {', '.join(Role.values)}; got {role!r}.")
    # Lock the organization's memberships so two demotions cannot leave it without an owner.
    list(Membership.objects.select_for_update().filter(organization_id=membership.organization_id))
    membership.refresh_from_db()
    _check_manager(by, membership.role, role)
    if role == membership.role:
        return membership
    if role != Role.OWNER and _last_owner(membership):
        raise MembershipError("An organization keeps at least one owner: make someone else owner first.")
    before = membership.role
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    audit_record(
        action="membership.role_changed",
        organization_id=membership.organization_id,
        actor_user_id=by.user_id,
        target_type="membership",
        target_id=membership.pk,
        details={"email": membership.user.email, "before": {"role": before}, "after": {"role": role}},
    )
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, by: Membership) -> None:
    """Remove a member (or let one leave): their access to every project ends at once."""
    list(Membership.objects.select_for_update().filter(organization_id=membership.organization_id))
    membership.refresh_from_db()
    if membership.pk != by.pk:
        _check_manager(by, membership.role)
    if _last_owner(membership):
        raise MembershipError("An organization keeps at least one owner: make someone else owner first.")
    details = {"email": membership.user.email, "role": membership.role, "left": membership.pk == by.pk}
    membership_id = membership.pk
    membership.delete()
    audit_record(
        action="membership.removed",
        organization_id=by.organization_id,
        actor_user_id=by.user_id,
        target_type="membership",
        target_id=membership_id,
        details=details,
    )


def invitation_revoke(*, invitation: Invitation, by: Membership) -> None:
    _check_manager(by, invitation.role)
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        return
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at", "updated_at"])
    audit_record(
        action="invitation.revoked",
        organization_id=invitation.organization_id,
        actor_user_id=by.user_id,
        target_type="invitation",
        target_id=invitation.pk,
        details={"email": invitation.email, "role": invitation.role},
    )
