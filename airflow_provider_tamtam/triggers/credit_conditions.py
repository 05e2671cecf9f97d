"""What a credits watcher compares: a threshold in credits or as a share of the total, parsed once.

Comparisons are exact (fractions, no float rounding), so ``below "5%"`` of 2000 credits holds at 99 and
not at 100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from airflow_provider_tamtam.exceptions import TamtamConfigError

__all__ = ["CONDITIONS", "Threshold"]

CONDITIONS = ("at_least", "below")
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
