"""Waiting triggers follow edits of their connection: a rotated key, a new host or timeout, a deletion.

Connections are defined as ``AIRFLOW_CONN_*`` environment variables and changed while triggers wait; the
fake Tamtam server accepts one key at a time, so switching it revokes the old key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line, delay_fault
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger
from tests.trigger_run import first_event

OLD_KEY, NEW_KEY = "tt-old-key-0a1b2c", "tt-new-key-3d4e5f"
SHORT = [credit_line("Exports", used=9, total=10)]
ENOUGH = [credit_line("Exports", used=0, total=10)]


@pytest.fixture
def server() -> Iterator[FakeTamtamServer]:
    with FakeTamtamServer(SHORT, api_key=OLD_KEY, bearer_token=None) as fake:
        yield fake


def keys_sent(server: FakeTamtamServer) -> list[str]:
    return [request.headers["Authorization"] for request in server.requests]


async def test_waiting_triggers_switch_to_a_rotated_key_within_one_interval(
    server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(host=server.url, password=OLD_KEY)
    triggers = [
        TamtamCreditsTrigger("Exports", 5, poll_interval=0.2, end_time=time.time() + 20) for _ in range(5)
    ]
    waiting = asyncio.gather(*(first_event(trigger) for trigger in triggers))
    await asyncio.sleep(0.5)
    tamtam_conn(host=server.url, password=NEW_KEY)  # the connection is edited ...
    server.api_key = NEW_KEY  # ... and the old key revoked
    server.set_credits(ENOUGH)
    events = await asyncio.wait_for(waiting, 10)
    assert {event["status"] for event in events} == {"success"}
    sent = keys_sent(server)
    assert sent[0] == OLD_KEY
    assert sent[-1] == NEW_KEY


async def test_a_key_revoked_during_a_request_is_retried_at_once_with_the_rotated_one(
    server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(host=server.url, password=OLD_KEY, extra={"max_retries": 0})
    poll = SharedCreditsPoll.for_connection("tamtam_default")
    server.add_faults(delay_fault(0.5))  # the request is checked half a second after it was sent
    started = time.monotonic()
    answer = asyncio.create_task(poll.get_credits(60))
    await asyncio.sleep(0.2)
    tamtam_conn(host=server.url, password=NEW_KEY, extra={"max_retries": 0})
    server.api_key = NEW_KEY
    lines = await asyncio.wait_for(answer, 10)
    assert lines[0].credit_type == "Exports"
    assert keys_sent(server) == [OLD_KEY, NEW_KEY]
    assert [request.status for request in server.requests] == [401, 200]
    assert time.monotonic() - started < 5  # at once, not a poll interval (60 s) later
    assert poll.requests_sent == 1  # one shared request, the retry inside it


async def test_a_refused_current_key_fails_without_a_second_request(
    server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(host=server.url, password=OLD_KEY)
    trigger = TamtamCreditsTrigger("Exports", 5, poll_interval=0.2, end_time=time.time() + 20)
    waiting = asyncio.ensure_future(first_event(trigger))
    await asyncio.sleep(0.3)
    tamtam_conn(host=server.url, password=NEW_KEY)  # edited, but to a key the server does not know
    server.reset_requests()
    event = await asyncio.wait_for(waiting, 10)
    assert (event["status"], event["retryable"]) == ("error", False)
    assert "HTTP 401" in event["message"]
    assert NEW_KEY not in repr(event)
    assert keys_sent(server) == [NEW_KEY]


async def test_a_host_edit_moves_the_polls_to_the_new_server(
    server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    with FakeTamtamServer(ENOUGH, api_key=OLD_KEY, bearer_token=None) as moved:
        tamtam_conn(host=server.url, password=OLD_KEY)
        trigger = TamtamCreditsTrigger("Exports", 5, poll_interval=0.2, end_time=time.time() + 20)
        waiting = asyncio.ensure_future(first_event(trigger))
        await asyncio.sleep(0.5)
        assert server.request_count >= 2
        tamtam_conn(host=moved.url, password=OLD_KEY)
        edited = time.monotonic()
        event = await asyncio.wait_for(waiting, 10)
        assert event["status"] == "success"
        assert time.monotonic() - edited < 2  # one poll interval is 0.2 s
        assert moved.request_count == 1


async def test_a_deleted_connection_stops_the_waiting_triggers(
    server: FakeTamtamServer, tamtam_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    tamtam_conn(host=server.url, password=OLD_KEY)
    trigger = TamtamCreditsTrigger("Exports", 5, poll_interval=0.2, end_time=time.time() + 20)
    waiting = asyncio.ensure_future(first_event(trigger))
    await asyncio.sleep(0.5)
    monkeypatch.delenv("AIRFLOW_CONN_TAMTAM_DEFAULT")
    server.reset_requests()
    event = await asyncio.wait_for(waiting, 10)
    assert (event["status"], event["retryable"]) == ("error", False)
    assert "Tamtam connection 'tamtam_default' is not defined" in event["message"]
    assert server.request_count == 0


async def test_rereading_keeps_the_client_until_a_setting_changes(
    server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(host=server.url, password=OLD_KEY, extra={"timeout": 7})
    hook = TamtamHook()
    client = await hook.aget_conn()
    assert client.timeout == 7
    assert await hook.aget_conn(reread=True) is client  # nothing changed: same client and session
    tamtam_conn(host=server.url, password=OLD_KEY, extra={"timeout": 2.5})
    edited = await hook.aget_conn(reread=True)
    assert edited is not client
    assert edited.timeout == 2.5


def test_a_sync_hook_retries_once_with_a_key_rotated_since_it_read_the_connection(
    server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(host=server.url, password=OLD_KEY)
    hook = TamtamHook()
    hook.get_credits()
    tamtam_conn(host=server.url, password=NEW_KEY)
    server.api_key = NEW_KEY
    assert hook.get_credits()[0].credit_type == "Exports"
    assert keys_sent(server) == [OLD_KEY, OLD_KEY, NEW_KEY]
    assert [request.status for request in server.requests] == [200, 401, 200]


async def test_a_failed_re_read_keeps_the_connection_as_it_was(
    server: FakeTamtamServer, tamtam_conn: Callable[..., str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A secrets backend that fails for a moment (not a deleted connection) does not end the wait."""
    from airflow_provider_tamtam.hooks import tamtam as hook_module

    tamtam_conn(host=server.url, password=OLD_KEY)
    hook = TamtamHook()
    client = await hook.aget_conn()

    async def backend_down(conn_id: str) -> object:
        raise ConnectionResetError("secrets backend unreachable")

    monkeypatch.setattr(hook_module, "aget_connection", backend_down)
    assert await hook.aget_conn(reread=True) is client
    assert (await hook.aget_credits(reread_connection=True))[0].credit_type == "Exports"
    with pytest.raises(ConnectionResetError):  # with nothing to fall back on, the failure is the caller's
        await TamtamHook().aget_conn()
