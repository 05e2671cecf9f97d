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
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.credit_type = credit_type
        self.min_credits = min_credits
        self.tamtam_conn_id = tamtam_conn_id
        self.poll_interval = poll_interval
        self.end_time = end_time
        self.not_before = not_before

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
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
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
            left = self._time_left()
            if left <= 0:
                yield self._timeout_event(remaining)
                return
            await asyncio.sleep(min(self.poll_interval, left))

    def _time_left(self) -> float:
        return float("inf") if self.end_time is None else self.end_time - time.time()

    def _answer_budget(self) -> float | None:
        """How long the next check may take: until ``end_time`` plus the grace, at least the grace."""
        if self.end_time is None:
            return None
        return max(self._time_left(), 0.0) + LAST_ANSWER_GRACE

    def _timeout_event(self, remaining: int | None, why: str = "") -> TriggerEvent:
        seen = "no answer yet" if remaining is None else f"{remaining} remain"
        message = f"Timed out waiting for {self.min_credits} {self.credit_type} credits; {seen}"
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
