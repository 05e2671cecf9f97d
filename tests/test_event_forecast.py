"""The watcher's ``runs_out_within`` condition: burn rate from the poll history, edges, history in the store.

Snapshot-level tests feed snapshots with chosen times to the trigger's own filter; the rest runs ``run()``
against the fake Tamtam server, whose usage rises from one answer to the next.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_tamtam.exceptions import TamtamConfigError
from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line
from airflow_provider_tamtam.triggers.credit_events import credit_snapshot
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsEventTrigger
from tests.test_event_trigger import FakeStateStore, fire, run_until

CT = "Exports"
T0 = 1_800_000_000.0


def at(seconds: float, used: int, total: int = 10_000) -> dict[str, Any]:
    """A successful poll ``seconds`` after T0 with ``used`` Exports credits used."""
    line = CreditLine.model_validate(credit_line(CT, used=used, total=total))
    return credit_snapshot([line], fetched_at=T0 + seconds)


def forecast(**kwargs: Any) -> TamtamCreditsEventTrigger:
    kwargs.setdefault("credit_type", CT)
    kwargs.setdefault("threshold", "3h")
    kwargs.setdefault("condition", "runs_out_within")
    return TamtamCreditsEventTrigger(**kwargs)


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("threshold", "seconds"), [(10_800, 10_800), (90.5, 90.5), (timedelta(hours=3), 10_800), ("3h", 10_800)]
)
def test_horizons_in_every_form(threshold: object, seconds: float) -> None:
    trigger = forecast(threshold=threshold)
    assert trigger._rule.horizon == seconds  # type: ignore[union-attr]


@pytest.mark.parametrize("threshold", [0, -60, "3w", "soon", "5%", True, None, float("inf"), timedelta(0)])
def test_bad_horizons_are_refused_at_construction(threshold: object) -> None:
    with pytest.raises(TamtamConfigError, match="threshold must be a duration > 0"):
        forecast(threshold=threshold)


@pytest.mark.parametrize("window", [0, -1, "never", float("nan")])
def test_bad_forecast_windows_are_refused(window: object) -> None:
    with pytest.raises(TamtamConfigError, match="forecast_window must be a duration > 0"):
        forecast(forecast_window=window)


def test_serializes_to_plain_json_with_its_window_and_keeps_level_watchers_unchanged() -> None:
    _, kwargs = forecast(threshold=timedelta(days=3), forecast_window=3600).serialize()
    assert kwargs["threshold"] == 259_200.0
    assert kwargs["forecast_window"] == 3600.0
    assert json.loads(json.dumps(kwargs)) == kwargs
    again = TamtamCreditsEventTrigger(**kwargs)
    assert again.serialize()[1] == kwargs
    assert again.state_key == forecast(threshold=timedelta(days=3), forecast_window=3600).state_key
    assert again.state_key != forecast(threshold=timedelta(days=3), forecast_window=7200).state_key
    level = TamtamCreditsEventTrigger(credit_type=CT, threshold=5, condition="below").serialize()[1]
    assert "forecast_window" not in level


# ---------------------------------------------------------------- the condition (the filter)


async def test_rising_usage_fires_once_with_a_sensible_forecast() -> None:
    # 10 credits a minute; 10 000 total
    snapshots = [at(60 * i, 8000 + 10 * i) for i in range(8)]
    payloads = await fire(forecast(threshold="4h"), snapshots)
    assert len(payloads) == 1  # keeps holding afterwards, but fires once per crossing
    event = payloads[0]
    # the third poll is the first with a rate: 2000 - 20 remaining at 1/6 credit per second, 11 880 s
    assert event["remaining"] == 1980
    assert event["runs_out_in"] == pytest.approx(1980 * 6)
    assert event["burn_per_hour"] == pytest.approx(600)
    assert event["horizon"] == 14_400
    assert event["threshold"] == "4h"
    assert event["threshold_credits"] == pytest.approx(2400)  # what the burn uses up within the horizon
    assert event["condition"] == "runs_out_within"
    json.dumps(payloads)


async def test_a_forecast_just_beyond_the_horizon_does_not_fire() -> None:
    # 1980 left at 1/6 per second runs out in 11 880 s: a horizon of 11 000 s is not reached yet
    payloads = await fire(forecast(threshold=11_000), [at(60 * i, 8000 + 10 * i) for i in range(3)])
    assert payloads == []
    payloads = await fire(forecast(threshold=12_000), [at(60 * i, 8000 + 10 * i) for i in range(3)])
    assert [p["remaining"] for p in payloads] == [1980]


async def test_flat_and_slow_usage_never_fire() -> None:
    flat = [at(60 * i, 9990) for i in range(20)]  # 10 left, nothing used
    assert await fire(forecast(threshold="3d"), flat) == []
    slow = [at(3600 * i, 1000 + i) for i in range(6)]  # 1 an hour, 9 000 left: a year
    assert await fire(forecast(threshold="3d", forecast_window="1d"), slow) == []


async def test_two_polls_are_not_enough_for_a_rate() -> None:
    assert await fire(forecast(), [at(0, 9000), at(60, 9900)]) == []


async def test_a_new_period_clears_the_history_and_rearms() -> None:
    rising = [at(60 * i, 8000 + 10 * i) for i in range(4)]
    reset = [at(240 + 60 * i, 10 + 10 * i) for i in range(3)]  # used dropped: a renewed period
    trigger = forecast(threshold="1d")
    payloads = await fire(trigger, rising + reset[:2])
    assert len(payloads) == 1
    # after the drop only 2 polls of the new period: no rate, the condition does not hold, armed again
    assert trigger._state.armed is True
    assert trigger._rule.history is not None
    assert len(trigger._rule.history.points) == 2
    payloads = await fire(trigger, reset[2:])  # the third poll of the new period: a rate, fires again
    assert [p["remaining"] for p in payloads] == [9970]


async def test_polls_older_than_the_window_do_not_count() -> None:
    snapshots = [at(600 * i, 8000 + 100 * i) for i in range(5)]  # every 10 min, 600 s window
    assert await fire(forecast(threshold="1d", forecast_window=900), snapshots) == []
    assert len(await fire(forecast(threshold="1d", forecast_window=1800), snapshots)) == 1


async def test_zero_or_negative_burn_never_holds_even_with_nothing_left() -> None:
    zero = [at(60 * i, 10_000) for i in range(5)]
    assert await fire(forecast(), zero) == []


# ---------------------------------------------------------------- history in the asset state store


async def test_history_survives_a_restart_so_the_rate_is_not_lost_and_nothing_fires_twice() -> None:
    store = FakeStateStore()
    first = forecast(threshold="4h")
    first.asset_state_store = store  # type: ignore[assignment]
    assert await fire(first, [at(0, 8000), at(60, 8010)]) == []
    saved = store.data[first.state_key]
    assert saved == {"armed": True, "history": [[T0, 8000], [T0 + 60, 8010]]}
    # restarted: the third poll is enough, because the first two were saved
    second = TamtamCreditsEventTrigger(**first.serialize()[1])
    second.asset_state_store = store  # type: ignore[assignment]
    assert [p["remaining"] for p in await fire(second, [at(120, 8020)])] == [1980]
    # restarted again while it still holds: no second event for the same crossing
    third = TamtamCreditsEventTrigger(**first.serialize()[1])
    third.asset_state_store = store  # type: ignore[assignment]
    assert await fire(third, [at(180, 8030)]) == []
    assert store.data[first.state_key]["armed"] is False
    assert len(store.data[first.state_key]["history"]) == 4


async def test_the_saved_history_is_bounded() -> None:
    store = FakeStateStore()
    trigger = forecast(forecast_window="30d")
    trigger.asset_state_store = store  # type: ignore[assignment]
    await fire(trigger, [at(60 * i, 1000) for i in range(600)])
    assert len(store.data[trigger.state_key]["history"]) == 256


# ---------------------------------------------------------------- run() against the fake server


async def test_run_fires_once_on_rising_usage_from_the_api(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    steps = [(1, [credit_line(CT, used=1000 + 100 * i, total=100_000)]) for i in range(30)]
    fake_server.schedule_credits([*steps, (0, steps[-1][1])])
    trigger = forecast(threshold="1h", poll_interval=0.05)
    events = await run_until(trigger, lambda: fake_server.request_count >= 12)
    assert len(events) == 1
    payload = events[0].payload
    # ~100 credits per 0.05 s interval (2 000 a second, less with the request time): ~50 s for ~98 700
    assert 5 < payload["runs_out_in"] < 500
    assert payload["runs_out_in"] == pytest.approx(payload["remaining"] / (payload["burn_per_hour"] / 3600))
    assert payload["horizon"] == 3600


async def test_mixed_conditions_still_share_one_request_per_interval(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits([credit_line(CT, used=10, total=100)])
    interval = 0.1
    triggers = [forecast(poll_interval=interval, threshold=f"{i + 1}h") for i in range(10)]
    triggers += [
        TamtamCreditsEventTrigger(credit_type=CT, threshold=i, poll_interval=interval) for i in range(10)
    ]

    async def consume(trigger: TamtamCreditsEventTrigger) -> None:
        async for _ in trigger.run():
            pass

    tasks = [asyncio.ensure_future(consume(t)) for t in triggers]
    started = time.monotonic()
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert 3 <= fake_server.request_count <= (time.monotonic() - started) / interval + 1
