"""Every project page warns from 80 % of the plan's included traces, and says when ingest is paused."""

from __future__ import annotations

import pytest

from apps.billing import usage
from tests.factories import MembershipFactory, ProjectFactory, SubscriptionFactory, UsageCounterFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def project_page(client):
    project = ProjectFactory()
    SubscriptionFactory(organization=project.organization, plan="starter", custom_monthly_traces=100)
    client.force_login(MembershipFactory(organization=project.organization, role="viewer").user)
    yield project, lambda tab="overview": client.get(f"/projects/{project.pk}/{tab}").content.decode()
    usage.exceeded_publish({})


def test_no_banner_below_80_percent(project_page):
    project, page = project_page
    UsageCounterFactory(organization=project.organization, traces=79)
    assert 'id="quota-banner"' not in page()


@pytest.mark.parametrize("tab", ["overview", "traces", "destinations", "settings"])
def test_from_80_percent_every_tab_warns_and_links_to_billing(project_page, tab):
    project, page = project_page
    UsageCounterFactory(organization=project.organization, traces=85)
    html = page(tab)
    assert 'data-level="near"' in html
    assert "85 % of this month's included traces are used" in html
    assert f'href="/orgs/{project.organization_id}/billing"' in html


def test_at_the_limit_the_banner_is_an_alert(project_page):
    project, page = project_page
    UsageCounterFactory(organization=project.organization, traces=104)
    html = page()
    assert 'data-level="limit"' in html and 'role="alert"' in html


def test_a_paused_organization_is_told_so(project_page):
    project, page = project_page
    UsageCounterFactory(organization=project.organization, traces=120)
    exceeded = usage.Exceeded(plan="starter", limit=100, used=120)
    usage.exceeded_publish({str(project.organization_id): exceeded})
    html = page()
    assert 'data-level="paused"' in html
    assert "Ingest is paused:" in html
