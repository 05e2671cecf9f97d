"""Triggers that wait on Tamtam credits in the triggerer, sharing one request per connection and interval."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_tamtam.exceptions import TamtamError
from airflow_provider_tamtam.models import CreditSummary
from airflow_provider_tamtam.reservations import Gate, ReservationDesk
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll

#: Seconds a check in flight at ``end_time`` may still take before the trigger reports ``timeout``; a
#: trigger whose end time passed while the triggerer was down also gets this long for one last check.
LAST_ANSWER_GRACE = 0.5


class TamtamCreditsTrigger(BaseTrigger):
    """Wait until ``credit_type`` has at least ``min_credits`` remaining, for a deferred sensor.

    Yields exactly one event: ``success`` with the matching lines, ``error`` with a message free of secrets
    (``retryable`` says whether an Airflow task retry could help), or ``timeout`` once ``end_time`` (epoch
    seconds, kept absolute so a triggerer restart does not extend the wait) has passed. The deadline holds
    while the API hangs: a check still unanswered at ``end_time`` is given up after
    :data:`LAST_ANSWER_GRACE` seconds (the shared request itself goes on for the other waiters).

    :param poll_interval: seconds between checks; an answer fetched for another trigger on the same
        connection is reused while it is younger than this.
    :param credits_needed: the run will spend about this many credits: wait until ``remaining - reserved``
        reaches ``min_credits + credits_needed``, first come first served, and reserve them on success (see
        :mod:`airflow_provider_tamtam.reservations`). None: ``min_credits`` is a plain floor.
    :param reservation_timeout: seconds an admitted run's reservation is held if its spending never shows.
    :param gate_id: names this wait in the reservation ledger; generated once, then kept through the
        trigger's serialized form, so that a restarted triggerer recognises a run it already admitted.
    :param waiting_since: epoch seconds at which the run started waiting: its place in line.
    :param not_before: epoch seconds of the deferring task's own check: answers from requests sent
        before it are never used, so the trigger never acts on credits older than what the task saw, and
        the first look is one ``poll_interval`` after that check (a time ahead of the triggerer's clock
        counts as the trigger's start).
    """

    def __init__(
        self,
        credit_type: str,
        min_credits: int,
        tamtam_conn_id: str = "tamtam_default",
        poll_interval: float = 60.0,
        end_time: float | None = None,
        not_before: float | None = None,
        credits_needed: int | None = None,
        reservation_timeout: float = 3600.0,
        gate_id: str | None = None,
        waiting_since: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.credit_type = credit_type
        self.min_credits = min_credits
        self.tamtam_conn_id = tamtam_conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.not_before = not_before
        self.credits_needed = credits_needed
        self.reservation_timeout = reservation_timeout
        self.gate_id = gate_id or uuid.uuid4().hex
        self.waiting_since = time.time() if waiting_since is None else waiting_since

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_tamtam.triggers.tamtam.TamtamCreditsTrigger",
            {
                "credit_type": self.credit_type,
                "min_credits": self.min_credits,
                "tamtam_conn_id": self.tamtam_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "not_before": self.not_before,
                "credits_needed": self.credits_needed,
                "reservation_timeout": self.reservation_timeout,
                "gate_id": self.gate_id,
                "waiting_since": self.waiting_since,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        if self.credits_needed is None:
            async for event in self._wait(None):
                yield event
            return
        desk = ReservationDesk.for_gate(self.tamtam_conn_id, self.credit_type)
        await desk.join(
            Gate(
                self.gate_id,
                self.credits_needed,
                self.min_credits,
                self.waiting_since,
                self.reservation_timeout,
            )
        )
        try:
            async for event in self._wait(desk):
                yield event
        finally:
            desk.leave(self.gate_id)  # stops holding a place in line; an admitted run keeps its reservation

    async def _wait(self, desk: ReservationDesk | None) -> AsyncIterator[TriggerEvent]:
        poll = SharedCreditsPoll.for_connection(self.tamtam_conn_id)
        started = time.time()  # errors of requests sent before this trigger started are not its own
        # a worker clock ahead of this one counts as now: later answers stay shareable with other triggers
        not_before = None if self.not_before is None else min(self.not_before, started)
        if not_before is not None:
            # The deferring task has just looked: the first look here is one poll interval after that one,
            # when an answer to a request sent since is likely shared already.
            await asyncio.sleep(max(0.0, min(not_before + self.poll_interval - started, self._time_left())))
        remaining: int | None = None
        while True:
            try:
                check = poll.get_credits(self.poll_interval, not_before=not_before, errors_not_before=started)
                lines = await asyncio.wait_for(check, self._answer_budget())
            except asyncio.TimeoutError:
                yield self._timeout_event(remaining, "no answer from Tamtam in time")
                return
            except TamtamError as exc:
                if exc.retryable and self._time_left() <= 0:
                    yield self._timeout_event(remaining, f"the last check failed: {exc}")
                else:
                    yield TriggerEvent({"status": "error", "message": str(exc), "retryable": exc.retryable})
                return
            summary = CreditSummary.of(lines, self.credit_type)
            remaining = summary.remaining
            standing = desk.check(self.gate_id, lines, poll.latest_lines) if desk is not None else None
            met = standing.admitted if standing is not None else summary.remaining >= self.min_credits
            if met:
                if desk is not None:
                    await desk.written()  # a restarted triggerer must know this run was admitted
                yield TriggerEvent(
                    {
                        "status": "success",
                        "remaining": summary.remaining,
                        "lines": summary.line_dicts(),
                        "reserved": self.credits_needed or 0,
                    }
                )
                return
            if standing is not None:
                self.log.info(
                    "%s%s; next check in %g s",
                    standing.describe(self.credit_type),
                    summary.describe_absence(),
                    self.poll_interval,
                )
            else:
                self.log.info(
                    "Tamtam credits %s: %d remaining, %d needed%s; next check in %g s",
                    self.credit_type,
                    summary.remaining,
                    self.min_credits,
                    summary.describe_absence(),
                    self.poll_interval,
                )
            left = self._time_left()
            if left <= 0:
                yield self._timeout_event(remaining, reserved=standing.reserved if standing else None)
                return
            await asyncio.sleep(min(self.poll_interval, left))

    def _time_left(self) -> float:
        return float("inf") if self.end_time is None else self.end_time - time.time()

    def _answer_budget(self) -> float | None:
        """How long the next check may take: until ``end_time`` plus the grace, at least the grace."""
        if self.end_time is None:
            return None
        return max(self._time_left(), 0.0) + LAST_ANSWER_GRACE

    def _timeout_event(
        self, remaining: int | None, why: str = "", *, reserved: int | None = None
    ) -> TriggerEvent:
        seen = "no answer yet" if remaining is None else f"{remaining} remain"
        if reserved is not None:
            seen += f", {reserved} reserved by admitted runs"
        needed = self.min_credits + (self.credits_needed or 0)
        message = f"Timed out waiting for {needed} {self.credit_type} credits; {seen}"
        return TriggerEvent(
            {
                "status": "timeout",
                "message": f"{message} ({why})" if why else message,
                "remaining": remaining,
            }
        )


# The event trigger for asset watchers lives in its own module; it is importable from here as well so that
# every Tamtam trigger has the same import path.
from airflow_provider_tamtam.triggers.credit_events import TamtamCreditsEventTrigger  # noqa: E402

__all__ = ["TamtamCreditsEventTrigger", "TamtamCreditsTrigger"]
