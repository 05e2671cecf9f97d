"""What a credits watcher judges at each poll: a credit level crossed, or credits forecast to run out.

Levels are a number of credits or a share of the type's total, compared exactly (fractions, no float
rounding), so ``below "5%"`` of 2000 credits holds at 99 and not at 100. The forecast is
``remaining / burn rate`` against a horizon, the rate being the least-squares slope of the used credits
over the recent polls (:mod:`airflow_provider_tamtam.forecast`).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from airflow_provider_tamtam.exceptions import TamtamConfigError
from airflow_provider_tamtam.forecast import (
    Forecast,
    UsageHistory,
    format_duration,
    format_rate,
)

__all__ = ["CONDITIONS", "MIN_FORECAST_POLLS", "LevelCondition", "RunOutCondition", "Threshold"]

CONDITIONS = ("at_least", "below", "runs_out_within")
#: Successful polls within the forecast window needed before a burn rate is trusted.
MIN_FORECAST_POLLS = 3
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")


@dataclass(frozen=True)
class Threshold:
    """A credit count, or a share of the type's total credits (``share`` is set then)."""

    count: int
    share: Fraction | None

    @classmethod
    def parse(cls, threshold: object) -> Threshold:
        """Split a threshold into a credit count or a share of the total (as an exact fraction)."""
        if isinstance(threshold, int) and not isinstance(threshold, bool):
            if threshold < 0:
                raise TamtamConfigError(f"threshold must be >= 0, got {threshold!r}")
            return cls(threshold, None)
        if isinstance(threshold, str):
            match = _PERCENT.match(threshold)
            if match:
                percent = Fraction(match.group(1))
                if percent > 100:
                    raise TamtamConfigError(
                        f"threshold percentage must be between 0% and 100%, got {threshold!r}"
                    )
                return cls(0, percent / 100)
        raise TamtamConfigError(
            "threshold must be a whole number of credits >= 0 or a percentage of the total such as '5%', "
            f"got {threshold!r}"
        )

    def reached(self, remaining: int, total: int) -> bool:
        """Whether ``remaining`` is at least the threshold; a share of a total of 0 counts as 0 %."""
        if self.share is None:
            return remaining >= self.count
        ratio = Fraction(remaining, total) if total > 0 else Fraction(0)
        return ratio >= self.share

    def credits(self, total: int) -> float | int:
        """The threshold in credits for this total."""
        if self.share is None:
            return self.count
        return float(self.share * total)


@dataclass
class LevelCondition:
    """``at_least`` or ``below`` a threshold of credits or of a share of the total."""

    condition: str
    threshold: Threshold
    history: None = None

    def judge(
        self, remaining: int, total: int, lines: list[dict[str, Any]], snapshot: dict[str, Any]
    ) -> tuple[bool, bool]:
        """Whether the condition holds for this poll, and whether the history changed (never: none)."""
        at_least = self.threshold.reached(remaining, total)
        return (at_least if self.condition == "at_least" else not at_least), False

    def payload(self, total: int) -> dict[str, Any]:
        """The event fields this condition adds."""
        return {"threshold_credits": self.threshold.credits(total)}

    def __str__(self) -> str:
        return ""


@dataclass
class RunOutCondition:
    """Credits forecast to run out within ``horizon`` seconds at the burn rate of the last ``window``.

    :meth:`judge` is called once per poll (every poll of every watcher: it stays cheap); the payload and
    the words for the log are built from the last judged poll, only when they are needed.
    """

    horizon: float
    window: float
    history: UsageHistory = field(init=False)
    forecast: Forecast = field(init=False, default=Forecast(None, None))

    def __post_init__(self) -> None:
        self.history = UsageHistory(self.window)

    def judge(
        self, remaining: int, total: int, lines: list[dict[str, Any]], snapshot: dict[str, Any]
    ) -> tuple[bool, bool]:
        """Record the poll (the type's ``lines`` summed, at the snapshot's time); whether the forecast is
        within the horizon, and whether the history changed."""
        used = sum(int(line["used_credits"]) for line in lines)
        changed = self.history.add(float(snapshot.get("fetched_at") or time.time()), used)
        self.forecast = Forecast.of(remaining, self.history.rate(MIN_FORECAST_POLLS))
        return self.forecast.within(self.horizon), changed

    def payload(self, total: int) -> dict[str, Any]:
        rate = self.forecast.rate
        return {
            "threshold_credits": None if rate is None else max(rate, 0.0) * self.horizon,
            "runs_out_in": self.forecast.runs_out_in,
            "burn_per_hour": None if rate is None else rate * 3600,
            "horizon": self.horizon,
        }

    def __str__(self) -> str:
        rate = self.forecast.rate
        if rate is None:
            return f"no burn rate yet ({len(self.history.points)} of {MIN_FORECAST_POLLS} polls needed)"
        return f"runs out in {format_duration(self.forecast.runs_out_in)} at {format_rate(rate, 3600)}/h"
