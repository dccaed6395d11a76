import pytest

from apps.core.metrics import TASKS
from workers.tasks.delivery import wake_due_deliveries

pytestmark = pytest.mark.django_db


def test_a_message_delivered_too_often_is_dropped(settings):
    settings.UNTRACE_TASK_MAX_DELIVERIES = 3
    name = "workers.tasks.delivery.wake_due_deliveries"
    before = TASKS.labels(name, "poison")._value.get()
    results = [wake_due_deliveries.apply(task_id="the-same-message").result for _ in range(4)]
    assert results[:3] == [0, 0, 0] and results[3] is None
    assert TASKS.labels(name, "poison")._value.get() == before + 1
    assert wake_due_deliveries.apply(task_id="another-message").result == 0
