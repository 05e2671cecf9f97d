"""Waiters never get an answer older than what they already saw, nor an error from before they started.

Triggers and the shared poll on a real event loop against the fake Tamtam server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line, status_fault
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger
from tests.trigger_run import first_event

SHORT = [credit_line("Exports", used=900, total=1000)]  # 100 remaining
PLENTY = [credit_line("Exports", used=200, total=1000)]  # 800 remaining


async def test_a_trigger_started_after_a_failed_poll_does_not_get_its_error(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    fake_server.set_credits(PLENTY)
    fake_server.add_faults(status_fault(503))
    failed = await first_event(TamtamCreditsTrigger("Exports", 500, poll_interval=30))
    assert (failed["status"], failed["retryable"]) == ("error", True)
    # the task's retry defers again at once: a new trigger, well within the failed answer's interval
    retried = await first_event(TamtamCreditsTrigger("Exports", 500, poll_interval=30))
    assert retried["status"] == "success"
    assert fake_server.request_count == 2


async def test_waiters_of_the_failed_request_share_its_error(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    fake_server.latency = 0.2
    fake_server.add_faults(status_fault(503))
    events = await asyncio.gather(
        *(first_event(TamtamCreditsTrigger("Exports", 500, poll_interval=30)) for _ in range(10))
    )
    assert {event["status"] for event in events} == {"error"}
    assert fake_server.request_count == 1


async def test_a_deferred_sensor_never_acts_on_an_answer_older_than_its_own_check(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    poll = SharedCreditsPoll.for_connection("tamtam_default")
    fake_server.set_credits(PLENTY)
    await poll.get_credits(30)  # another trigger saw 800 a moment ago
    fake_server.set_credits(SHORT)
    checked_at = time.time()  # the sensor's worker check now sees 100 and defers
    event = await first_event(
        TamtamCreditsTrigger(
            "Exports", 500, poll_interval=30, end_time=time.time() + 0.3, not_before=checked_at
        )
    )
    assert event["status"] == "timeout"
    assert event["remaining"] == 100
    assert fake_server.request_count == 2


async def test_a_request_in_flight_since_before_the_check_is_not_its_answer(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    poll = SharedCreditsPoll.for_connection("tamtam_default")
    fake_server.set_credits(PLENTY)
    fake_server.latency = 0.3
    earlier = asyncio.create_task(poll.get_credits(30))  # sent before the check, answered after it
    await asyncio.sleep(0.1)
    checked_at = time.time()
    lines = await poll.get_credits(30, not_before=checked_at)
    assert earlier.done()  # it waited for the request in flight (one at a time) ...
    assert fake_server.request_count == 2  # ... and then sent its own
    assert SharedCreditsPoll.for_connection("tamtam_default").requests_sent == 2
    assert lines is not await earlier


async def test_sensors_deferring_together_still_share_one_request_per_interval(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(SHORT)
    fake_server.latency = 0.05
    checked_at = time.time()  # twenty sensors checked and deferred at about the same time
    interval, duration = 0.5, 1.6
    end = time.time() + duration
    triggers = [
        TamtamCreditsTrigger("Exports", 500, poll_interval=interval, end_time=end, not_before=checked_at)
        for _ in range(20)
    ]
    events = await asyncio.gather(*(first_event(trigger) for trigger in triggers))
    assert {event["status"] for event in events} == {"timeout"}
    # one request per elapsed interval, +1 for the first poll and +1 at the end; 20 pollers would make ~80
    assert fake_server.request_count <= duration / interval + 2


async def test_a_check_time_ahead_of_the_triggerer_clock_counts_as_now(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    poll = SharedCreditsPoll.for_connection("tamtam_default")
    lines = await asyncio.wait_for(poll.get_credits(30, not_before=time.time() + 3600), 10)
    assert lines[0].credit_type == "MaxKeyAccountsUnlocked"
    assert fake_server.request_count == 1


async def test_triggers_of_a_worker_with_a_clock_ahead_still_poll_and_share_requests(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(SHORT)
    fake_server.latency = 0.05
    ahead = time.time() + 3600  # the worker's clock is an hour ahead of the triggerer's
    interval = 0.3
    end = time.time() + 30

    async def deferred_at(offset: float) -> dict[str, Any]:
        await asyncio.sleep(offset)  # sensors defer at different moments within the first interval
        trigger = TamtamCreditsTrigger("Exports", 500, poll_interval=interval, end_time=end, not_before=ahead)
        return await first_event(trigger)

    async def top_up_later() -> None:
        await asyncio.sleep(1.0)
        fake_server.set_credits(PLENTY)

    started = time.monotonic()
    events, _ = await asyncio.gather(
        asyncio.gather(*(deferred_at(i * interval / 20) for i in range(20))), top_up_later()
    )
    elapsed = time.monotonic() - started
    assert {event["status"] for event in events} == {"success"}
    assert elapsed < 10  # about 1.5 s: they kept polling every interval, not an hour later
    assert fake_server.request_count <= elapsed / interval + 2
