"""Budget periods: calendar months and days, in UTC."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MONTHLY = "monthly"
DAILY = "daily"
PERIODS = (MONTHLY, DAILY)


@dataclass(frozen=True)
class Window:
    """One period: [start, end). `label` names it in Redis keys (YYYY-MM or YYYY-MM-DD)."""

    period: str
    start: datetime
    end: datetime

    @property
    def label(self) -> str:
        return self.start.strftime("%Y-%m" if self.period == MONTHLY else "%Y-%m-%d")


def window_of(period: str, moment: datetime | None = None) -> Window:
    """The period of kind `period` holding `moment` (now by default)."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    if period == MONTHLY:
        start = datetime(moment.year, moment.month, 1, tzinfo=UTC)
        end = datetime(moment.year + moment.month // 12, moment.month % 12 + 1, 1, tzinfo=UTC)
    elif period == DAILY:
        start = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
        end = start + timedelta(days=1)
    else:
        raise ValueError(f"unknown budget period {period!r}")
    return Window(period=period, start=start, end=end)
