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
    """Reservations and waiting gates of one (connection, credit type)."""

    def __init__(self) -> None:
        self.reservations: dict[str, Reservation] = {}
        self.waiting: dict[str, Gate] = {}
        self.last_used: int | None = None
        self.period_started_at = 0.0
        self._summary: CreditSummary | None = None
        self._positions: dict[str, int] = {}
        self._reserved = 0

    # -- gates ------------------------------------------------------------------------------------
    def join(self, gate: Gate) -> None:
        """Queue a gate, unless an earlier incarnation of it was admitted already."""
        if gate.gate_id not in self.reservations:
            self.waiting[gate.gate_id] = gate

    def leave(self, gate_id: str) -> None:
        """A gate stops waiting (timed out, cancelled): it no longer holds its place in line."""
        self.waiting.pop(gate_id, None)
        self._positions.pop(gate_id, None)

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
        released = self._release(now)
        admitted = self._admit(now)
        return new_period or released > 0 or bool(admitted)

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
            admitted=reservation is not None,
            remaining=summary.remaining,
            reserved=self._reserved,
            holders=len(self.reservations),
            needed=needed,
            total=summary.total,
            position=self._positions.get(gate_id),
        )

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

    def _admit(self, now: float) -> list[str]:
        summary = self._summary
        assert summary is not None
        used = summary.used
        end = max((r.start + r.credits for r in self.reservations.values()), default=used)
        available = summary.remaining - self._reserved
        admitted: list[str] = []
        self._positions = {}
        blocked = False
        for gate in sorted(self.waiting.values(), key=Gate.order):
            if gate.needed > summary.total:
                continue  # can never fit: it does not hold its place in line
            if not blocked and available >= gate.needed:
                start = max(used, end)
                self.reservations[gate.gate_id] = Reservation(
                    gate.gate_id, gate.credits_needed, start, now, now, gate.reservation_timeout
                )
                end = start + gate.credits_needed
                available -= gate.credits_needed
                self._reserved += gate.credits_needed
                admitted.append(gate.gate_id)
                continue
            blocked = True  # first come, first served: nobody overtakes a gate that does not fit yet
            self._positions[gate.gate_id] = len(self._positions) + 1
        for gate_id in admitted:
            del self.waiting[gate_id]
        return admitted

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
            self.reservations.setdefault(reservation.gate_id, reservation)
            self.waiting.pop(reservation.gate_id, None)
