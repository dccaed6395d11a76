"""project_rename: a new display name; id and slug stay."""

from __future__ import annotations

import pytest

from apps.accounts.models import Project
from apps.accounts.services import project_rename

pytestmark = pytest.mark.django_db


def test_renames_and_keeps_id_and_slug(project):
    pk, slug = project.pk, project.slug

    renamed = project_rename(project=project, name="  Checkout assistant ")

    assert renamed is project
    stored = Project.objects.get(pk=pk)
    assert (stored.name, stored.slug) == ("Checkout assistant", slug)


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "A project needs a name."), (" \t ", "A project needs a name."), ("x" * 201, "200")],
)
def test_refuses_an_empty_or_long_name(project, name, message):
    before = project.name

    with pytest.raises(ValueError, match=message):
        project_rename(project=project, name=name)

    assert Project.objects.get(pk=project.pk).name == before
