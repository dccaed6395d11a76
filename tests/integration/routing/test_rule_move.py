"""rule_move: reordering rules is one new version with renumbered priorities."""

import pytest

from apps.routing.services import Actor, active_document, rule_move, rule_save

pytestmark = pytest.mark.django_db


def rule(name, priority, destination):
    return {"name": name, "priority": priority, "actions": {"destinations": [str(destination.pk)]}}


def test_move_renumbers_in_the_new_order(project, destinations):
    primary, _ = destinations
    a, _ = rule_save(project_id=project.pk, rule=rule("a", 5, primary), actor=Actor())
    b, _ = rule_save(project_id=project.pk, rule=rule("b", 5, primary), actor=Actor())  # tie: list order
    c, _ = rule_save(project_id=project.pk, rule=rule("c", 1, primary), actor=Actor())

    version = rule_move(project_id=project.pk, rule_id=a["id"], offset=1, actor=Actor())
    assert version.number == 4 and version.summary == "Moved rule 'a' down"
    document = active_document(project.pk)[1]
    assert [(r["name"], r["priority"]) for r in document["rules"]] == [("a", 30), ("b", 20), ("c", 10)]
    assert {op["path"] for op in version.changes} == {f"/rules/{i}/priority" for i in range(3)}


def test_move_past_either_end_changes_nothing(project, destinations):
    primary, _ = destinations
    first, _ = rule_save(project_id=project.pk, rule=rule("first", 1, primary), actor=Actor())
    last, _ = rule_save(project_id=project.pk, rule=rule("last", 2, primary), actor=Actor())
    assert rule_move(project_id=project.pk, rule_id=first["id"], offset=-1, actor=Actor()) is None
    assert rule_move(project_id=project.pk, rule_id=last["id"], offset=1, actor=Actor()) is None
    assert active_document(project.pk)[0] == 2
