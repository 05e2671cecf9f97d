"""TamtamCreditsEventTrigger: edge semantics, failures, secrets, shared polling, state store, example DAG.

Snapshot-level tests drive the trigger's own ``filter_shared_stream`` over a synthetic stream; everything
involving HTTP runs ``run()`` (or Airflow's real SharedStreamManager) against the fake Tamtam server.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from airflow.models.trigger import Trigger
from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_tamtam.exceptions import (
    TamtamAPIError,
    TamtamAuthError,
    TamtamConfigError,
    TamtamConnectionError,
    TamtamError,
)
from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.testing import FakeTamtamServer, status_fault
from airflow_provider_tamtam.triggers.credit_events import (
    HAS_SHARED_STREAMS,
    credit_snapshot,
    error_snapshot,
)
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsEventTrigger
from tests.conftest import API_KEY, JWT, REPO

CT = "MaxKeyAccountsUnlocked"
CLASSPATH = "airflow_provider_tamtam.triggers.tamtam.TamtamCreditsEventTrigger"
needs_shared_streams = pytest.mark.skipif(
    not HAS_SHARED_STREAMS, reason="this Airflow has no shared-stream API (added in 3.3)"
)


def lines(remaining: int, total: int = 5000, credit_type: str = CT) -> list[dict[str, object]]:
    return [
        {
            "credit_type": credit_type,
            "used_credits": total - remaining,
            "total_credits": total,
            "remaining_credits": remaining,
        }
    ]


LOW = lines(10)
HIGH = lines(4990)


def ok(*parts: list[dict[str, object]]) -> dict[str, Any]:
    """A successful poll snapshot made of these lines, built the way the poll loop builds it."""
    return credit_snapshot([CreditLine.model_validate(line) for part in parts for line in part])


def failed(exc: TamtamError | None = None) -> dict[str, Any]:
    return error_snapshot(exc or TamtamAPIError("Tamtam API answered HTTP 503", status=503))


async def as_stream(snapshots: Iterable[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for snapshot in snapshots:
        yield snapshot


async def fire(trigger: TamtamCreditsEventTrigger, snapshots: Iterable[dict[str, Any]]) -> list[Any]:
    """The payloads the trigger's filter yields over these snapshots."""
    return [event.payload async for event in trigger.filter_shared_stream(as_stream(snapshots))]


def event_trigger(**kwargs: Any) -> TamtamCreditsEventTrigger:
    kwargs.setdefault("credit_type", CT)
    kwargs.setdefault("threshold", 1000)
    return TamtamCreditsEventTrigger(**kwargs)


@contextlib.asynccontextmanager
async def shared_stream_consumers(
    manager: Any, consumers: list[Coroutine[Any, Any, None]]
) -> AsyncIterator[None]:
    """Run subscribers of a SharedStreamManager for the body of the block, then cancel them and stop it."""
    tasks = [asyncio.ensure_future(consumer) for consumer in consumers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await manager.stop_all()


async def run_until(
    trigger: TamtamCreditsEventTrigger, until: Callable[[], bool], timeout: float = 10.0
) -> list[TriggerEvent]:
    """Run ``trigger.run()`` until ``until()`` holds, then cancel it; re-raise what it raised."""
    events: list[TriggerEvent] = []

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event)

    task = asyncio.ensure_future(consume())
    deadline = time.monotonic() + timeout
    try:
        while not until() and not task.done():
            assert time.monotonic() < deadline, "timed out waiting for the trigger"
            await asyncio.sleep(0.005)
    finally:
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return events


async def run_to_failure(trigger: TamtamCreditsEventTrigger, timeout: float = 10.0) -> list[TriggerEvent]:
    events: list[TriggerEvent] = []

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event)

    await asyncio.wait_for(consume(), timeout)
    return events


class FakeStateStore:
    """In-memory stand-in for Airflow's asset state store accessor: the same async get/set interface."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        await asyncio.sleep(0)
        return self.data.get(key, default)

    async def aset(self, key: str, value: Any) -> None:
        await asyncio.sleep(0)
        if value is None:
            raise ValueError("Cannot set value as None")
        self.data[key] = json.loads(json.dumps(value))  # only JSON survives, as in the real store
        self.writes += 1


@pytest.fixture
def structlog_debug() -> Iterator[None]:
    """Let Airflow's structlog loggers emit DEBUG for the test, then put the configuration back."""
    from airflow.sdk._shared.logging.structlog import AirflowBoundLoggerFilteringAtDebug

    saved = structlog.get_config()
    structlog.configure(wrapper_class=AirflowBoundLoggerFilteringAtDebug)
    try:
        yield
    finally:
        structlog.configure(**saved)


# ---------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"condition": "above"},
            "condition must be one of 'at_least', 'below', 'runs_out_within', got 'above'",
        ),
        ({"threshold": -1}, "threshold must be >= 0, got -1"),
        ({"threshold": 2.5}, "threshold must be a whole number of credits >= 0 or a percentage"),
        ({"threshold": True}, "threshold must be a whole number of credits >= 0 or a percentage"),
        ({"threshold": "100"}, "or a percentage of the total such as '5%', got '100'"),
        ({"threshold": "five%"}, "got 'five%'"),
        ({"threshold": "-5%"}, "got '-5%'"),
        ({"threshold": "100.5%"}, "threshold percentage must be between 0% and 100%, got '100.5%'"),
        ({"poll_interval": 0}, "poll_interval must be a number of seconds > 0, got 0"),
        ({"poll_interval": -3.0}, "poll_interval must be a number of seconds > 0, got -3.0"),
        ({"poll_interval": float("nan")}, "poll_interval must be a number of seconds > 0"),
        ({"poll_interval": "60"}, "poll_interval must be a number of seconds > 0, got '60'"),
        ({"credit_type": ""}, "credit_type must be a non-empty string, got ''"),
        ({"credit_type": "  "}, "credit_type must be a non-empty string"),
        ({"max_consecutive_failures": 0}, "max_consecutive_failures must be a whole number >= 1, got 0"),
        ({"max_consecutive_failures": 2.0}, "max_consecutive_failures must be a whole number >= 1, got 2.0"),
        ({"tamtam_conn_id": ""}, "tamtam_conn_id must be a non-empty string"),
    ],
)
def test_bad_arguments_are_refused_with_a_precise_message(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TamtamConfigError) as info:
        event_trigger(**kwargs)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("threshold", [0, 1, 10**9, "0%", "5%", "2.5%", " 100 % ", "100%"])
def test_good_thresholds_are_accepted(threshold: int | str) -> None:
    assert event_trigger(threshold=threshold).threshold == threshold


# ---------------------------------------------------------------- edge semantics (the filter)


async def test_fires_on_crossing_only_and_rearms_after_one_false_poll() -> None:
    trigger = event_trigger(threshold=1000, condition="at_least")
    payloads = await fire(
        trigger,
        [ok(LOW), ok(lines(999)), ok(lines(1000)), ok(HIGH), ok(HIGH), ok(LOW), ok(HIGH), ok(HIGH)],
    )
    assert [p["remaining"] for p in payloads] == [1000, 4990]
    first = payloads[0]
    assert first == {
        "credit_type": CT,
        "remaining": 1000,
        "total": 5000,
        "threshold": 1000,
        "threshold_credits": 1000,
        "condition": "at_least",
        "tamtam_conn_id": "tamtam_default",
        "lines": lines(1000),
    }
    json.dumps(payloads)  # plain JSON, fit for an asset event's extra


async def test_fires_on_the_first_poll_when_the_condition_already_holds() -> None:
    assert len(await fire(event_trigger(), [ok(HIGH), ok(HIGH), ok(HIGH)])) == 1


async def test_a_condition_that_stays_true_never_fires_again() -> None:
    assert len(await fire(event_trigger(), [ok(HIGH)] * 50)) == 1


async def test_below_fires_when_falling_under_and_not_at_the_threshold() -> None:
    trigger = event_trigger(threshold=100, condition="below")
    payloads = await fire(
        trigger, [ok(HIGH), ok(lines(100)), ok(lines(99)), ok(lines(5)), ok(lines(100)), ok(lines(0))]
    )
    assert [p["remaining"] for p in payloads] == [99, 0]
    assert all(p["condition"] == "below" for p in payloads)


async def test_sums_every_line_of_the_type_and_ignores_other_types() -> None:
    trigger = event_trigger(threshold=1000)
    two_subscriptions = ok(lines(600, 1000), lines(500, 2000), lines(9999, 9999, "Exports"))
    payloads = await fire(trigger, [ok(lines(600, 1000), lines(9999, 9999, "Exports")), two_subscriptions])
    assert len(payloads) == 1
    assert payloads[0]["remaining"] == 1100
    assert payloads[0]["total"] == 3000
    assert payloads[0]["lines"] == lines(600, 1000) + lines(500, 2000)


async def test_fraction_threshold_is_a_share_of_the_summed_total() -> None:
    below = event_trigger(threshold="5%", condition="below")
    # 5 % of 2000 is 100: 100 is not below it, 99 is
    payloads = await fire(below, [ok(lines(60, 1000), lines(40, 1000)), ok(lines(60, 1000), lines(39, 1000))])
    assert [(p["remaining"], p["threshold"], p["threshold_credits"]) for p in payloads] == [(99, "5%", 100.0)]
    at_least = event_trigger(threshold="2.5%", condition="at_least")
    # 2.5 % of 1000 is 25, compared exactly
    assert [p["remaining"] for p in await fire(at_least, [ok(lines(24, 1000)), ok(lines(25, 1000))])] == [25]


async def test_missing_type_counts_as_zero() -> None:
    snapshots = [ok(lines(10, 10, "Exports")), ok(), ok(HIGH), ok()]
    # absolute thresholds: 0 remaining
    assert [p["remaining"] for p in await fire(event_trigger(threshold=1, condition="below"), snapshots)] == [
        0,
        0,
    ]
    assert await fire(event_trigger(threshold=1, condition="at_least"), snapshots[:2]) == []
    assert len(await fire(event_trigger(threshold=0, condition="at_least"), snapshots[:2])) == 1
    # a share of a total of 0 is 0 %: below 5 % holds, at least 5 % does not
    low = await fire(event_trigger(threshold="5%", condition="below"), snapshots)
    assert [(p["remaining"], p["total"], p["lines"]) for p in low] == [(0, 0, []), (0, 0, [])]
    assert await fire(event_trigger(threshold="5%", condition="at_least"), snapshots[:2]) == []


async def test_error_snapshots_neither_fire_nor_rearm() -> None:
    trigger = event_trigger(max_consecutive_failures=5)
    payloads = await fire(trigger, [ok(HIGH), failed(), failed(), ok(HIGH), failed(), ok(HIGH)])
    assert len(payloads) == 1


# ---------------------------------------------------------------- failures (the filter)


async def test_fewer_consecutive_failures_than_the_limit_do_not_fail(
    capfd: pytest.CaptureFixture[str],
) -> None:
    trigger = event_trigger(max_consecutive_failures=3)
    snapshots = [failed(), failed(), ok(LOW), failed(), failed(), ok(HIGH)]
    assert [p["remaining"] for p in await fire(trigger, snapshots)] == [4990]
    out = capfd.readouterr().out
    assert out.count("poll failed") == 4
    assert "poll failed (2 of 3 consecutive failures allowed)" in out


async def test_the_limit_of_consecutive_failures_fails_with_a_clear_message() -> None:
    trigger = event_trigger(tamtam_conn_id="tamtam_prod", max_consecutive_failures=3)
    with pytest.raises(TamtamError) as info:
        await fire(trigger, [ok(LOW), failed(), failed(), failed(), ok(HIGH)])
    message = str(info.value)
    assert "connection 'tamtam_prod' failed 3 consecutive polls" in message
    assert "last error: Tamtam API answered HTTP 503" in message


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (TamtamAuthError("Tamtam API answered HTTP 401 Unauthorized", status=401), TamtamAuthError),
        (TamtamConfigError("Tamtam connection 'x' is not defined"), TamtamConfigError),
        (TamtamAPIError("Tamtam API answered HTTP 404", status=404), TamtamError),
    ],
)
async def test_an_error_that_retrying_cannot_fix_fails_at_once(
    exc: TamtamError, expected: type[TamtamError]
) -> None:
    trigger = event_trigger(max_consecutive_failures=10)
    with pytest.raises(expected, match="stopped on an error that retrying cannot fix") as info:
        await fire(trigger, [failed(exc), ok(HIGH)])
    assert str(exc) in str(info.value)


async def test_a_transient_error_is_counted_not_fatal() -> None:
    trigger = event_trigger(max_consecutive_failures=2)
    payloads = await fire(trigger, [failed(TamtamConnectionError("Could not reach Tamtam")), ok(HIGH)])
    assert len(payloads) == 1


# ---------------------------------------------------------------- run() against the fake server


async def test_run_fires_on_each_crossing_against_the_api(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.schedule_credits([(2, LOW), (3, HIGH), (2, LOW), (0, HIGH)])
    trigger = event_trigger(poll_interval=0.05)
    events = await run_until(trigger, lambda: fake_server.request_count >= 12)
    assert [e.payload["remaining"] for e in events] == [4990, 4990]
    assert [e.payload["tamtam_conn_id"] for e in events] == ["tamtam_default"] * 2


async def test_run_keeps_polling_at_the_interval_through_failures(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    fake_server.add_faults(*[status_fault(503)] * 100)
    trigger = event_trigger(poll_interval=0.1, max_consecutive_failures=100)
    await run_until(trigger, lambda: fake_server.request_count >= 5)
    # it keeps polling through failures, one request per interval, never a tight loop on errors: every gap
    # between two requests is at least about an interval (a slow machine only makes the gaps longer)
    arrivals = [request.timestamp for request in fake_server.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) >= 5
    assert min(gaps) >= 0.08, gaps


async def test_run_survives_one_failure_less_than_the_limit_and_fails_at_the_limit(
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    fake_server.add_faults(status_fault(503), status_fault(502))
    fake_server.set_credits(HIGH)
    trigger = event_trigger(poll_interval=0.02, max_consecutive_failures=3)
    events: list[TriggerEvent] = []

    async def consume() -> None:
        async for event in trigger.run():
            events.append(event)
            fake_server.add_faults(status_fault(503), status_fault(500), status_fault(504))

    with pytest.raises(TamtamError) as info:
        await asyncio.wait_for(consume(), 10)
    assert len(events) == 1  # recovered after 2 failures, fired, then failed on the 3rd in a row
    assert fake_server.request_count == 6
    message = str(info.value)
    assert "connection 'tamtam_default' failed 3 consecutive polls" in message
    assert "HTTP 504" in message
    assert API_KEY not in message
    out = capfd.readouterr().out
    assert out.count("poll failed") == 4


async def test_run_fails_at_once_on_a_rejected_key(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(password="tt-wrong-key-0000")
    trigger = event_trigger(poll_interval=30.0)
    started = time.monotonic()
    with pytest.raises(TamtamAuthError) as info:
        await run_to_failure(trigger)
    assert time.monotonic() - started < 5
    assert fake_server.request_count == 1
    message = str(info.value)
    assert "connection 'tamtam_default' stopped on an error that retrying cannot fix" in message
    assert "HTTP 401" in message
    assert "tt-wrong-key-0000" not in message


async def test_a_recreated_watcher_does_not_resend_a_failed_request_within_the_interval(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    # The triggerer re-creates a failed watcher about once a second; the connection's shared poll keeps
    # the failed answer for one interval, so the API still sees at most one request per interval.
    tamtam_conn(password="tt-wrong-key-0000")
    for _ in range(5):
        with pytest.raises(TamtamAuthError):
            await run_to_failure(event_trigger(poll_interval=30.0))
    assert fake_server.request_count == 1


async def test_run_fails_at_once_on_a_missing_connection(fake_server: FakeTamtamServer) -> None:
    with pytest.raises(TamtamConfigError, match="'tamtam_nowhere' is not defined"):
        await run_to_failure(event_trigger(tamtam_conn_id="tamtam_nowhere", poll_interval=30.0))
    assert fake_server.request_count == 0


@pytest.mark.parametrize(("secret", "auth_type"), [(API_KEY, "api_key"), (JWT, "bearer")])
async def test_secrets_stay_out_of_events_and_debug_logs(
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    structlog_debug: None,
    secret: str,
    auth_type: str,
) -> None:
    tamtam_conn(password=secret, extra={"auth_type": auth_type, "max_retries": 0})
    fake_server.schedule_credits([(1, HIGH), (1, LOW), (0, HIGH)])
    fake_server.add_faults(status_fault(503))
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)
    trigger = event_trigger(poll_interval=0.02, max_consecutive_failures=2)
    events = await run_until(trigger, lambda: fake_server.request_count >= 5)
    fake_server.add_faults(status_fault(401))
    with pytest.raises(TamtamAuthError) as info:
        await run_to_failure(trigger)
    out, err = capfd.readouterr()
    assert len(events) == 2
    assert "firing" in out  # the trigger's own logs were captured
    assert "condition at_least 1000 holds, armed True" in out  # DEBUG was on
    assert any(r.name.startswith("urllib3") for r in caplog.records)
    for text in [
        json.dumps([e.payload for e in events]),
        repr(events),
        str(info.value),
        caplog.text,
        out,
        err,
    ]:
        assert secret not in text


# ---------------------------------------------------------------- serialization and sharing


@pytest.mark.parametrize(
    "kwargs",
    [
        {"credit_type": CT, "threshold": 1000},
        {
            "credit_type": "Exports",
            "threshold": "5%",
            "condition": "below",
            "tamtam_conn_id": "tamtam_prod",
            "poll_interval": 60,
            "max_consecutive_failures": 3,
        },
    ],
)
def test_serialize_round_trip(kwargs: dict[str, Any]) -> None:
    classpath, serialized = TamtamCreditsEventTrigger(**kwargs).serialize()
    assert classpath == CLASSPATH
    module, name = classpath.rsplit(".", 1)
    assert getattr(importlib.import_module(module), name) is TamtamCreditsEventTrigger
    assert set(serialized) == {
        "credit_type",
        "threshold",
        "condition",
        "tamtam_conn_id",
        "poll_interval",
        "max_consecutive_failures",
    }
    plain = json.loads(json.dumps(serialized))
    assert plain == serialized
    again = TamtamCreditsEventTrigger(**plain)
    assert again.serialize() == (classpath, serialized)
    assert again.state_key == TamtamCreditsEventTrigger(**kwargs).state_key
    # Airflow stores a watcher's kwargs in its database and, on every parse of the DAG file, compares the hash
    # of the file's trigger with the stored one's: equal for the same configuration (or the watcher would be
    # replaced on each parse), different once the configuration changes.
    stored = Trigger(classpath, serialized).kwargs
    assert TamtamCreditsEventTrigger(**stored).serialize() == (classpath, serialized)
    assert BaseEventTrigger.hash(classpath, stored) == BaseEventTrigger.hash(classpath, serialized)
    changed = TamtamCreditsEventTrigger(**{**kwargs, "threshold": 7}).serialize()
    assert BaseEventTrigger.hash(*changed) != BaseEventTrigger.hash(classpath, serialized)


@needs_shared_streams
def test_shared_stream_key_depends_on_connection_and_interval_only() -> None:
    base = event_trigger(poll_interval=60)
    assert base.shared_stream_key() == ("tamtam-credits", "tamtam_default", 60.0)
    same = [
        event_trigger(poll_interval=60.0, credit_type="Exports", threshold="5%", condition="below"),
        event_trigger(poll_interval=60, max_consecutive_failures=1),
    ]
    different = [event_trigger(poll_interval=61), event_trigger(poll_interval=60, tamtam_conn_id="tamtam_b")]
    assert all(t.shared_stream_key() == base.shared_stream_key() for t in same)
    assert all(t.shared_stream_key() != base.shared_stream_key() for t in different)
    # the triggerer recreates watchers from their stored kwargs: they must still land in the same group
    recreated = TamtamCreditsEventTrigger(**Trigger(*base.serialize()).kwargs)
    assert recreated.shared_stream_key() == base.shared_stream_key()


@pytest.mark.skipif(HAS_SHARED_STREAMS, reason="only without the shared-stream API")
def test_no_shared_stream_key_without_the_shared_stream_api() -> None:
    assert event_trigger().shared_stream_key() is None


async def test_twenty_watchers_cost_about_one_request_per_interval_with_run(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(HIGH)
    fake_server.latency = 0.02
    interval = 0.1
    triggers = [event_trigger(poll_interval=interval, threshold=1000 + i) for i in range(20)]
    events: list[list[TriggerEvent]] = [[] for _ in triggers]

    async def consume(i: int) -> None:
        async for event in triggers[i].run():
            events[i].append(event)

    tasks = [asyncio.ensure_future(consume(i)) for i in range(len(triggers))]
    started = time.monotonic()
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - started
    # each poll takes interval + latency; 20 independent watchers would send 20 times as many
    assert 5 <= fake_server.request_count <= elapsed / interval + 1
    assert [len(e) for e in events] == [1] * 20


@needs_shared_streams
async def test_real_shared_stream_manager_polls_once_for_twenty_watchers(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    tamtam_conn()
    tamtam_conn("tamtam_other")
    fake_server.schedule_credits([(2, LOW), (3, HIGH), (2, LOW), (0, HIGH)])
    interval = 0.05
    manager = SharedStreamManager()
    triggers = [event_trigger(poll_interval=interval, threshold=1000 + i) for i in range(20)]
    events: list[list[TriggerEvent]] = [[] for _ in triggers]
    keys = {t.shared_stream_key() for t in triggers}
    assert len(keys) == 1

    async def consume(i: int) -> None:
        trigger = triggers[i]
        key = trigger.shared_stream_key()
        try:
            stream = manager.subscribe(trigger_id=i, trigger=trigger, key=key)
            async for event in trigger.filter_shared_stream(stream):
                events[i].append(event)
        finally:
            await manager.unsubscribe(i, key)

    started = time.monotonic()
    async with shared_stream_consumers(manager, [consume(i) for i in range(len(triggers))]):
        while fake_server.request_count < 12:
            assert time.monotonic() - started < 10, "the shared poll did not progress"
            await asyncio.sleep(0.005)
    elapsed = time.monotonic() - started
    assert fake_server.request_count <= elapsed / interval + 1
    assert [[e.payload["remaining"] for e in es] for es in events] == [[4990, 4990]] * 20
    assert [es[0].payload["threshold"] for es in events] == [1000 + i for i in range(20)]


@needs_shared_streams
async def test_shared_stream_members_fail_alone_on_their_own_limit(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    from airflow.triggers.shared_stream import SharedStreamManager

    tamtam_conn(extra={"max_retries": 0})
    fake_server.add_faults(*[status_fault(503)] * 3)
    manager = SharedStreamManager()
    strict = event_trigger(poll_interval=0.03, max_consecutive_failures=2)
    patient = event_trigger(poll_interval=0.03, max_consecutive_failures=5, threshold=2000)
    results: dict[str, Any] = {}

    async def consume(name: str, trigger: TamtamCreditsEventTrigger, trigger_id: int) -> None:
        key = trigger.shared_stream_key()
        try:
            async for event in trigger.filter_shared_stream(
                manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
            ):
                results[name] = event.payload
        except TamtamError as exc:
            results[name] = exc
        finally:
            await manager.unsubscribe(trigger_id, key)

    async with shared_stream_consumers(
        manager, [consume("strict", strict, 1), consume("patient", patient, 2)]
    ):
        for _ in range(400):
            if "patient" in results:
                break
            await asyncio.sleep(0.005)
    assert isinstance(results["strict"], TamtamError)
    assert "failed 2 consecutive polls" in str(results["strict"])
    assert results["patient"]["remaining"] == 4990


# ---------------------------------------------------------------- armed state across restarts


async def test_state_store_prevents_a_second_fire_after_the_trigger_is_recreated(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(HIGH)
    store = FakeStateStore()
    first = event_trigger(poll_interval=0.02)
    first.asset_state_store = store  # type: ignore[assignment]
    events = await run_until(first, lambda: fake_server.request_count >= 3)
    assert len(events) == 1
    assert store.data == {first.state_key: {"armed": False}}

    # a triggerer restart: a new instance from the serialized kwargs, the same asset state store
    _, kwargs = first.serialize()
    second = TamtamCreditsEventTrigger(**kwargs)
    second.asset_state_store = store  # type: ignore[assignment]
    assert await run_until(second, lambda: fake_server.request_count >= 6) == []

    # the condition goes false for a poll, then true again: a new crossing fires
    fake_server.schedule_credits([(1, LOW), (0, HIGH)])
    third = TamtamCreditsEventTrigger(**kwargs)
    third.asset_state_store = store  # type: ignore[assignment]
    events = await run_until(third, lambda: fake_server.request_count >= 10)
    assert len(events) == 1
    assert store.data[first.state_key] == {"armed": False}
    assert store.writes == 3  # fired, re-armed, fired: written on changes only


async def test_state_store_is_keyed_by_what_the_condition_means() -> None:
    store = FakeStateStore()
    first = event_trigger(poll_interval=10)
    first.asset_state_store = store  # type: ignore[assignment]
    assert len(await fire(first, [ok(HIGH)])) == 1
    # another interval or failure limit is the same condition: no second fire for the same crossing
    same = event_trigger(poll_interval=20, max_consecutive_failures=2)
    same.asset_state_store = store  # type: ignore[assignment]
    assert await fire(same, [ok(HIGH)]) == []
    # another threshold is a different condition with its own state
    other = event_trigger(poll_interval=10, threshold=999)
    other.asset_state_store = store  # type: ignore[assignment]
    assert len(await fire(other, [ok(HIGH)])) == 1
    assert len(store.data) == 2


async def test_without_a_state_store_the_armed_state_lives_in_memory() -> None:
    first = event_trigger()
    assert len(await fire(first, [ok(HIGH), ok(HIGH)])) == 1
    assert len(await fire(first, [ok(HIGH)])) == 0  # the same instance remembers
    recreated = TamtamCreditsEventTrigger(**first.serialize()[1])
    assert len(await fire(recreated, [ok(HIGH)])) == 1  # a new one cannot


class BrokenStore:
    async def aget(self, key: str, default: Any = None) -> Any:
        raise ValueError("Task has 2 concrete inlets and outlets")

    async def aset(self, key: str, value: Any) -> None:
        raise AssertionError("not reached")


async def test_an_unusable_state_store_falls_back_to_memory_with_a_warning(
    capfd: pytest.CaptureFixture[str],
) -> None:
    trigger = event_trigger()
    trigger.asset_state_store = BrokenStore()  # type: ignore[assignment]
    assert len(await fire(trigger, [ok(HIGH), ok(LOW), ok(HIGH)])) == 2
    assert "asset state store is unusable (ValueError" in capfd.readouterr().out


@needs_shared_streams
async def test_real_accessors_for_several_assets_fall_back_to_memory(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # One trigger watching two assets gets accessors that need an asset named for each call.
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import AssetStateStoreAccessors

    trigger = event_trigger()
    trigger.asset_state_store = AssetStateStoreAccessors(inlets=[Asset(name="a"), Asset(name="b")])
    assert len(await fire(trigger, [ok(HIGH), ok(HIGH)])) == 1
    assert "asset state store is unusable" in capfd.readouterr().out


# ---------------------------------------------------------------- the event loop stays free


async def test_run_never_blocks_the_event_loop(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.latency = 0.2
    triggers = [event_trigger(poll_interval=0.05, threshold=i) for i in range(20)]
    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            worst = max(worst, time.perf_counter() - before - 0.005)

    async def consume(trigger: TamtamCreditsEventTrigger) -> None:
        async for _ in trigger.run():
            pass

    tasks = [asyncio.ensure_future(ticker())] + [asyncio.ensure_future(consume(t)) for t in triggers]
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert fake_server.request_count >= 3
    assert worst < 0.1


# ---------------------------------------------------------------- example DAG


def _dagbag(path: Path) -> Any:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag  # type: ignore[no-redef]
    return DagBag(dag_folder=str(path))


def test_example_dag_parses_without_calling_the_api(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    bag = _dagbag(REPO / "example_dags" / "tamtam_run_when_topped_up.py")
    assert bag.import_errors == {}
    assert set(bag.dags) == {"tamtam_import_backlog", "tamtam_credits_low_alert"}
    watched: dict[str, list[tuple[str, str, Any]]] = {}
    for dag in bag.dags.values():
        for asset in dag.timetable.asset_condition.objects:
            for watcher in asset.watchers:
                assert isinstance(watcher.trigger, TamtamCreditsEventTrigger)
                watched.setdefault(dag.dag_id, []).append(
                    (watcher.trigger.credit_type, watcher.trigger.condition, watcher.trigger.threshold)
                )
                assert watcher.trigger.tamtam_conn_id == "tamtam_default"
                assert watcher.trigger.poll_interval == 300  # one shared request per interval
    assert [w[1] for w in watched["tamtam_import_backlog"]] == ["at_least"]
    assert sorted(watched["tamtam_credits_low_alert"]) == [
        ("Exports", "runs_out_within", "3d"),
        (CT, "below", "5%"),
    ]
    assert fake_server.request_count == 0
