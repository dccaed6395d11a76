"""factory-boy factories for every model the tests need."""

from __future__ import annotations

import factory

from apps.accounts.models import Membership, Organization, Project, Role, User
from apps.billing.usage import month_start
from apps.keys.models import ALL_SCOPES, ApiKey
from apps.keys.services import key_create


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct horse battery")

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class OrganizationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    slug = factory.Sequence(lambda n: f"org-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    organization = factory.SubFactory(OrganizationFactory)
    user = factory.SubFactory(UserFactory)
    role = Role.MEMBER


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Project {n}")
    slug = factory.Sequence(lambda n: f"project-{n}")


class ApiKeyFactory(factory.django.DjangoModelFactory):
    """Goes through the real `key_create` service; the plain secret is on `.secret`."""

    class Meta:
        model = ApiKey

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"key {n}")
    scopes = sorted(ALL_SCOPES)
    allowed_cidrs = factory.LazyFunction(list)
    expires_at = None

    @classmethod
    def _create(cls, model_class, **kwargs):
        issued = key_create(**kwargs)
        issued.key.secret = issued.secret
        return issued.key


class WebhookEndpointFactory(factory.django.DjangoModelFactory):
    """Goes through the real `endpoint_create` service; the plain secret is on `.secret`."""

    class Meta:
        model = "ingest.WebhookEndpoint"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"webhook {n}")
    enabled = True

    @classmethod
    def _create(cls, model_class, project, **kwargs):
        from apps.ingest.webhooks import endpoint_create

        endpoint, _ = endpoint_create(project_id=project.pk, **kwargs)
        return endpoint


class DestinationFactory(factory.django.DjangoModelFactory):
    """Goes through the real `destination_create` service (validation, encrypted credentials)."""

    class Meta:
        model = "destinations.Destination"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"destination {n}")
    type = "webhook"
    config = factory.LazyFunction(
        lambda: {"url": "http://127.0.0.1:9/hook", "secret": "whsec_dGVzdHNlY3JldA=="}
    )
    enabled = True

    @classmethod
    def _create(cls, model_class, project, **kwargs):
        from apps.destinations.services import destination_create

        return destination_create(project_id=project.pk, **kwargs)


class SubscriptionFactory(factory.django.DjangoModelFactory):
    """An organization's billing row; `plan` is a plan code of the seeded plans."""

    class Meta:
        model = "billing.Subscription"

    organization = factory.SubFactory(OrganizationFactory)
    plan = "starter"
    status = "active"

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        from apps.billing.models import Plan

        if isinstance(kwargs.get("plan"), str):
            kwargs["plan"] = Plan.objects.get(code=kwargs["plan"])
        return super()._create(model_class, *args, **kwargs)


class UsageCounterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "billing.UsageCounter"

    organization = factory.SubFactory(OrganizationFactory)
    month = factory.LazyFunction(lambda: month_start())
    traces = 0
