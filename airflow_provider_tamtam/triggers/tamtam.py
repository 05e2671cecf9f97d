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


class TamtamCreditsTrigger(BaseTrigger):
    """Wait until ``credit_type`` has at least ``min_credits`` remaining, for a deferred sensor.

    Yields exactly one event: ``success`` with the matching lines, ``error`` with a message free of secrets
    (``retryable`` says whether an Airflow task retry could help), or ``timeout`` once ``end_time`` (epoch
    seconds, kept absolute so a triggerer restart does not extend the wait) has passed.

    :param poll_interval: seconds between checks; an answer fetched for another trigger on the same
        connection is reused while it is younger than this.
    :param credits_needed: the run will spend about this many credits: wait until ``remaining - reserved``
        reaches ``min_credits + credits_needed``, first come first served, and reserve them on success (see
        :mod:`airflow_provider_tamtam.reservations`). None: ``min_credits`` is a plain floor.
    :param reservation_timeout: seconds an admitted run's reservation is held if its spending never shows.
    :param gate_id: names this wait in the reservation ledger; generated once, then kept through the
        trigger's serialized form, so that a restarted triggerer recognises a run it already admitted.
    :param waiting_since: epoch seconds at which the run started waiting: its place in line.
    """

    def __init__(
        self,
        credit_type: str,
        min_credits: int,
        tamtam_conn_id: str = "tamtam_default",
        poll_interval: float = 60.0,
        end_time: float | None = None,
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
        while True:
            try:
                lines = await poll.get_credits(self.poll_interval)
            except TamtamError as exc:
                yield TriggerEvent({"status": "error", "message": str(exc), "retryable": exc.retryable})
                return
            summary = CreditSummary.of(lines, self.credit_type)
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
            left = float("inf") if self.end_time is None else self.end_time - time.time()
            if left <= 0:
                yield TriggerEvent(
                    {
                        "status": "timeout",
                        "message": f"Timed out waiting for {self.min_credits + (self.credits_needed or 0)} "
                        f"{self.credit_type} credits; {summary.remaining} remain"
                        + (f", {standing.reserved} reserved by admitted runs" if standing else ""),
                        "remaining": summary.remaining,
                    }
                )
                return
            await asyncio.sleep(min(self.poll_interval, left))


# The event trigger for asset watchers lives in its own module; it is importable from here as well so that
# every Tamtam trigger has the same import path.
from airflow_provider_tamtam.triggers.credit_events import TamtamCreditsEventTrigger  # noqa: E402

__all__ = ["TamtamCreditsEventTrigger", "TamtamCreditsTrigger"]
