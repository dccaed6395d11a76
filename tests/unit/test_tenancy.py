import pytest

from apps.core.api import ProjectScopedViewSet, dangerously_unscoped
from apps.keys.models import ApiKey


def test_overriding_get_queryset_is_refused():
    with pytest.raises(TypeError, match="safely_get_queryset"):

        class Leaky(ProjectScopedViewSet):
            model = ApiKey

            def get_queryset(self):
                return ApiKey.objects.all()


def test_an_override_marked_dangerous_is_allowed():
    class Admin(ProjectScopedViewSet):
        model = ApiKey

        @dangerously_unscoped
        def get_queryset(self):
            return ApiKey.objects.all()

    assert Admin.get_queryset.dangerously_unscoped


@pytest.mark.django_db
def test_for_project_filters_by_project(api_key):
    from tests.factories import ApiKeyFactory

    stranger = ApiKeyFactory()
    mine = set(ApiKey.objects.for_project(api_key.project_id).values_list("pk", flat=True))
    assert api_key.pk in mine
    assert stranger.pk not in mine
