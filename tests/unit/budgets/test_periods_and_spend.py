from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from apps.budgets.periods import window_of
from apps.budgets.services import BudgetError, _amount, _thresholds
from apps.budgets.spend import Exhausted, SpendIncrement, from_micros, spend_increment, to_micros


def test_monthly_window_is_the_calendar_month_in_utc():
    window = window_of("monthly", datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    assert window.start == datetime(2026, 12, 1, tzinfo=UTC)
    assert window.end == datetime(2027, 1, 1, tzinfo=UTC)
    assert window.label == "2026-12"
    # 00:30 on the 1st in UTC+2 is still the previous month in UTC.
    local = datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2)))
    assert window_of("monthly", local).label == "2026-02"


def test_daily_window():
    window = window_of("daily", datetime(2028, 2, 28, 12, tzinfo=UTC))
    assert (window.start, window.end, window.label) == (
        datetime(2028, 2, 28, tzinfo=UTC),
        datetime(2028, 2, 29, tzinfo=UTC),
        "2028-02-28",
    )
    with pytest.raises(ValueError):
        window_of("weekly")


def test_micro_dollars():
    assert to_micros(0.00000125) == 1
    assert to_micros(1.75) == 1_750_000
    assert to_micros(None) == 0
    assert to_micros(Decimal("12.3456789")) == 12_345_679
    assert from_micros(1_750_001) == Decimal("1.750001")
    assert spend_increment("p", "k", 0.0) is None
    assert spend_increment("p", None, 0.4) == SpendIncrement("p", None, 400_000)


class Pipe:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def hincrby(self, *args):
        self.calls.append(("hincrby", *args))

    def expire(self, *args):
        self.calls.append(("expire", *args))


def test_an_increment_counts_the_project_and_the_key_in_both_periods():
    pipe = Pipe()
    SpendIncrement("p1", "k1", 5).add_to(pipe, datetime(2026, 5, 17, 8, tzinfo=UTC))
    assert pipe.calls == [
        ("hincrby", "untrace:spend:2026-05", "p:p1", 5),
        ("hincrby", "untrace:spend:2026-05", "k:k1", 5),
        ("expire", "untrace:spend:2026-05", 40 * 86400),
        ("hincrby", "untrace:spend:2026-05-17", "p:p1", 5),
        ("hincrby", "untrace:spend:2026-05-17", "k:k1", 5),
        ("expire", "untrace:spend:2026-05-17", 3 * 86400),
    ]
    pipe = Pipe()
    SpendIncrement("p1", None, 5).add_to(pipe, datetime(2026, 5, 17, 8, tzinfo=UTC))
    assert [c for c in pipe.calls if c[0] == "hincrby"] == [
        ("hincrby", "untrace:spend:2026-05", "p:p1", 5),
        ("hincrby", "untrace:spend:2026-05-17", "p:p1", 5),
    ]


def test_exhausted_message_and_retry_after():
    resets = datetime(2026, 6, 1, tzinfo=UTC).timestamp()
    entry = Exhausted("b1", "Prod", "20.00", "monthly", resets, "project")
    assert entry.message() == (
        'The monthly budget "Prod" of this project ($20.00) is spent; '
        "proxied LLM calls are refused until it resets at 2026-06-01T00:00:00Z."
    )
    assert entry.retry_after(now=resets - 90.5) == 91
    assert entry.retry_after(now=resets + 5) == 1
    assert Exhausted(**orjson.loads(entry.to_json())) == entry


@pytest.mark.parametrize(
    ("value", "expected"),
    [([100, 50, 80], [50, 80, 100]), ([1], [1]), ([1000, 1], [1, 1000])],
)
def test_thresholds_are_sorted(value, expected):
    assert _thresholds(value) == expected


@pytest.mark.parametrize(
    ("value", "field", "message"),
    [
        ([], "thresholds", "must be a non-empty list of percents"),
        ([50, True], "thresholds[1]", "must be an integer percent"),
        ([50, 2000], "thresholds[1]", "must be between 1 and 1000"),
        ([50, 50], "thresholds[1]", "50 is listed twice"),
        (list(range(1, 12)), "thresholds", "must hold at most 10 percents"),
    ],
)
def test_bad_thresholds(value, field, message):
    with pytest.raises(BudgetError) as caught:
        _thresholds(value)
    assert (caught.value.field, caught.value.message) == (field, message)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be greater than 0"),
        (-1, "must be greater than 0"),
        ("abc", "must be a number"),
        (True, "must be a number"),
        ("NaN", "must be a number"),
        ("1.001", "must have at most 2 decimal places"),
    ],
)
def test_bad_amounts(value, message):
    with pytest.raises(BudgetError) as caught:
        _amount(value)
    assert (caught.value.field, caught.value.message) == ("amount_usd", message)


def test_amounts_keep_cents():
    assert _amount("12.5") == Decimal("12.50")
    assert _amount(3) == Decimal("3.00")
