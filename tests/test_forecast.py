"""The forecast arithmetic: horizons, the least-squares burn rate, run-out times and their formatting."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone

import pytest

from airflow_provider_tamtam.exceptions import TamtamConfigError
from airflow_provider_tamtam.forecast import (
    Forecast,
    UsageHistory,
    format_duration,
    format_rate,
    least_squares_slope,
    parse_horizon,
    runs_out_in,
    sample_forecasts,
)
from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.testing import credit_line


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1, 1.0),
        (0.5, 0.5),
        (timedelta(hours=2), 7200.0),
        ("45s", 45.0),
        ("90m", 5400.0),
        ("36h", 129600.0),
        ("3d", 259200.0),
        (" 1.5 h ", 5400.0),
    ],
)
def test_horizons_in_every_accepted_form(value: object, seconds: float) -> None:
    assert parse_horizon(value) == seconds


@pytest.mark.parametrize(
    "value",
    [0, -5, 0.0, float("inf"), float("nan"), True, None, "", "3", "3w", "-3d", "0h", "d", timedelta(0), [3]],
)
def test_bad_horizons_are_refused_naming_the_argument(value: object) -> None:
    with pytest.raises(TamtamConfigError) as info:
        parse_horizon(value, "fail_if_runs_out_within")
    assert str(info.value).startswith("fail_if_runs_out_within must be a duration > 0")
    assert repr(value) in str(info.value)


def test_slope_is_the_least_squares_fit() -> None:
    # exact line: 2 credits per second
    assert least_squares_slope([(100.0, 10.0), (101.0, 12.0), (103.0, 16.0)]) == pytest.approx(2.0)
    # noisy points: the textbook fit of (0,0),(1,1),(2,1),(3,3) is 0.9
    assert least_squares_slope([(0.0, 0.0), (1.0, 1.0), (2.0, 1.0), (3.0, 3.0)]) == pytest.approx(0.9)
    # epoch-sized times keep their precision
    t = 1.8e9
    assert least_squares_slope([(t, 0.0), (t + 60, 1.0), (t + 120, 2.0)]) == pytest.approx(1 / 60)
    assert least_squares_slope([(5.0, 1.0)]) is None
    assert least_squares_slope([(5.0, 1.0), (5.0, 3.0)]) is None


def test_runs_out_in() -> None:
    assert runs_out_in(100, 2.0) == 50.0
    assert runs_out_in(0, 2.0) == 0.0
    assert runs_out_in(100, 0.0) == math.inf
    assert runs_out_in(100, -1.0) == math.inf
    assert runs_out_in(100, None) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (math.inf, "never"),
        (0, "0s"),
        (45, "45s"),
        (90, "1m 30s"),
        (3600, "1h"),
        (2 * 86400 + 4 * 3600 + 59, "2d 4h"),
        (2 * 86400 + 5 * 60, "2d"),
        (400 * 86400, "400d"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_rate_per_day() -> None:
    assert format_rate(None) == "-"
    assert format_rate(0.0) == "0"
    assert format_rate(1 / 86400) == "1"
    assert format_rate(1.5 / 86400) == "1.5"
    assert format_rate(120 / 3600) == "2880"


def test_history_keeps_the_window_resets_on_a_drop_and_is_bounded() -> None:
    history = UsageHistory(window=100)
    for at, used in [(0, 10), (50, 20), (100, 30), (100, 31), (120, 40)]:
        history.add(at, used)
    assert history.points == [(50, 20), (100, 30), (120, 40)]  # (0, 10) left the window; repeat ignored
    assert history.rate() == pytest.approx(least_squares_slope(history.points))
    history.add(130, 5)  # a new period
    assert history.points == [(130, 5)]
    assert history.rate() is None
    small = UsageHistory(window=1e9, max_points=4)
    for i in range(10):
        small.add(i, i)
    assert small.points == [(6, 6), (7, 7), (8, 8), (9, 9)]
    assert UsageHistory.restore(1e9, small.to_json(), 4).points == small.points
    assert UsageHistory.restore(10, [[1, 2], "x", [True, 3], [2]]).points == [(1.0, 2.0)]


def test_sample_forecasts_per_type_from_the_previous_sample() -> None:
    now = datetime(2026, 3, 2, tzinfo=timezone.utc)
    lines = [
        CreditLine.model_validate(line)
        for line in (
            credit_line("A", used=300, total=1000),
            credit_line("A", used=100, total=1000),  # two subscriptions: summed, 1600 remaining
            credit_line("B", used=5, total=10),
            credit_line("C", used=50, total=100),
            credit_line("New", used=1, total=10),
        )
    ]
    previous = {
        "fetched_at": "2026-03-01T00:00:00+00:00",
        "lines": [
            credit_line("A", used=200, total=2000),
            credit_line("B", used=5, total=10),
            credit_line("C", used=90, total=100),  # used dropped: a new period
        ],
    }
    forecasts = sample_forecasts(previous, lines, now)
    assert forecasts["A"] == Forecast(200 / 86400, 1600 / (200 / 86400))  # 8 days
    assert forecasts["B"] == Forecast(0.0, math.inf)
    assert forecasts["C"] == Forecast(None, None)
    assert forecasts["New"] == Forecast(None, None)
    for junk in (None, [], {"fetched_at": "yesterday", "lines": []}, {"lines": []}, {"fetched_at": 5}):
        assert set(sample_forecasts(junk, lines, now).values()) == {Forecast(None, None)}
    naive = {**previous, "fetched_at": "2026-03-01T00:00:00"}
    later = {**previous, "fetched_at": "2026-03-03T00:00:00+00:00"}
    for unusable in (naive, later):
        assert sample_forecasts(unusable, lines, now)["A"] == Forecast(None, None)


def test_the_running_fit_matches_a_fresh_fit_through_trims_resets_and_refits() -> None:
    rng = random.Random(7)
    history = UsageHistory(window=3000, max_points=50)
    at, used = 1.8e9, 2_000_000_000.0
    for step in range(3000):
        at += rng.uniform(1, 120)
        used = used + rng.randint(0, 40) if step % 700 else used / 2  # now and then a new period
        history.add(at, used)
        if len(history.points) >= 3:
            assert history.rate() == pytest.approx(least_squares_slope(history.points), rel=1e-9, abs=1e-12)
    assert len(history.points) <= 50
