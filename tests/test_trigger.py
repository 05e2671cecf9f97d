"""TamtamCreditsTrigger and the shared poll, run on a real event loop against the fake Tamtam server."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable

import pytest

from airflow_provider_tamtam.exceptions import TamtamAPIError
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line, status_fault
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger
from tests.conftest import API_KEY
from tests.trigger_run import first_event

SHORT = [credit_line("Exports", used=9, total=10)]
ENOUGH = [credit_line("Exports", used=0, total=10)]


def test_serialize_round_trip() -> None:
    trigger = TamtamCreditsTrigger(
        "Exports",
        5,
        "tamtam_x",
        poll_interval=2.5,
        end_time=1_900_000_000.0,
        not_before=1_899_999_000.5,
        credits_needed=3,
        reservation_timeout=60.0,
        gate_id="gate-1",
        waiting_since=1_800_000_000.0,
    )
    path, kwargs = trigger.serialize()
    assert path == "airflow_provider_tamtam.triggers.tamtam.TamtamCreditsTrigger"
    module, name = path.rsplit(".", 1)
    recreated = getattr(__import__(module, fromlist=[name]), name)(**kwargs)
    assert recreated.serialize() == (path, kwargs)
    assert kwargs == {
        "credit_type": "Exports",
        "min_credits": 5,
        "tamtam_conn_id": "tamtam_x",
        "poll_interval": 2.5,
        "end_time": 1_900_000_000.0,
        "not_before": 1_899_999_000.5,
        "credits_needed": 3,
        "reservation_timeout": 60.0,
        "gate_id": "gate-1",
        "waiting_since": 1_800_000_000.0,
    }


async def test_success_event_carries_the_matching_lines(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.schedule_credits([(2, SHORT), (0, ENOUGH)])
    event = await first_event(
        TamtamCreditsTrigger("Exports", 5, poll_interval=0.05, end_time=time.time() + 30)
    )
    assert event == {"status": "success", "remaining": 10, "lines": ENOUGH, "reserved": 0}
    assert fake_server.request_count == 3


async def test_auth_error_event_is_final_and_free_of_secrets(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(password=f"{API_KEY}-revoked")
    event = await first_event(TamtamCreditsTrigger("Exports", 5, poll_interval=0.05))
    assert event["status"] == "error"
    assert event["retryable"] is False
    assert "HTTP 401" in event["message"]
    assert API_KEY not in repr(event)
    assert fake_server.request_count == 1


async def test_exhausted_transient_errors_give_a_retryable_error_event(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    fake_server.add_faults(status_fault(503))
    event = await first_event(TamtamCreditsTrigger("Exports", 5, poll_interval=0.05))
    assert (event["status"], event["retryable"]) == ("error", True)


async def test_timeout_event_after_end_time(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(SHORT)
    started = time.monotonic()
    event = await asyncio.wait_for(  # a trigger that ignored end_time would poll on forever
        first_event(TamtamCreditsTrigger("Exports", 5, poll_interval=0.1, end_time=time.time() + 0.35)), 20
    )
    assert event["status"] == "timeout"
    assert event["remaining"] == 1
    assert event["message"] == "Timed out waiting for 5 Exports credits; 1 remain"
    assert time.monotonic() - started >= 0.3
    assert 3 <= fake_server.request_count <= 6


async def test_end_time_in_the_past_is_honoured_after_a_restart(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(SHORT)
    event = await asyncio.wait_for(
        first_event(TamtamCreditsTrigger("Exports", 5, poll_interval=10, end_time=time.time() - 1)), 20
    )
    assert event["status"] == "timeout"
    assert fake_server.request_count == 1


async def _run_for(triggers: list[TamtamCreditsTrigger], seconds: float, spread: float) -> None:
    async def one(trigger: TamtamCreditsTrigger) -> None:
        await asyncio.sleep(random.uniform(0, spread))  # deferred tasks arrive at different moments
        await first_event(trigger)

    await asyncio.wait_for(asyncio.gather(*(one(t) for t in triggers)), seconds + 5)


async def test_fifty_triggers_on_one_connection_share_one_request_per_interval(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(SHORT)
    interval, duration = 0.5, 2.6
    end = time.time() + duration
    triggers = [TamtamCreditsTrigger("Exports", 5, poll_interval=interval, end_time=end) for _ in range(50)]
    await _run_for(triggers, duration, spread=interval)
    intervals = duration / interval
    # one request per elapsed interval (+1 for the first poll); 50 independent pollers would make ~300
    assert fake_server.request_count <= intervals + 2
    assert SharedCreditsPoll.for_connection("tamtam_default").requests_sent == fake_server.request_count


async def test_fifty_triggers_learn_of_the_top_up_together(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.schedule_credits([(2, SHORT), (0, ENOUGH)])
    triggers = [
        TamtamCreditsTrigger("Exports", 5, poll_interval=0.2, end_time=time.time() + 30) for _ in range(50)
    ]
    events = await asyncio.gather(*(first_event(t) for t in triggers))
    assert {e["status"] for e in events} == {"success"}
    # Two short answers, then enough. Triggers that were handed the previous answer while the third
    # request was in flight may look once more, one interval later: at most one request more.
    assert 3 <= fake_server.request_count <= 4


async def test_different_connections_never_share(tamtam_conn: Callable[..., str]) -> None:
    with FakeTamtamServer(SHORT, api_key="key-a") as a, FakeTamtamServer(SHORT, api_key="key-b") as b:
        tamtam_conn("tamtam_a", host=a.url, password="key-a")
        tamtam_conn("tamtam_b", host=b.url, password="key-b")
        interval, duration = 0.5, 1.6
        end = time.time() + duration
        triggers = [
            TamtamCreditsTrigger("Exports", 5, conn_id, poll_interval=interval, end_time=end)
            for conn_id in ["tamtam_a", "tamtam_b"] * 10
        ]
        await _run_for(triggers, duration, spread=interval)
        for server in (a, b):
            assert 2 <= server.request_count <= duration / interval + 2
            assert {r.headers["Authorization"] for r in server.requests} == {server.api_key}


async def test_a_failure_is_shared_not_multiplied(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    fake_server.add_faults(status_fault(500))
    # Triggers that sent requests of their own would see the good answers after the fault, and time out.
    end = time.time() + 2
    triggers = [TamtamCreditsTrigger("Exports", 5, poll_interval=5, end_time=end) for _ in range(20)]
    events = await asyncio.gather(*(first_event(t) for t in triggers))
    assert [e["status"] for e in events] == ["error"] * 20
    assert fake_server.request_count == 1


async def test_a_cancelled_waiter_does_not_cancel_the_shared_request(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.latency = 0.3
    poll = SharedCreditsPoll.for_connection("tamtam_default")
    first = asyncio.create_task(poll.get_credits(10))
    second = asyncio.create_task(poll.get_credits(10))
    await asyncio.sleep(0.1)
    first.cancel()
    assert (await second)[0].credit_type == "MaxKeyAccountsUnlocked"
    assert fake_server.request_count == 1


async def test_callers_during_a_refresh_get_the_recent_answer_without_waiting(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    poll = SharedCreditsPoll.for_connection("tamtam_default")
    await poll.get_credits(0.2)
    fake_server.set_credits(ENOUGH)
    fake_server.latency = 0.5
    await asyncio.sleep(0.25)  # the answer is now stale for a 0.2 s interval, but younger than two
    refresher = asyncio.create_task(poll.get_credits(0.2))
    await asyncio.sleep(0.05)
    stale = await poll.get_credits(0.2)
    assert not refresher.done()  # the second caller did not queue behind the request
    assert stale[0].credit_type == "MaxKeyAccountsUnlocked"  # the previous answer
    assert (await refresher)[0].to_dict() == ENOUGH[0]
    assert fake_server.request_count == 2


async def test_an_answer_two_intervals_old_is_not_served_even_during_a_refresh(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    poll = SharedCreditsPoll.for_connection("tamtam_default")
    await poll.get_credits(0.2)
    fake_server.set_credits(ENOUGH)
    fake_server.latency = 0.5
    await asyncio.sleep(0.42)  # just older than two 0.2 s intervals (a slow machine only makes it older)
    refresher = asyncio.create_task(poll.get_credits(0.2))
    await asyncio.sleep(0)  # the refresher sends its request
    late = await poll.get_credits(0.2)  # joins the refresh in flight rather than take the old answer
    assert late[0].to_dict() == ENOUGH[0]
    assert (await refresher)[0].to_dict() == ENOUGH[0]
    assert fake_server.request_count == 2


async def test_a_failed_answer_is_never_served_stale(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(extra={"max_retries": 0})
    poll = SharedCreditsPoll.for_connection("tamtam_default")
    fake_server.add_faults(status_fault(503))
    with pytest.raises(TamtamAPIError):
        await poll.get_credits(0.2)
    await asyncio.sleep(0.25)
    fake_server.latency = 0.2
    first, second = await asyncio.gather(poll.get_credits(0.2), poll.get_credits(0.2))
    assert first == second
    assert fake_server.request_count == 2
