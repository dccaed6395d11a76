"""The organization switcher of the top bar, and creating a further organization."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from apps.accounts.models import Membership, Organization, Project, Role
from apps.accounts.services import organization_start
from apps.audit.models import AuditEvent
from tests.factories import MembershipFactory, OrganizationFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


def switcher(response) -> str:
    match = re.search(
        r'<details class="switcher" id="org-switcher">(.*?)</details>', response.content.decode(), re.S
    )
    assert match, "no organization switcher in the page"
    return match.group(1)


def summary(response) -> str:
    text = re.search(r"<summary>(.*?)</summary>", switcher(response), re.S).group(1)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", text)).strip()


def listed_organizations(response) -> list[str]:
    return re.findall(r'<h2 id="switcher-org-[^"]+">([^<]+?)(?: <span|</h2>)', switcher(response))


@pytest.fixture
def member_of_two(db):
    """A user who owns "Acme" (projects Checkout and Search) and views "Beta" (project Bot)."""
    user = UserFactory()
    acme = OrganizationFactory(name="Acme")
    beta = OrganizationFactory(name="Beta")
    MembershipFactory(organization=acme, user=user, role="owner")
    MembershipFactory(organization=beta, user=user, role="viewer")
    projects = {
        "checkout": ProjectFactory(organization=acme, name="Checkout"),
        "search": ProjectFactory(organization=acme, name="Search"),
        "bot": ProjectFactory(organization=beta, name="Bot"),
    }
    ProjectFactory(organization=OrganizationFactory(name="Gamma"), name="Hidden")  # not the user's
    return user, acme, beta, projects


# --- the switcher ------------------------------------------------------------------------------------


def test_lists_only_the_users_organizations_and_their_projects(client, member_of_two):
    user, acme, beta, projects = member_of_two
    client.force_login(user)

    response = client.get(reverse("dashboard:overview", args=[projects["checkout"].pk]))

    menu = switcher(response)
    assert listed_organizations(response) == ["Acme", "Beta"]
    assert "Gamma" not in menu and "Hidden" not in menu
    for project in projects.values():
        assert f'href="{reverse("dashboard:overview", args=[project.pk])}"' in menu


def test_marks_the_current_organization_and_project(client, member_of_two):
    user, acme, beta, projects = member_of_two
    client.force_login(user)

    on_bot = client.get(reverse("dashboard:settings", args=[projects["bot"].pk]))

    assert summary(on_bot) == "Switch organization or project; current: Beta / Bot"
    menu = switcher(on_bot)
    assert f'switcher-entry current" aria-labelledby="switcher-org-{beta.pk}"' in menu
    assert (
        f'<a href="{reverse("dashboard:overview", args=[projects["bot"].pk])}" aria-current="page">Bot</a>'
        in menu
    )
    assert menu.count('aria-current="page"') == 1
    assert menu.count("switcher-entry current") == 1


def test_an_organization_page_marks_its_organization(client, member_of_two):
    user, acme, beta, _ = member_of_two
    client.force_login(user)

    response = client.get(reverse("dashboard:org-audit-log", args=[acme.pk]))

    assert summary(response) == "Switch organization or project; current: Acme"
    assert 'aria-current="page"' not in switcher(response)


def test_links_per_organization_follow_the_role(client, member_of_two):
    user, acme, beta, _ = member_of_two
    client.force_login(user)

    menu = switcher(client.get(reverse("dashboard:members", args=[acme.pk])))

    assert reverse("dashboard:billing", args=[acme.pk]) in menu  # owner
    assert reverse("dashboard:billing", args=[beta.pk]) not in menu  # viewer
    assert reverse("dashboard:org-audit-log", args=[beta.pk]) in menu
    assert reverse("dashboard:project-new", args=[acme.pk]) in menu
    assert reverse("dashboard:project-new", args=[beta.pk]) not in menu
    assert f'href="{reverse("dashboard:organization-new")}">New organization</a>' in menu


def test_a_user_with_one_organization_sees_its_name_everywhere(client, project, owner):
    client.force_login(owner)

    assert summary(client.get(reverse("mfa_index"))) == (
        f"Switch organization or project; current: {project.organization.name}"
    )
    assert listed_organizations(client.get(reverse("dashboard:overview", args=[project.pk]))) == [
        project.organization.name
    ]


def test_a_user_without_organization_is_offered_to_create_one(client):
    client.force_login(UserFactory())

    response = client.get(reverse("mfa_index"))

    assert summary(response) == "Switch organization or project; current: Organizations"
    assert "You belong to no organization yet." in switcher(response)


def test_signed_out_pages_have_no_switcher(client):
    assert 'id="org-switcher"' not in client.get(reverse("account_login")).content.decode()


# --- a new organization ------------------------------------------------------------------------------


def test_new_organization_makes_the_user_its_owner_with_a_first_project(client, project, owner):
    client.force_login(owner)
    assert client.get(reverse("dashboard:organization-new")).status_code == 200

    response = client.post(
        reverse("dashboard:organization-new"), {"name": "  Side project ", "project": "Bot"}
    )

    organization = Organization.objects.get(name="Side project")
    new = Project.objects.get(organization=organization)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:overview", args=[new.pk])
    assert new.name == "Bot"
    assert Membership.objects.get(organization=organization).user == owner
    assert Membership.objects.get(organization=organization).role == Role.OWNER
    assert Membership.objects.filter(user=owner).count() == 2  # the first one is kept
    (event,) = AuditEvent.objects.filter(action="organization.created")
    assert (event.organization_id, event.actor_user_id) == (organization.pk, owner.pk)
    assert event.details == {"name": "Side project", "first_project": "Bot"}

    overview = client.get(response["Location"])
    assert listed_organizations(overview) == sorted([project.organization.name, "Side project"])


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"name": "", "project": "Default"}, "name", "An organization needs a name."),
        ({"name": "   ", "project": "Default"}, "name", "An organization needs a name."),
        (
            {"name": "x" * 201, "project": "Default"},
            "name",
            "Ensure this value has at most 200 characters (it has 201).",
        ),
        ({"name": "Acme", "project": ""}, "project", "Name the first project."),
    ],
)
def test_new_organization_refuses_bad_names_next_to_the_field(client, owner, data, field, message):
    client.force_login(owner)

    response = client.post(reverse("dashboard:organization-new"), data)

    assert response.status_code == 400
    error = re.search(rf'id="id_{field}_error">([^<]*)<', response.content.decode())
    assert error and error.group(1) == message
    assert f'id="id_{field}"' in response.content.decode()
    assert not Organization.objects.filter(name="Acme").exists()


def test_new_organization_needs_a_signed_in_user(client):
    response = client.post(reverse("dashboard:organization-new"), {"name": "Acme", "project": "Default"})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert not Organization.objects.filter(name="Acme").exists()


@pytest.mark.parametrize(("name", "message"), [("", "needs a name"), ("x" * 201, "at most 200")])
def test_organization_start_refuses_bad_names(owner, name, message):
    with pytest.raises(ValueError, match=message):
        organization_start(name=name, owner=owner)

    assert Membership.objects.filter(user=owner).count() == 1


# --- the organization pages' access --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "members", "new_project"),
    [("owner", 200, 200), ("admin", 200, 200), ("member", 200, 403), ("viewer", 200, 403), (None, 404, 404)],
)
def test_members_and_new_project_pages_by_role(client, project, role, members, new_project):
    user = UserFactory()
    if role:
        MembershipFactory(organization=project.organization, user=user, role=role)
    else:
        MembershipFactory(organization=OrganizationFactory(), user=user, role="owner")  # another organization
    client.force_login(user)

    assert client.get(reverse("dashboard:members", args=[project.organization_id])).status_code == members
    assert (
        client.get(reverse("dashboard:project-new", args=[project.organization_id])).status_code
        == new_project
    )


def test_a_user_without_project_is_offered_a_new_organization(client):
    client.force_login(UserFactory())

    body = client.get(reverse("dashboard:home")).content.decode()

    assert "No project yet" in body
    assert f'<a href="{reverse("dashboard:organization-new")}">create your own organization</a>' in body
