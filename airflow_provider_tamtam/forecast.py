"""Burn rates and run-out forecasts of credits, shared by the audit operator and the credits watcher.

The rate is the least-squares slope of ``used_credits`` over time, as Prometheus' ``predict_linear`` fits
it (two samples give the plain ``Δused / Δtime``); the forecast is ``remaining / rate``. It assumes a
linear burn, and a drop of ``used_credits`` (a new billing period) starts the history afresh.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from airflow_provider_tamtam.exceptions import TamtamConfigError
from airflow_provider_tamtam.models import CreditLine, CreditSummary

__all__ = [
    "Forecast",
    "UsageHistory",
    "format_duration",
    "format_rate",
    "least_squares_slope",
    "parse_horizon",
    "runs_out_in",
    "sample_forecasts",
]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_HORIZON = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")


def parse_horizon(value: object, name: str = "threshold") -> float:
    """Seconds from an int or float > 0, a timedelta, or a string such as ``"45s"``, ``"90m"``, ``"36h"``,
    ``"3d"``; anything else is a :class:`TamtamConfigError` naming ``name``."""
    seconds: float | None = None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _HORIZON.match(value)
        if match:
            seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds is None or not math.isfinite(seconds) or seconds <= 0:
        raise TamtamConfigError(
            f"{name} must be a duration > 0: seconds, a timedelta, or a string such as '45s', '90m', "
            f"'36h' or '3d', got {value!r}"
        )
    return seconds


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """The slope of the least-squares line through ``(time, value)`` points, per second; ``None`` when the
    points do not span any time (fewer than two distinct times)."""
    n = len(points)
    if n < 2:
        return None
    # one pass over the sums, relative to the first point: epoch seconds squared, or billions of credits
    # times seconds, would lose the precision the fit needs
    t0, v0 = points[0]
    sum_t = sum_v = sum_tt = sum_tv = 0.0
    for at, value in points:
        t = at - t0
        v = value - v0
        sum_t += t
        sum_v += v
        sum_tt += t * t
        sum_tv += t * v
    sxx = sum_tt - sum_t * sum_t / n
    if sxx <= 0:
        return None
    return (sum_tv - sum_t * sum_v / n) / sxx


def runs_out_in(remaining: float, rate: float | None) -> float | None:
    """Seconds until ``remaining`` reaches 0 at ``rate`` credits per second: ``inf`` at zero or negative
    burn, ``None`` when the rate is unknown."""
    if rate is None:
        return None
    if rate <= 0:
        return math.inf
    return max(remaining, 0) / rate


def format_duration(seconds: float | None) -> str:
    """``"2d 4h"``, ``"3h 20m"``, ``"45s"``: the two largest units; ``"never"`` for inf, ``"-"`` unknown."""
    if seconds is None:
        return "-"
    if math.isinf(seconds):
        return "never"
    left = max(round(seconds), 0)
    amounts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, left = divmod(left, size)
        amounts.append((amount, unit))
    first = next((i for i, (amount, _) in enumerate(amounts) if amount), len(amounts) - 1)
    return " ".join(f"{amount}{unit}" for amount, unit in amounts[first : first + 2] if amount) or "0s"


def format_rate(per_second: float | None, per: float = 86400) -> str:
    """A rate per second shown per ``per`` seconds (a day by default), ``"-"`` when unknown."""
    if per_second is None:
        return "-"
    value = per_second * per
    text = f"{value:.0f}" if abs(value) >= 10 else f"{value:.1f}"
    return text.removesuffix(".0")


@dataclass
class UsageHistory:
    """Successful polls' ``(epoch seconds, used credits)`` within the last ``window`` seconds.

    Bounded to ``max_points`` (the oldest go first). A drop of the used credits, i.e. a new period,
    starts the history afresh; a point no newer than the last one (the same answer seen twice) is ignored.
    Every watcher fits its history at every poll, so the least-squares sums are kept up to date as points
    come and go (relative to a reference point, re-fitted from scratch now and then against drift)
    rather than recomputed over the whole window.
    """

    window: float
    max_points: int = 256
    points: list[tuple[float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._refit()

    @classmethod
    def restore(cls, window: float, saved: object, max_points: int = 256) -> UsageHistory:
        """Rebuild from saved ``[[time, used], ...]``, skipping whatever is not such a pair."""
        history = cls(window, max_points)
        if isinstance(saved, list):
            history.extend(
                (float(p[0]), float(p[1]))
                for p in saved
                if isinstance(p, list | tuple)
                and len(p) == 2
                and all(isinstance(x, int | float) and not isinstance(x, bool) for x in p)
            )
        return history

    def extend(self, points: Iterable[tuple[float, float]]) -> None:
        for at, used in sorted(points):
            self.add(at, used)

    def replace(self, points: Iterable[tuple[float, float]]) -> None:
        """Take these points (in time order) as the whole history."""
        self.points = list(points)
        self._refit()

    def add(self, at: float, used: float) -> bool:
        """Record one poll; whether the history changed."""
        points = self.points
        if points and at <= points[-1][0]:
            return False
        if points and used < points[-1][1]:
            points.clear()
        points.append((at, used))
        if len(points) == 1:
            self._refit()
            return True
        self._count(at, used, 1.0)
        first = 0  # the oldest point still in the window; the points are in time order
        while points[first][0] < at - self.window:
            first += 1
        first = max(first, len(points) - self.max_points)
        for old_at, old_used in points[:first]:
            self._count(old_at, old_used, -1.0)
        del points[:first]
        self._updates += 1
        if self._updates >= 4 * self.max_points:
            self._refit()
        return True

    def rate(self, min_points: int = 3) -> float | None:
        """Credits used per second, or ``None`` with fewer than ``min_points`` polls in the window: the
        slope of :func:`least_squares_slope`, from the running sums."""
        n = len(self.points)
        if n < max(min_points, 2):
            return None
        sxx = self._stt - self._st * self._st / n
        if sxx <= 0:
            return None
        return (self._stv - self._st * self._sv / n) / sxx

    def to_json(self) -> list[list[float]]:
        return [[round(at, 3), used] for at, used in self.points]

    def _refit(self) -> None:
        self._t0, self._v0 = self.points[0] if self.points else (0.0, 0.0)
        self._st = self._sv = self._stt = self._stv = 0.0
        self._updates = 0
        for at, used in self.points:
            self._count(at, used, 1.0)

    def _count(self, at: float, used: float, sign: float) -> None:
        t = at - self._t0
        v = used - self._v0
        self._st += sign * t
        self._sv += sign * v
        self._stt += sign * t * t
        self._stv += sign * t * v


@dataclass(frozen=True)
class Forecast:
    """A credit type's burn rate (credits per second) and time left (seconds, ``inf`` for never)."""

    rate: float | None
    runs_out_in: float | None

    @classmethod
    def of(cls, remaining: float, rate: float | None) -> Forecast:
        return cls(rate, runs_out_in(remaining, rate))

    def within(self, horizon: float) -> bool:
        """Whether the credits are forecast to run out in less than ``horizon`` seconds."""
        return self.runs_out_in is not None and self.runs_out_in < horizon


def sample_forecasts(previous: object, lines: Sequence[CreditLine], now: datetime) -> dict[str, Forecast]:
    """Per credit type of ``lines`` (summed), the forecast from the change since a ``previous`` sample
    (``{"fetched_at": ISO-8601, "lines": [...]}``): no rate without a usable earlier sample of the type, or
    when its used credits dropped (a new period)."""
    before_at, before = _read_sample(previous)
    elapsed = (now - before_at).total_seconds() if before_at is not None else 0.0
    forecasts = {}
    for credit_type in dict.fromkeys(line.credit_type for line in lines):
        summary = CreditSummary.of(list(lines), credit_type)
        rate = None
        if elapsed > 0 and credit_type in before and summary.used >= before[credit_type]:
            rate = (summary.used - before[credit_type]) / elapsed
        forecasts[credit_type] = Forecast.of(summary.remaining, rate)
    return forecasts


def _read_sample(sample: object) -> tuple[datetime | None, dict[str, float]]:
    """The time and per-type used credits of a sample; ``(None, {})`` for anything else."""
    if not isinstance(sample, dict):
        return None, {}
    try:
        fetched_at = datetime.fromisoformat(str(sample["fetched_at"]))
        used: dict[str, float] = {}
        for line in sample["lines"]:
            credit_type = str(line["credit_type"])
            used[credit_type] = used.get(credit_type, 0.0) + float(line["used_credits"])
    except (KeyError, TypeError, ValueError):
        return None, {}
    if fetched_at.tzinfo is None:
        return None, {}
    return fetched_at, used
