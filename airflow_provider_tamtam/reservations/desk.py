"""The meeting point of every waiting gate of one (connection, credit type) inside one event loop.

A :class:`ReservationDesk` wraps a :class:`~airflow_provider_tamtam.reservations.ledger.Ledger` with its
store: it loads what earlier triggerers admitted before the first check, applies each fresh answer of the
shared poll once (however many gates hold it), and writes the state back after every change. An admitted
gate reports success only once its reservation is written, so a triggerer killed right after admitting
cannot forget it. Store failures degrade to memory with one warning; they never fail a gate.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref

from airflow_provider_tamtam.models import CreditLine, CreditSummary
from airflow_provider_tamtam.reservations.ledger import Gate, Ledger, Standing
from airflow_provider_tamtam.reservations.store import LedgerStore, default_store, store_key

log = logging.getLogger(__name__)


class _LoopDesks:
    """Every desk of one event loop, and the store they share."""

    def __init__(self) -> None:
        self.store: LedgerStore | None = None
        self.desks: dict[tuple[str, str], ReservationDesk] = {}


_LOOPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopDesks] = weakref.WeakKeyDictionary()


def _loop_desks() -> _LoopDesks:
    return _LOOPS.setdefault(asyncio.get_running_loop(), _LoopDesks())


def use_store(store: LedgerStore) -> None:
    """Make the running event loop's desks keep their ledgers in ``store`` (call before any gate waits)."""
    _loop_desks().store = store


class ReservationDesk:
    """The shared ledger of one (connection, credit type) in the running event loop."""

    def __init__(self, tamtam_conn_id: str, credit_type: str, store: LedgerStore) -> None:
        self.tamtam_conn_id = tamtam_conn_id
        self.credit_type = credit_type
        self.key = store_key(tamtam_conn_id, credit_type)
        self.ledger = Ledger()
        self._store: LedgerStore | None = store
        self._loaded: asyncio.Future[None] | None = None
        self._last_lines: list[CreditLine] | None = None
        self._version = 0  # bumped by every change worth writing
        self._written = 0
        self._syncer: asyncio.Task[None] | None = None
        self._sync_again = False
        self._written_event = asyncio.Event()

    @classmethod
    def for_gate(cls, tamtam_conn_id: str, credit_type: str) -> ReservationDesk:
        """The desk shared by every gate of the running event loop on this connection and credit type."""
        loop_desks = _loop_desks()
        key = (tamtam_conn_id, credit_type)
        if key not in loop_desks.desks:
            if loop_desks.store is None:
                loop_desks.store = default_store()
            loop_desks.desks[key] = cls(tamtam_conn_id, credit_type, loop_desks.store)
        return loop_desks.desks[key]

    @property
    def store_name(self) -> str:
        return self._store.name if self._store is not None else "memory (store unreachable)"

    async def join(self, gate: Gate) -> None:
        """Queue a gate once the stored ledger is loaded, so that an already admitted gate is recognised."""
        await self._load()
        if self.ledger.join(gate, time.time()):
            self._changed()

    def leave(self, gate_id: str) -> None:
        """The gate's trigger ended; an admitted run keeps its reservation."""
        self.ledger.done(gate_id)

    def check(self, gate_id: str, lines: list[CreditLine], newest: list[CreditLine] | None) -> Standing:
        """Apply the newest answer (once per answer) and return the gate's standing.

        ``lines`` is the answer the gate was handed, ``newest`` the newest its shared poll has received:
        a gate may resume holding an older answer than one another gate applied already, and applying
        that would read spending as undone (or a new period). None means the newest outcome was an error.
        """
        if newest is None:
            newest = self._last_lines if self._last_lines is not None else lines
        if newest is not self._last_lines:
            self._last_lines = newest
            if self.ledger.observe(CreditSummary.of(newest, self.credit_type), time.time()):
                self._version += 1
            self._sync_soon()  # once per answer: also takes in what other triggerers admitted
        elif self.ledger.catch_up(time.time()):
            self._changed()
        return self.ledger.standing(gate_id)

    def _changed(self) -> None:
        self._version += 1
        self._sync_soon()

    async def written(self) -> None:
        """Return once every change made so far is in the store (or the store has been given up)."""
        target = self._version
        while self._written < target and self._store is not None:
            self._written_event.clear()
            self._sync_soon()
            await self._written_event.wait()

    async def _load(self) -> None:
        if self._loaded is None:
            self._loaded = asyncio.ensure_future(self._read_and_merge())
        await asyncio.shield(self._loaded)

    async def _read_and_merge(self) -> None:
        if self._store is None:
            return
        try:
            state = await self._store.load(self.key)
        except Exception as exc:
            self._give_up_store(exc)
            return
        if state is not None:
            self.ledger.merge_state(state)

    def _sync_soon(self) -> None:
        if self._syncer is None or self._syncer.done():
            self._syncer = asyncio.ensure_future(self._sync_loop())
        else:
            self._sync_again = True

    async def _sync_loop(self) -> None:
        try:
            while True:
                self._sync_again = False
                await self.sync()
                if not self._sync_again and (self._store is None or self._written >= self._version):
                    break
        finally:
            self._written_event.set()

    async def sync(self) -> None:
        """Read and merge the stored ledger (other triggerers' admissions), then write ours if it changed.

        Runs once per answer of the shared poll and after every change, one at a time.
        """
        target = self._version
        await self._read_and_merge()
        if self._store is None or self._written >= target:
            return
        try:
            await self._store.save(self.key, self.ledger.to_state())
        except Exception as exc:
            self._give_up_store(exc)
            return
        self._written = max(self._written, target)

    def _give_up_store(self, exc: Exception) -> None:
        log.warning(
            "Tamtam credit reservations for %s on connection %r: the store %s failed (%s: %s); keeping them "
            "in memory only from now on",
            self.credit_type,
            self.tamtam_conn_id,
            self.store_name,
            type(exc).__name__,
            exc,
        )
        self._store = None
