"""TamtamCreditsEventTrigger: schedule DAGs when a credit level is crossed, from an asset watcher.

Every watcher on one connection and poll interval costs one Tamtam request per interval: on Airflow
versions with shared streams the triggerer runs one poll loop per connection and interval and fans its
snapshots out to each watcher; elsewhere each watcher's ``run()`` reads through :class:`SharedCreditsPoll`,
which answers all of them from one request per interval and event loop.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import AsyncIterator, Hashable
from datetime import timedelta
from typing import Any, Literal, cast

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_tamtam.exceptions import TamtamConfigError
from airflow_provider_tamtam.forecast import parse_horizon
from airflow_provider_tamtam.triggers.credit_conditions import (
    CONDITIONS,
    LevelCondition,
    RunOutCondition,
    Threshold,
)
from airflow_provider_tamtam.triggers.credit_snapshots import (
    credit_snapshot,
    error_snapshot,
    poll_snapshots,
    rebuild_error,
)
from airflow_provider_tamtam.triggers.watcher_state import AsyncStateStore, WatcherState

__all__ = ["HAS_SHARED_STREAMS", "TamtamCreditsEventTrigger", "credit_snapshot", "error_snapshot"]

#: Whether the installed Airflow can run one poll loop for many watchers (the shared-stream API, 3.3+).
HAS_SHARED_STREAMS = hasattr(BaseEventTrigger, "open_shared_stream")

_STATE_KEY_PREFIX = "tamtam_credits_event:"


class TamtamCreditsEventTrigger(BaseEventTrigger):
    """Fire an asset event when the remaining credits of ``credit_type`` cross ``threshold``.

    The trigger is edge-triggered so that a condition that stays true does not schedule runs forever: it
    fires when the condition becomes true (on the first poll too, if it already holds), then stays quiet
    until one poll has seen it false. The remaining credits summed over every line of the type are compared
    (an absent type counts as 0). Where Airflow provides an asset state store, whether the trigger is armed
    (and its poll history, for forecasts) is kept there, so a triggerer restart neither fires twice for one
    crossing nor loses the burn rate.

    A failed poll is logged as a warning and retried at the next interval; ``max_consecutive_failures``
    failures in a row, or one error that cannot heal by itself (a rejected key, a missing or misconfigured
    connection), fail the trigger with a message naming the connection.

    :param credit_type: the credit type to watch, e.g. ``MaxKeyAccountsUnlocked``.
    :param threshold: a number of credits (int >= 0), or a share of the type's total credits given as a
        string such as ``"5%"``. A share of a total of 0 counts as 0 %: ``below "5%"`` holds and
        ``at_least "5%"`` does not when the account has no credits of the type at all. For
        ``runs_out_within``, the horizon: seconds, a timedelta, or a string such as ``"36h"`` or ``"3d"``.
    :param condition: ``at_least`` fires when remaining >= threshold, ``below`` when remaining < threshold,
        ``runs_out_within`` when remaining / burn rate < horizon. The burn rate is the least-squares slope
        of the used credits over the successful polls of the last ``forecast_window`` seconds (at least 3
        polls; a drop of the used credits starts afresh); zero or negative burn never holds.
    :param tamtam_conn_id: the Tamtam connection.
    :param poll_interval: seconds between requests; watchers with the same connection and interval share
        them.
    :param max_consecutive_failures: failed polls in a row after which the trigger fails.
    :param forecast_window: seconds of poll history the burn rate is fitted over (``runs_out_within``).
    """

    def __init__(
        self,
        credit_type: str,
        threshold: int | float | str | timedelta,
        condition: Literal["at_least", "below", "runs_out_within"] = "at_least",
        tamtam_conn_id: str = "tamtam_default",
        poll_interval: float = 300.0,
        max_consecutive_failures: int = 10,
        forecast_window: float | timedelta | str = 21600.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if not isinstance(credit_type, str) or not credit_type.strip():
            raise TamtamConfigError(f"credit_type must be a non-empty string, got {credit_type!r}")
        if condition not in CONDITIONS:
            raise TamtamConfigError(
                f"condition must be one of {', '.join(repr(c) for c in CONDITIONS)}, got {condition!r}"
            )
        if not isinstance(tamtam_conn_id, str) or not tamtam_conn_id.strip():
            raise TamtamConfigError(f"tamtam_conn_id must be a non-empty string, got {tamtam_conn_id!r}")
        if (
            isinstance(poll_interval, bool)
            or not isinstance(poll_interval, int | float)
            or not math.isfinite(poll_interval)
            or poll_interval <= 0
        ):
            raise TamtamConfigError(f"poll_interval must be a number of seconds > 0, got {poll_interval!r}")
        if (
            isinstance(max_consecutive_failures, bool)
            or not isinstance(max_consecutive_failures, int)
            or max_consecutive_failures < 1
        ):
            raise TamtamConfigError(
                f"max_consecutive_failures must be a whole number >= 1, got {max_consecutive_failures!r}"
            )
        window = parse_horizon(forecast_window, "forecast_window")
        self._rule: LevelCondition | RunOutCondition
        if condition == "runs_out_within":
            self._rule = RunOutCondition(parse_horizon(threshold), window)
            # a timedelta is not plain JSON: keep its seconds, which mean the same
            threshold = self._rule.horizon if isinstance(threshold, timedelta) else threshold
        else:
            self._rule = LevelCondition(condition, Threshold.parse(threshold))
        self.credit_type = credit_type
        self.threshold = threshold
        self.condition: Literal["at_least", "below", "runs_out_within"] = condition
        self.tamtam_conn_id = tamtam_conn_id
        self.poll_interval = float(poll_interval)
        self.max_consecutive_failures = max_consecutive_failures
        self.forecast_window = window if condition == "runs_out_within" else None
        # Edge, history and failure state, shared by the shared-stream and the standalone path.
        self._forecast_words = _Suffix(self._rule)
        self._state = WatcherState(self.state_key, credit_type, self.log, history=self._rule.history)
        self._failures = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "credit_type": self.credit_type,
            "threshold": self.threshold,
            "condition": self.condition,
            "tamtam_conn_id": self.tamtam_conn_id,
            "poll_interval": self.poll_interval,
            "max_consecutive_failures": self.max_consecutive_failures,
        }
        if self.forecast_window is not None:  # only then: level watchers keep the hash they always had
            kwargs["forecast_window"] = self.forecast_window
        return "airflow_provider_tamtam.triggers.tamtam.TamtamCreditsEventTrigger", kwargs

    # ------------------------------------------------------------------ shared stream (Airflow 3.3+)

    def shared_stream_key(self) -> Hashable | None:
        """Watchers on the same connection and poll interval share one poll loop in the triggerer."""
        if not HAS_SHARED_STREAMS:
            return None
        return ("tamtam-credits", self.tamtam_conn_id, self.poll_interval)

    @classmethod
    async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Poll once per interval for a whole group of watchers and yield every outcome as a snapshot.

        Only the connection and the interval are read from ``kwargs``: they are all that the group's
        members have in common. Errors become snapshots too, so that each watcher counts them itself.
        """
        async for snapshot in poll_snapshots(str(kwargs["tamtam_conn_id"]), float(kwargs["poll_interval"])):
            yield snapshot

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        """Turn poll snapshots into this watcher's events; the one place holding edge and failure logic."""
        self.log.info(
            "Watching Tamtam credits %s on connection %r: fires when %s %s, polled every %g s",
            self.credit_type,
            self.tamtam_conn_id,
            self.condition.replace("_", " "),
            self.threshold,
            self.poll_interval,
        )
        # Read the saved state before the first snapshot: watchers sharing a poll then do not all wait on
        # the state store at the moment a snapshot is fanned out to them.
        await self._start_state()
        async for snapshot in shared_stream:
            event = await self._observe(snapshot)
            if event is not None:
                yield event

    # ------------------------------------------------------------------ standalone

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll on this watcher's own loop: the path on Airflow without shared streams, and in tests.

        The requests still go through the connection's :class:`SharedCreditsPoll`, so watchers of one
        process cost one request per interval and connection between them. The loop runs for as long as
        the triggerer keeps the watcher, firing each time the condition is crossed.
        """
        async for event in self.filter_shared_stream(poll_snapshots(self.tamtam_conn_id, self.poll_interval)):
            yield event

    # ------------------------------------------------------------------ edge and failure logic

    @property
    def state_key(self) -> str:
        """The asset state store key: derived from what the condition means, not from how often it polls."""
        config = [self.tamtam_conn_id, self.credit_type, self.condition, str(self.threshold)]
        if self.forecast_window is not None:
            config.append(str(self.forecast_window))
        digest = hashlib.sha256(json.dumps(config).encode()).hexdigest()[:32]
        return _STATE_KEY_PREFIX + digest

    async def _observe(self, snapshot: dict[str, Any]) -> TriggerEvent | None:
        """Apply one poll outcome: count a failure (raising when it is fatal) or fire on a rising edge."""
        error = snapshot.get("error")
        if error is not None:
            self._count_failure(error)
            return None
        self._failures = 0
        lines = [line for line in snapshot["lines"] if line["credit_type"] == self.credit_type]
        remaining = sum(int(line["remaining_credits"]) for line in lines)
        total = sum(int(line["total_credits"]) for line in lines)
        if self._state.pending:
            await self._state.sync()  # the saved state (and history) first, if it could not be read yet
        holds, history_changed = self._rule.judge(remaining, total, lines, snapshot)
        armed = self._state.armed
        self.log.debug(
            "Tamtam credits %s: %d of %d remaining, condition %s %s %s, armed %s%s",
            self.credit_type,
            remaining,
            total,
            self.condition,
            self.threshold,
            "holds" if holds else "does not hold",
            armed,
            self._forecast_words,  # formatted only when DEBUG is on
        )
        if holds and armed:
            await self._state.update(False, history_changed=history_changed, must_land=True)
            self.log.info("Tamtam credits %s: %s; firing", self.credit_type, self._describe(remaining, total))
            return TriggerEvent(
                {
                    "credit_type": self.credit_type,
                    "remaining": remaining,
                    "total": total,
                    "threshold": self.threshold,
                    **self._rule.payload(total),
                    "condition": self.condition,
                    "tamtam_conn_id": self.tamtam_conn_id,
                    "lines": [dict(line) for line in lines],
                }
            )
        if not holds and not armed:
            self.log.info(
                "Tamtam credits %s: %s; armed again",
                self.credit_type,
                self._describe(remaining, total, "no longer "),
            )
        if holds == armed or history_changed or self._state.pending:
            # saves a change, or what the state store refused at an earlier poll
            await self._state.update(not holds, history_changed=history_changed)
        return None

    def _describe(self, remaining: int, total: int, negation: str = "") -> str:
        """``10 of 100 remaining is below 5%`` or ``... remaining runs out in 2h at 5/h: within 3d``."""
        condition = f"{negation}{self.condition.replace('_', ' ')} {self.threshold}"
        forecast = str(self._rule)
        if forecast:
            return f"{remaining} of {total} remaining {forecast}: {condition}"
        return f"{remaining} of {total} remaining is {condition}"

    def _count_failure(self, error: dict[str, Any]) -> None:
        where = (
            f"Tamtam credits watcher for {self.credit_type!r} ({self.condition} {self.threshold}) "
            f"on connection {self.tamtam_conn_id!r}"
        )
        message = str(error.get("message", "unknown error"))
        if not error.get("retryable", False):
            raise rebuild_error(error, f"{where} stopped on an error that retrying cannot fix: {message}")
        self._failures += 1
        if self._failures >= self.max_consecutive_failures:
            raise rebuild_error(
                error, f"{where} failed {self._failures} consecutive polls; last error: {message}"
            )
        self.log.warning(
            "%s: poll failed (%d of %d consecutive failures allowed); next poll in %.0f s: %s",
            where,
            self._failures,
            self.max_consecutive_failures,
            self.poll_interval,
            message,
        )

    async def _start_state(self) -> None:
        """Read the saved state once, from the asset state store the triggerer provides (3.3+), if any."""
        store = cast("AsyncStateStore | None", getattr(self, "asset_state_store", None))
        await self._state.start(store)


class _Suffix:
    """``"; <what the rule says>"`` or nothing, rendered only when a log line is actually formatted."""

    __slots__ = ("rule",)

    def __init__(self, rule: object) -> None:
        self.rule = rule

    def __str__(self) -> str:
        words = str(self.rule)
        return f"; {words}" if words else ""
