"""The reservation ledger of one credit type on one connection: who may start, and what stays reserved.

Pure bookkeeping, no I/O: :class:`Ledger` is fed each fresh credit summary and the gates waiting on it, and
answers which gates are admitted. The rules:

* **Admission**: a gate needing ``credits_needed`` N above a floor ``min_credits`` is admitted when
  ``remaining - reserved >= min_credits + N``; admitting it reserves N.
* **Order**: first come, first served by the time each gate started waiting. The first gate that does not
  fit stops everyone behind it, so a large gate is never starved by a stream of smaller ones. A gate that
  cannot fit even into the type's *total* credits does not hold its place: it keeps waiting (a larger plan
  may come) while the gates behind it are admitted.
* **Release**: ``used_credits`` only grows within a billing period. Each reservation owns a stretch of the
  ``used_credits`` axis, starting where the reservations admitted before it end, so growth releases the
  oldest reservations first, credit for credit. A drop of ``used_credits`` starts a new period and releases
  every reservation admitted before it. A reservation not spent within its ``reservation_timeout`` lapses.

Every release is a pure function of a reservation's record and the latest observation, so the state can be
merged from a store written by earlier (or other) triggerers without counting any release twice.
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass
from typing import Any

from airflow_provider_tamtam.models import CreditSummary

STATE_VERSION = 1


@dataclass(frozen=True)
class Gate:
    """One waiting run: what it needs, and since when it waits (its place in line)."""

    gate_id: str
    credits_needed: int
    min_credits: int
    waiting_since: float
    reservation_timeout: float

    @property
    def needed(self) -> int:
        return self.min_credits + self.credits_needed

    def order(self) -> tuple[float, str]:
        return (self.waiting_since, self.gate_id)


@dataclass(frozen=True)
class Reservation:
    """Credits held for an admitted run until its spending shows in ``used_credits``.

    ``start`` is where its spending begins on the ``used_credits`` axis; ``seen_at`` is the wall-clock time
    of the observation it was admitted on (a new period seen later releases it).
    """

    gate_id: str
    credits: int
    start: int
    seen_at: float
    admitted_at: float
    timeout: float

    def outstanding(self, used: int) -> int:
        """Credits still held once ``used_credits`` has reached ``used``."""
        return self.credits - min(max(used - self.start, 0), self.credits)

    def released(self, used: int, now: float, period_started_at: float) -> bool:
        return (
            self.outstanding(used) == 0
            or now >= self.admitted_at + self.timeout
            or self.seen_at < period_started_at
        )


@dataclass(frozen=True)
class Standing:
    """What the latest check means for one gate, for its log line and its event."""

    admitted: bool
    remaining: int
    reserved: int
    holders: int
    needed: int
    total: int
    position: int | None  # 1-based place among the gates that can fit; None when admitted or never fits

    @property
    def never_fits(self) -> bool:
        return not self.admitted and self.position is None

    def describe(self, credit_type: str) -> str:
        """One line a person waiting can act on: the balance, what others hold, where this run stands."""
        runs = "run" if self.holders == 1 else "runs"
        head = (
            f"Tamtam credits {credit_type}: {self.remaining} remaining, {self.reserved} reserved by "
            f"{self.holders} admitted {runs}, {self.needed} needed"
        )
        if self.admitted:
            return f"{head}; admitted"
        if self.position is None:
            return (
                f"{head}; can never fit into the type's total of {self.total}: waiting for a larger plan "
                "without holding up the runs behind"
            )
        return f"{head}; {ordinal(self.position)} in line"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


class Ledger:
    """Reservations and waiting gates of one (connection, credit type).

    A full admission pass runs on every fresh summary. Between summaries a gate joining at the back of the
    line, or leaving from behind the first, is handled in constant time: with a thousand gates arriving and
    timing out one by one, a pass each time would stall the event loop they all share.
    """

    def __init__(self) -> None:
        self.reservations: dict[str, Reservation] = {}
        self.waiting: dict[str, Gate] = {}
        self.admitted: set[str] = set()  # gates admitted here or by an earlier or other triggerer
        self.last_used: int | None = None
        self.period_started_at = 0.0
        self._line: list[tuple[float, str]] = []  # the waiting gates' orders, sorted
        self._summary: CreditSummary | None = None
        self._positions: dict[str, int] = {}
        self._reserved = 0
        self._available = 0  # remaining - reserved after the last admissions
        self._blocked_by: str | None = None  # the first gate in line that does not fit yet
        self._end = 0  # where the spending of the youngest reservation ends on the used_credits axis
        self._now = 0.0
        self._given_places = 0
        self._departed: list[int] = []  # places in line given up since the last pass, sorted
        self.stale = True  # the admissions of the last pass no longer hold: run a pass before answering
        self.head_left = False  # the first gate in line left: the ones behind it may fit now

    # -- gates ------------------------------------------------------------------------------------
    def join(self, gate: Gate, now: float) -> bool:
        """Queue a gate, unless an earlier incarnation of it was admitted already.

        A gate joining at the back of the line is admitted at once, on the latest summary, when nobody
        waits before it and it fits. Returns whether it was.
        """
        if gate.gate_id in self.reservations:  # admitted by an earlier incarnation, as the store says
            self.admitted.add(gate.gate_id)
            return False
        if gate.gate_id in self.admitted or gate.gate_id in self.waiting:
            return False
        self.waiting[gate.gate_id] = gate
        order = gate.order()
        at_the_back = not self._line or order > self._line[-1]
        bisect.insort(self._line, order)
        if self._summary is None or not at_the_back:
            self.stale = True
            return False
        if self.stale or self.head_left:
            return False  # the next catch-up places it, in order
        self._place(gate, now)
        return gate.gate_id in self.reservations

    def done(self, gate_id: str) -> None:
        """A gate's trigger ended (admitted, timed out, cancelled): forget it; its reservation stays."""
        self.leave(gate_id)
        self.admitted.discard(gate_id)

    def leave(self, gate_id: str) -> None:
        """A gate stops waiting (admitted, or gone): it no longer holds its place in line."""
        gate = self.waiting.pop(gate_id, None)
        if gate is None:
            return
        order = gate.order()
        index = bisect.bisect_left(self._line, order)
        if index < len(self._line) and self._line[index] == order:
            del self._line[index]
        position = self._positions.pop(gate_id, None)
        if position is not None:
            bisect.insort(self._departed, position)  # everyone behind moves up one place
            if gate_id == self._blocked_by:
                self._blocked_by = None
                self.head_left = True

    @property
    def reserved(self) -> int:
        return self._reserved

    # -- checks -----------------------------------------------------------------------------------
    def observe(self, summary: CreditSummary, now: float) -> bool:
        """Apply a fresh summary: release what it shows spent, then admit in order.

        Returns whether a reservation was made or released, or a new period began: what a store must hear.
        """
        new_period = self.last_used is not None and summary.used < self.last_used
        if new_period:
            self.period_started_at = now
        self.last_used = summary.used
        self._summary = summary
        self._now = now
        released = self._release(now)
        admitted = self.admit(now)
        return new_period or released > 0 or admitted > 0

    def standing(self, gate_id: str) -> Standing:
        """The gate's standing as of the latest :meth:`observe` (call that first)."""
        summary = self._summary
        assert summary is not None, "observe() a summary before asking for standings"
        reservation = self.reservations.get(gate_id)
        gate = self.waiting.get(gate_id)
        needed = gate.needed if gate is not None else 0
        if reservation is not None:
            needed = reservation.credits
        return Standing(
            admitted=gate_id in self.admitted,
            remaining=summary.remaining,
            reserved=self._reserved,
            holders=len(self.reservations),
            needed=needed,
            total=summary.total,
            position=self._position(gate_id),
        )

    def _position(self, gate_id: str) -> int | None:
        """The gate's place in line: the place it was given, less the places ahead of it given up since."""
        position = self._positions.get(gate_id)
        if position is None:
            return None
        return position - bisect.bisect_left(self._departed, position)

    def _release(self, now: float) -> int:
        used = self.last_used or 0
        released = [
            gate_id
            for gate_id, reservation in self.reservations.items()
            if reservation.released(used, now, self.period_started_at)
        ]
        for gate_id in released:
            del self.reservations[gate_id]
        self._reserved = sum(r.outstanding(used) for r in self.reservations.values())
        return len(released)

    def admit(self, now: float) -> int:
        """The full pass: walk the line in order, admitting until the first gate that does not fit.

        Uses the latest summary; ``now`` is when the admitted reservations start to count towards their
        timeout. Returns how many gates were admitted.
        """
        summary = self._summary
        assert summary is not None
        self._available = summary.remaining - self._reserved
        self._positions = {}
        self._given_places = 0
        self._departed = []
        self._blocked_by = None
        self.stale = self.head_left = False
        self._end = max((r.start + r.credits for r in self.reservations.values()), default=summary.used)
        before = len(self.reservations)
        for _, gate_id in list(self._line):
            self._place(self.waiting[gate_id], now)
        return len(self.reservations) - before

    def catch_up(self, now: float) -> int:
        """Bring admissions up to date between summaries, after gates joined or left; returns admissions."""
        if self.stale:
            return self.admit(now)
        if not self.head_left:
            return 0
        # The first gate in line left: admit from the new head until one does not fit. The places in line
        # behind are kept, shifted by the departures, so this costs what it admits, not the whole line.
        assert self._summary is not None
        self.head_left = False
        before = len(self.reservations)
        for _, gate_id in list(self._line):
            gate = self.waiting[gate_id]
            if gate.min_credits + gate.credits_needed > self._summary.total:
                continue
            if self._available < gate.min_credits + gate.credits_needed:
                self._blocked_by = gate_id
                break
            self._reserve(gate, now)
        return len(self.reservations) - before

    def _place(self, gate: Gate, now: float) -> None:
        """Admit ``gate``, the next in line after those already placed, or give it its place in line."""
        summary = self._summary
        assert summary is not None
        needed = gate.min_credits + gate.credits_needed
        if needed > summary.total:
            return  # can never fit: it does not hold its place in line
        if self._blocked_by is None and self._available >= needed:
            self._reserve(gate, now)
            return
        if self._blocked_by is None:
            self._blocked_by = gate.gate_id  # first come, first served: nobody overtakes it
        self._given_places += 1
        self._positions[gate.gate_id] = self._given_places

    def _reserve(self, gate: Gate, now: float) -> None:
        assert self._summary is not None
        start = max(self._summary.used, self._end)
        self.reservations[gate.gate_id] = Reservation(
            gate.gate_id, gate.credits_needed, start, self._now, now, gate.reservation_timeout
        )
        self._end = start + gate.credits_needed
        self._available -= gate.credits_needed
        self._reserved += gate.credits_needed
        self.admitted.add(gate.gate_id)
        self.leave(gate.gate_id)

    # -- persistence ------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Plain JSON for a store: the reservations and what is needed to judge their release."""
        return {
            "version": STATE_VERSION,
            "used": self.last_used,
            "period_started_at": self.period_started_at,
            "reservations": [asdict(r) for r in self.reservations.values()],
        }

    def merge_state(self, state: dict[str, Any]) -> None:
        """Take in reservations from a store (an earlier or another triggerer); never loses one of ours.

        A merged reservation that was released meanwhile is released again at the next :meth:`observe`,
        because releases depend only on the record and the observation.
        """
        if state.get("version") != STATE_VERSION:
            return
        self.period_started_at = max(self.period_started_at, float(state.get("period_started_at") or 0.0))
        if self.last_used is None and isinstance(state.get("used"), int):
            self.last_used = state["used"]  # the baseline that tells a new period after a restart
        for raw in state.get("reservations") or ():
            reservation = Reservation(**raw)
            if reservation.gate_id not in self.reservations:
                self.reservations[reservation.gate_id] = reservation
                if reservation.gate_id in self.waiting:  # admitted elsewhere: a killed triggerer's gate
                    self.admitted.add(reservation.gate_id)
                self.leave(reservation.gate_id)
                self.stale = True
        if self._summary is not None:
            self._release(self._now)  # what the latest summary shows released goes again, at once
