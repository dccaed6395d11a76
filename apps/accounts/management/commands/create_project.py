"""Scripted set-up: `manage.py create_project --org NAME --project NAME --owner-email EMAIL`.

Creates what is missing (owner user, organization, project), always issues a
new API key with every scope, and prints JSON with the ids and the key.
"""

import json

from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from apps.accounts.models import Membership, Organization, Role, User
from apps.accounts.services import organization_create, project_create
from apps.keys.models import ALL_SCOPES
from apps.keys.services import key_create


class Command(BaseCommand):
    help = "Create an organization, project and API key if missing; print them as JSON."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="Organization name")
        parser.add_argument("--project", required=True, help="Project name")
        parser.add_argument("--owner-email", required=True, help="Owner's email (created if new)")
        parser.add_argument("--key-name", default="created by create_project")

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        email = options["owner_email"].strip().lower()
        try:
            validate_email(email)
        except Exception as exc:
            raise CommandError(f"--owner-email: {email!r} is not an email address") from exc
        user = User.objects.filter(email=email).first()
        if user is None:
            user = User.objects.create_user(email=email)  # no password: sets one via reset
        organization = Organization.objects.filter(
            name=options["org"], memberships__user=user
        ).first() or organization_create(name=options["org"], owner=user)
        Membership.objects.get_or_create(organization=organization, user=user, defaults={"role": Role.OWNER})
        project = organization.projects.filter(name=options["project"]).first() or project_create(
            organization=organization, name=options["project"]
        )
        issued = key_create(project=project, name=options["key_name"], scopes=ALL_SCOPES)
        self.stdout.write(
            json.dumps(
                {"organization": str(organization.pk), "project": str(project.pk), "api_key": issued.secret}
            )
        )
