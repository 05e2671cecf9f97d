"""Credit reservations: many TamtamCreditsTrigger gates with credits_needed, on a bare event loop.

Every test runs real triggers against the fake Tamtam server; the balance changes through the server. The
waits are bounded by conditions (``until``), never by guessing how long a check takes.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from airflow_provider_tamtam.reservations import MemoryStore, use_store
from airflow_provider_tamtam.reservations.desk import ReservationDesk
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line
from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsTrigger

TYPE = "MaxKeyAccountsUnlocked"
POLL = 0.05


def balance(remaining: int, *, used: int = 4800, credit_type: str = TYPE) -> list[dict[str, object]]:
    return [credit_line(credit_type, used=used, total=used + remaining)]


def logged(capfd: pytest.CaptureFixture[str]) -> str:
    """What the triggers logged: Airflow's structlog writes task and trigger logs to stdout."""
    out, err = capfd.readouterr()
    return out + err


class Gates:
    """Runs gate triggers as tasks of the current loop and records each one's event."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.triggers: dict[str, TamtamCreditsTrigger] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def start(self, count: int, needed: int = 500, *, first: float = 0.0, **kwargs: Any) -> list[str]:
        """Start ``count`` gates whose places in line follow ``first``, ``first + 1``, ...; returns ids."""
        ids = []
        for i in range(count):
            trigger = TamtamCreditsTrigger(
                kwargs.get("credit_type", TYPE),
                kwargs.get("min_credits", 0),
                kwargs.get("tamtam_conn_id", "tamtam_default"),
                poll_interval=kwargs.get("poll_interval", POLL),
                end_time=time.time() + kwargs.get("wait", 60),
                credits_needed=needed,
                reservation_timeout=kwargs.get("reservation_timeout", 3600),
                gate_id=kwargs.get("gate_ids", {}).get(i),
                waiting_since=first + i,
            )
            self.triggers[trigger.gate_id] = trigger
            self.tasks.append(asyncio.ensure_future(self._run(trigger)))
            ids.append(trigger.gate_id)
        return ids

    async def _run(self, trigger: TamtamCreditsTrigger) -> None:
        async for event in trigger.run():
            self.events[trigger.gate_id] = dict(event.payload)
            return

    def admitted(self, ids: list[str] | None = None) -> set[str]:
        return {
            gate_id
            for gate_id, event in self.events.items()
            if event["status"] == "success" and (ids is None or gate_id in ids)
        }

    async def until(self, condition: Callable[[], bool], limit: float = 20.0) -> None:
        deadline = time.monotonic() + limit
        while not condition():
            assert time.monotonic() < deadline, f"condition not met within {limit} s; events: {self.events}"
            await asyncio.sleep(POLL / 2)

    async def settle(self, polls: int = 6) -> None:
        """Let every gate check a few more times (what could still be admitted would be by then)."""
        await asyncio.sleep(polls * POLL)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def gates() -> AsyncIterator[Gates]:
    use_store(MemoryStore())
    running = Gates()
    yield running
    await running.stop()


async def test_twenty_gates_needing_500_on_5200_admit_exactly_ten(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], gates: Gates
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(5200))
    ids = gates.start(20)
    await gates.until(lambda: len(gates.admitted()) >= 10)
    await gates.settle()
    assert gates.admitted() == set(ids[:10])  # first come, first served
    assert {gates.events[i]["reserved"] for i in ids[:10]} == {500}
    desk = ReservationDesk.for_gate("tamtam_default", TYPE)
    assert desk.ledger.reserved == 5000

    # The admitted runs spend 1,500: three reservations are released, but 3,700 - 3,500 leaves 200.
    fake_server.set_credits(balance(3700, used=6300))
    await gates.until(lambda: desk.ledger.reserved == 3500)
    await gates.settle()
    assert len(gates.admitted()) == 10
    # A top-up of 500: 4,200 - 3,500 = 700 admits exactly one more, the next in line.
    fake_server.set_credits([credit_line(TYPE, used=6300, total=10500)])
    await gates.until(lambda: len(gates.admitted()) >= 11)
    await gates.settle()
    assert gates.admitted() == set(ids[:11])
    assert desk.ledger.reserved == 4000


async def test_place_in_line_is_when_the_gate_started_waiting_not_when_it_was_checked(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], gates: Gates
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(0))
    order = list(range(12))
    random.Random(7).shuffle(order)
    ids = {}
    for place in order:  # started in shuffled order, each with its own place in line
        ids[place] = gates.start(1, first=float(place))[0]
        await asyncio.sleep(0.001)
    await gates.settle()
    fake_server.set_credits(balance(2000))
    await gates.until(lambda: len(gates.admitted()) >= 4)
    await gates.settle()
    assert gates.admitted() == {ids[place] for place in range(4)}


async def test_a_large_gate_is_not_starved_by_smaller_ones_behind_it(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], gates: Gates
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(2900))
    big = gates.start(1, needed=3000, first=0.0)
    small = gates.start(5, needed=100, first=10.0)
    await gates.settle(10)
    assert gates.admitted() == set()  # 2,900 would fit every small gate, but the big one came first
    fake_server.set_credits(balance(3200))
    await gates.until(lambda: bool(gates.admitted(big)))
    await gates.until(lambda: len(gates.admitted(small)) >= 2)
    await gates.settle()
    assert gates.admitted() == {*big, *small[:2]}  # 3,200 - 3,000 = 200: two small ones, in order


async def test_a_gate_that_can_never_fit_does_not_block_the_others(
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    gates: Gates,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(5200))  # total 10,000
    huge = gates.start(1, needed=20_000, first=0.0)
    others = gates.start(3, first=1.0)
    await gates.until(lambda: len(gates.admitted()) >= 3)
    await gates.settle()
    assert gates.admitted() == set(others)
    assert huge[0] not in gates.events  # it keeps waiting, out of line, until its own timeout
    assert "can never fit into the type's total of 10000" in logged(capfd)


async def test_a_lapsed_reservation_releases_its_credits(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], gates: Gates
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(1000))
    first = gates.start(2, reservation_timeout=0.5)
    await gates.until(lambda: len(gates.admitted()) == 2)
    second = gates.start(2, first=10.0)
    await gates.settle()
    assert gates.admitted(second) == set()  # nothing spent: the 1,000 are held by the first two
    await gates.until(lambda: gates.admitted(second) == set(second))  # until their 0.5 s lapse
    assert gates.admitted() == {*first, *second}


async def test_a_new_period_releases_every_reservation(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], gates: Gates
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(5200))
    ids = gates.start(20)
    await gates.until(lambda: len(gates.admitted()) >= 10)
    fake_server.set_credits(balance(5200, used=0))  # used_credits dropped: a new billing period
    await gates.until(lambda: len(gates.admitted()) == 20)
    assert gates.admitted() == set(ids)


async def test_credit_types_and_connections_keep_apart(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], gates: Gates
) -> None:
    tamtam_conn()
    tamtam_conn("tamtam_other")  # the same account through another connection: its own ledger
    fake_server.set_credits([*balance(1000), *balance(1000, credit_type="Exports")])
    default = gates.start(4)
    exports = gates.start(4, credit_type="Exports")
    other = gates.start(4, tamtam_conn_id="tamtam_other")
    await gates.until(lambda: len(gates.admitted()) >= 6)
    await gates.settle()
    for group in (default, exports, other):
        assert gates.admitted(group) == set(group[:2])


async def test_forty_waiting_gates_make_at_most_one_call_per_interval(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str], gates: Gates
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(100))
    interval, duration = 0.2, 2.0
    gates.start(40, poll_interval=interval)
    fake_server.reset_requests()
    started = time.monotonic()
    await asyncio.sleep(duration)
    elapsed = time.monotonic() - started
    assert not gates.events
    assert fake_server.request_count <= elapsed / interval + 1


async def test_checks_log_one_actionable_line(
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    gates: Gates,
    capfd: pytest.CaptureFixture[str],
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(5200))
    ids = gates.start(13)
    await gates.until(lambda: len(gates.admitted()) >= 10)
    await gates.settle()
    assert (
        "Tamtam credits MaxKeyAccountsUnlocked: 5200 remaining, 5000 reserved by 10 admitted runs, "
        "500 needed; 3rd in line; next check in 0.05 s"
    ) in logged(capfd)
    assert len(ids) == 13


def test_a_restarted_triggerer_remembers_the_runs_it_admitted(
    fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn()
    fake_server.set_credits(balance(5200))
    store = MemoryStore()  # stands in for the Variables that outlive a triggerer

    async def triggerer(gate_ids: dict[int, str], admitted: int) -> tuple[Gates, list[str]]:
        use_store(store)
        running = Gates()
        ids = running.start(20, gate_ids=gate_ids)
        await running.until(lambda: len(running.admitted()) >= admitted)
        await running.settle()
        await running.stop()
        return running, ids

    first, ids = asyncio.run(triggerer({}, 10))  # the loop ends: all it held in memory is gone
    assert first.admitted() == set(ids[:10])
    # The same 20 triggers, re-created from their serialized form in a new triggerer: the ten admitted
    # runs are recognised at once, and nobody else fits.
    again, _ = asyncio.run(triggerer(dict(enumerate(ids)), 10))
    assert again.admitted() == set(ids[:10])
    assert {again.events[i]["reserved"] for i in ids[:10]} == {500}
    assert len(store.states) == 1


async def test_without_a_store_the_ledger_lives_in_memory_and_says_so_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.execution_time import task_runner

    from airflow_provider_tamtam.reservations import store

    # A bare process: no supervisor channel (an earlier dag.test() in this process may have left one).
    monkeypatch.delattr(task_runner, "SUPERVISOR_COMMS", raising=False)
    monkeypatch.setattr(store, "_warned_memory", False)
    with caplog.at_level(logging.WARNING):
        assert isinstance(store.default_store(), MemoryStore)
        assert isinstance(store.default_store(), MemoryStore)
    warnings = [r for r in caplog.records if "kept in memory only" in r.getMessage()]
    assert len(warnings) == 1
