"""Connections whose API hangs hold only their own request threads: a healthy connection polls on time."""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

from airflow_provider_tamtam.client import REQUEST_THREADS, TamtamClient
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll
from tests.conftest import API_KEY
from tests.raw_http_server import RawHTTPServer, hang

HUNG_CONNECTIONS = 8


async def until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the condition did not come true in time")


async def test_a_healthy_connection_polls_on_time_while_eight_others_hang(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    fake_server.set_credits([credit_line("MaxKeyAccountsUnlocked", used=1, total=10)])
    tamtam_conn("tamtam_healthy")
    with RawHTTPServer(hang) as hanging:
        hung_ids = [
            tamtam_conn(
                f"tamtam_hung_{n}",
                host=hanging.url,
                password=f"account-{n}-key",  # eight accounts: a pool belongs to a base URL and credential
                extra={"timeout": 20, "max_retries": 0},
            )
            for n in range(HUNG_CONNECTIONS)
        ]
        hung = [
            asyncio.ensure_future(SharedCreditsPoll.for_connection(conn_id).get_credits(60.0))
            for conn_id in hung_ids
        ]
        try:
            await until(lambda: hanging.requests == HUNG_CONNECTIONS)  # each has a request in flight
            start = time.monotonic()
            lines = await asyncio.wait_for(
                SharedCreditsPoll.for_connection("tamtam_healthy").get_credits(60.0), timeout=10
            )
            elapsed = time.monotonic() - start
        finally:
            for task in hung:
                task.cancel()
    assert lines[0].remaining_credits == 9
    assert elapsed < 3  # it queued behind the hung requests' 20 s timeout


async def test_many_hooks_of_one_connection_share_its_bounded_threads(
    tamtam_conn: Callable[..., str],
) -> None:
    with RawHTTPServer(hang) as hanging:
        tamtam_conn("tamtam_busy", host=hanging.url, extra={"timeout": 5, "max_retries": 0})
        calls = [
            asyncio.ensure_future(TamtamHook("tamtam_busy").aget_credits())
            for _ in range(3 * REQUEST_THREADS)
        ]
        try:
            await until(lambda: hanging.requests >= REQUEST_THREADS)
            await asyncio.sleep(0.5)
            in_flight = hanging.requests
        finally:
            for call in calls:
                call.cancel()
    assert in_flight == REQUEST_THREADS


async def test_a_connections_threads_end_once_no_client_of_it_is_left(fake_server: FakeTamtamServer) -> None:
    client = TamtamClient(fake_server.url, API_KEY, max_retries=0)
    await asyncio.gather(*[client.aget_credits() for _ in range(REQUEST_THREADS)])
    client_threads = list(client._request_threads()._threads)  # the pool of this connection
    assert 1 <= len(client_threads) <= REQUEST_THREADS
    client.close()
    del client
    gc.collect()
    for thread in client_threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in client_threads)
