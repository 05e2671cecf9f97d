"""The watcher's saved state and its memory agree, whatever the asset state store refuses and when.

A store that fails reads or writes on demand stands in for Airflow's asset state store; a re-created
trigger on the same store plays a triggerer restart.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsEventTrigger
from tests.test_event_trigger import HIGH, LOW, event_trigger, failed, fire, ok


class FlakyStore:
    """An asset state store whose reads and writes fail while told to, or for the next ``n`` calls."""

    def __init__(self, data: dict[str, Any] | None = None) -> None:
        self.data: dict[str, Any] = dict(data or {})
        self.reads_fail = False
        self.writes_fail = False
        self.fail_next_writes = 0
        self.reads = 0
        self.writes = 0
        self.refused_writes = 0

    async def aget(self, key: str, default: Any = None) -> Any:
        await asyncio.sleep(0)
        self.reads += 1
        if self.reads_fail:
            raise ConnectionError("state store unreachable")
        return json.loads(json.dumps(self.data.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        await asyncio.sleep(0)
        if self.writes_fail or self.fail_next_writes:
            self.fail_next_writes = max(self.fail_next_writes - 1, 0)
            self.refused_writes += 1
            raise ConnectionError("state store unreachable")
        self.data[key] = json.loads(json.dumps(value))
        self.writes += 1


class Watch:
    """Run a watcher's filter over snapshots fed one at a time, as the poll loop would; collect its events."""

    def __init__(self, trigger: TamtamCreditsEventTrigger) -> None:
        self.events: list[dict[str, Any]] = []
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._task = asyncio.ensure_future(self._consume(trigger))

    async def _items(self) -> AsyncIterator[dict[str, Any]]:
        while (item := await self._queue.get()) is not None:
            yield item
            self._queue.task_done()  # the watcher has judged the item and asks for the next one

    async def _consume(self, trigger: TamtamCreditsEventTrigger) -> None:
        async for event in trigger.filter_shared_stream(self._items()):
            self.events.append(event.payload)

    async def poll(self, *snapshots: dict[str, Any]) -> list[dict[str, Any]]:
        """Feed snapshots, wait until each is judged, and return the events they caused."""
        before = len(self.events)
        for snapshot in snapshots:
            self._queue.put_nowait(snapshot)
            await asyncio.wait_for(self._queue.join(), 5)
        return self.events[before:]

    async def stop(self) -> None:
        self._queue.put_nowait(None)
        await asyncio.wait_for(self._task, 5)


def on(store: FlakyStore, **kwargs: Any) -> TamtamCreditsEventTrigger:
    """A watcher (one per triggerer start) reading and writing ``store``, retrying fast."""
    trigger = event_trigger(**kwargs)
    trigger.asset_state_store = store  # type: ignore[assignment]
    trigger._state.retry_wait = 0.001
    return trigger


async def test_a_write_refused_twice_is_retried_before_the_event_is_emitted() -> None:
    store = FlakyStore()
    store.fail_next_writes = 2
    trigger = on(store)
    watch = Watch(trigger)
    assert len(await watch.poll(ok(HIGH))) == 1
    # the event is out, and the state was saved before it, not at some later poll
    assert store.data == {trigger.state_key: {"armed": False}}
    assert store.refused_writes == 2
    await watch.stop()


async def test_a_write_refused_for_a_while_is_saved_later_so_a_restart_does_not_fire_twice(
    capfd: pytest.CaptureFixture[str],
) -> None:
    store = FlakyStore()
    store.writes_fail = True
    first = on(store)
    watch = Watch(first)
    assert [e["remaining"] for e in await watch.poll(ok(HIGH))] == [4990]  # fired although refused
    assert await watch.poll(ok(HIGH), ok(HIGH)) == []
    assert store.data == {}
    store.writes_fail = False
    assert await watch.poll(ok(HIGH)) == []
    assert store.data == {first.state_key: {"armed": False}}
    await watch.stop()
    out = capfd.readouterr().out
    assert out.count("could not save its state (ConnectionError") == 1  # once per outage
    assert "the asset state store answers again" in out
    # the restart: the same crossing does not fire again
    assert await fire(on(store), [ok(HIGH)]) == []


async def test_a_refused_rearm_is_saved_later_so_the_next_crossing_is_not_missed() -> None:
    store = FlakyStore()
    assert len(await fire(on(store), [ok(HIGH)])) == 1
    second = on(store)
    watch = Watch(second)
    store.writes_fail = True
    assert await watch.poll(ok(LOW), failed()) == []  # re-armed in memory, refused by the store
    assert store.data == {second.state_key: {"armed": False}}
    store.writes_fail = False
    assert await watch.poll(ok(LOW)) == []  # the next successful poll saves the re-arm
    assert store.data == {second.state_key: {"armed": True}}
    await watch.stop()
    # restarted while credits rise again: a new crossing, which fires
    assert len(await fire(on(store), [ok(HIGH)])) == 1


async def test_a_failed_read_at_start_is_retried_and_does_not_disable_saving() -> None:
    store = FlakyStore()
    store.reads_fail = True
    first = on(store)
    watch = Watch(first)
    assert await watch.poll(ok(LOW)) == []
    assert store.reads == 4  # three tries at start, one more at the poll
    store.reads_fail = False
    assert [e["remaining"] for e in await watch.poll(ok(HIGH))] == [4990]
    assert store.data == {first.state_key: {"armed": False}}
    await watch.stop()
    assert await fire(on(store), [ok(HIGH)]) == []


async def test_when_the_read_recovers_before_any_poll_the_saved_state_is_taken() -> None:
    key = event_trigger().state_key
    store = FlakyStore({key: {"armed": False}})  # fired before the restart
    store.reads_fail = True
    watch = Watch(on(store, max_consecutive_failures=5))
    assert await watch.poll(failed()) == []
    store.reads_fail = False
    assert await watch.poll(ok(HIGH)) == []  # still the same crossing: no second event
    assert store.data == {key: {"armed": False}}
    await watch.stop()


async def test_a_poll_seen_while_the_store_was_unreadable_wins_over_the_saved_state() -> None:
    key = event_trigger().state_key
    store = FlakyStore({key: {"armed": False}})
    store.reads_fail = True
    watch = Watch(on(store))
    assert await watch.poll(ok(LOW)) == []  # the condition is false: armed again, whatever was saved
    store.reads_fail = False
    assert await watch.poll(ok(LOW)) == []
    assert store.data == {key: {"armed": True}}
    assert len(await watch.poll(ok(HIGH))) == 1
    assert store.data == {key: {"armed": False}}
    await watch.stop()
