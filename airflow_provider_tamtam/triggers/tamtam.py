"""Triggers that wait on Tamtam credits in the triggerer, sharing one request per connection and interval."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_tamtam.exceptions import TamtamError
from airflow_provider_tamtam.models import CreditSummary
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll


class TamtamCreditsTrigger(BaseTrigger):
    """Wait until ``credit_type`` has at least ``min_credits`` remaining, for a deferred sensor.

    Yields exactly one event: ``success`` with the matching lines, ``error`` with a message free of secrets
    (``retryable`` says whether an Airflow task retry could help), or ``timeout`` once ``end_time`` (epoch
    seconds, kept absolute so a triggerer restart does not extend the wait) has passed.

    :param poll_interval: seconds between checks; an answer fetched for another trigger on the same
        connection is reused while it is younger than this.
    """

    def __init__(
        self,
        credit_type: str,
        min_credits: int,
        tamtam_conn_id: str = "tamtam_default",
        poll_interval: float = 60.0,
        end_time: float | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.credit_type = credit_type
        self.min_credits = min_credits
        self.tamtam_conn_id = tamtam_conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_tamtam.triggers.tamtam.TamtamCreditsTrigger",
            {
                "credit_type": self.credit_type,
                "min_credits": self.min_credits,
                "tamtam_conn_id": self.tamtam_conn_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        poll = SharedCreditsPoll.for_connection(self.tamtam_conn_id)
        while True:
            try:
                summary = CreditSummary.of(await poll.get_credits(self.poll_interval), self.credit_type)
            except TamtamError as exc:
                yield TriggerEvent({"status": "error", "message": str(exc), "retryable": exc.retryable})
                return
            if summary.remaining >= self.min_credits:
                yield TriggerEvent(
                    {"status": "success", "remaining": summary.remaining, "lines": summary.line_dicts()}
                )
                return
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
                        "message": f"Timed out waiting for {self.min_credits} {self.credit_type} credits; "
                        f"{summary.remaining} remain",
                        "remaining": summary.remaining,
                    }
                )
                return
            await asyncio.sleep(min(self.poll_interval, left))


# The event trigger for asset watchers lives in its own module; it is importable from here as well so that
# every Tamtam trigger has the same import path.
from airflow_provider_tamtam.triggers.credit_events import TamtamCreditsEventTrigger  # noqa: E402

__all__ = ["TamtamCreditsEventTrigger", "TamtamCreditsTrigger"]
