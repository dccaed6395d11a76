"""An owner changes a member's role and removes another, confirming (or not) the dialog."""

from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse

from apps.accounts.models import Membership
from tests.factories import MembershipFactory, ProjectFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def test_change_a_role_and_remove_a_member(page, live_server, tmp_path):
    project = ProjectFactory(name="Search")
    organization = project.organization
    owner = MembershipFactory(organization=organization, role="owner").user
    EmailAddress.objects.create(user=owner, email=owner.email, verified=True, primary=True)
    member = MembershipFactory(organization=organization, role="member")
    viewer = MembershipFactory(organization=organization, role="viewer")

    page.goto(f"{live_server.url}{reverse('account_login')}")
    page.fill("input[name=login]", owner.email)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Sign In").click()
    page.wait_for_url(lambda url: "/accounts/login" not in url)

    page.goto(f"{live_server.url}{reverse('dashboard:members', args=[organization.pk])}")
    page.get_by_label(f"Role of {member.user.email}").select_option("admin")
    page.locator(f"tr:has-text('{member.user.email}')").get_by_role("button", name="Change").click()
    page.get_by_text(f"{member.user.email} is now admin.").wait_for()
    assert Membership.objects.get(pk=member.pk).role == "admin"

    remove = page.locator(f"tr:has-text('{viewer.user.email}')").get_by_role("button", name="Remove")
    page.once("dialog", lambda dialog: dialog.dismiss())  # the confirmation stops the form
    remove.click()
    page.wait_for_timeout(300)
    assert Membership.objects.filter(pk=viewer.pk).exists()

    page.once("dialog", lambda dialog: dialog.accept())
    remove.click()
    page.get_by_text(f"{viewer.user.email} was removed").wait_for()
    assert not Membership.objects.filter(pk=viewer.pk).exists()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "members.png"), full_page=True)
