"""TamtamCreditsEventTrigger: schedule DAGs when a credit level is crossed, from an asset watcher.

Every watcher on one connection and poll interval costs one Tamtam request per interval: on Airflow
versions with shared streams the triggerer runs one poll loop per connection and interval and fans its
snapshots out to each watcher; elsewhere each watcher's ``run()`` reads through :class:`SharedCreditsPoll`,
which answers all of them from one request per interval and event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import re
from collections.abc import AsyncIterator, Hashable
from fractions import Fraction
from typing import Any, Literal, Protocol, cast

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from airflow_provider_tamtam.exceptions import TamtamAuthError, TamtamConfigError, TamtamError
from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll

__all__ = ["HAS_SHARED_STREAMS", "TamtamCreditsEventTrigger", "credit_snapshot", "error_snapshot"]

log = logging.getLogger(__name__)

#: Whether the installed Airflow can run one poll loop for many watchers (the shared-stream API, 3.3+).
HAS_SHARED_STREAMS = hasattr(BaseEventTrigger, "open_shared_stream")

CONDITIONS = ("at_least", "below")
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")
_STATE_KEY_PREFIX = "tamtam_credits_event:"


class AsyncStateStore(Protocol):
    """The async half of Airflow's asset state store accessor, which is all this trigger calls."""

    async def aget(self, key: str, default: Any = None) -> Any: ...

    async def aset(self, key: str, value: Any) -> None: ...


class TamtamCreditsEventTrigger(BaseEventTrigger):
    """Fire an asset event when the remaining credits of ``credit_type`` cross ``threshold``.

    The trigger is edge-triggered so that a condition that stays true does not schedule runs forever: it
    fires when the condition becomes true (on the first poll too, if it already holds), then stays quiet
    until one poll has seen it false. The remaining credits summed over every line of the type are compared
    (an absent type counts as 0). Where Airflow provides an asset state store, whether the trigger is armed
    is kept there, so a triggerer restart does not fire twice for one crossing.

    A failed poll is logged as a warning and retried at the next interval; ``max_consecutive_failures``
    failures in a row, or one error that cannot heal by itself (a rejected key, a missing or misconfigured
    connection), fail the trigger with a message naming the connection.

    :param credit_type: the credit type to watch, e.g. ``MaxKeyAccountsUnlocked``.
    :param threshold: a number of credits (int >= 0), or a share of the type's total credits given as a
        string such as ``"5%"``. A share of a total of 0 counts as 0 %: ``below "5%"`` holds and
        ``at_least "5%"`` does not when the account has no credits of the type at all.
    :param condition: ``at_least`` fires when remaining >= threshold, ``below`` when remaining < threshold.
    :param tamtam_conn_id: the Tamtam connection.
    :param poll_interval: seconds between requests; watchers with the same connection and interval share
        them.
    :param max_consecutive_failures: failed polls in a row after which the trigger fails.
    """

    def __init__(
        self,
        credit_type: str,
        threshold: int | str,
        condition: Literal["at_least", "below"] = "at_least",
        tamtam_conn_id: str = "tamtam_default",
        poll_interval: float = 300.0,
        max_consecutive_failures: int = 10,
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
        self.credit_type = credit_type
        self.threshold = threshold
        self.condition: Literal["at_least", "below"] = condition
        self.tamtam_conn_id = tamtam_conn_id
        self.poll_interval = float(poll_interval)
        self.max_consecutive_failures = max_consecutive_failures
        self._count, self._share = _parse_threshold(threshold)
        # Edge and failure state, shared by the shared-stream and the standalone path.
        self._armed: bool | None = None  # None: not read from the state store yet
        self._store: AsyncStateStore | None = None
        self._failures = 0

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_tamtam.triggers.tamtam.TamtamCreditsEventTrigger",
            {
                "credit_type": self.credit_type,
                "threshold": self.threshold,
                "condition": self.condition,
                "tamtam_conn_id": self.tamtam_conn_id,
                "poll_interval": self.poll_interval,
                "max_consecutive_failures": self.max_consecutive_failures,
            },
        )

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
        async for snapshot in _poll_snapshots(str(kwargs["tamtam_conn_id"]), float(kwargs["poll_interval"])):
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
        await self._load_armed()
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
        async for event in self.filter_shared_stream(
            _poll_snapshots(self.tamtam_conn_id, self.poll_interval)
        ):
            yield event

    # ------------------------------------------------------------------ edge and failure logic

    def condition_holds(self, remaining: int, total: int) -> bool:
        """Compare the summed remaining credits with the threshold, exactly (no float rounding)."""
        if self._share is None:
            at_least = remaining >= self._count
        else:
            ratio = Fraction(remaining, total) if total > 0 else Fraction(0)
            at_least = ratio >= self._share
        return at_least if self.condition == "at_least" else not at_least

    @property
    def state_key(self) -> str:
        """The asset state store key: derived from what the condition means, not from how often it polls."""
        config = [self.tamtam_conn_id, self.credit_type, self.condition, str(self.threshold)]
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
        holds = self.condition_holds(remaining, total)
        armed = self._armed if self._armed is not None else await self._load_armed()
        self.log.debug(
            "Tamtam credits %s: %d of %d remaining, condition %s %s %s, armed %s",
            self.credit_type,
            remaining,
            total,
            self.condition,
            self.threshold,
            "holds" if holds else "does not hold",
            armed,
        )
        if holds and armed:
            await self._save_armed(False)
            self.log.info(
                "Tamtam credits %s: %d of %d remaining is %s %s; firing",
                self.credit_type,
                remaining,
                total,
                self.condition.replace("_", " "),
                self.threshold,
            )
            return TriggerEvent(
                {
                    "credit_type": self.credit_type,
                    "remaining": remaining,
                    "total": total,
                    "threshold": self.threshold,
                    "threshold_credits": self._threshold_credits(total),
                    "condition": self.condition,
                    "tamtam_conn_id": self.tamtam_conn_id,
                    "lines": [dict(line) for line in lines],
                }
            )
        if not holds and not armed:
            await self._save_armed(True)
            self.log.info(
                "Tamtam credits %s: %d of %d remaining is no longer %s %s; armed again",
                self.credit_type,
                remaining,
                total,
                self.condition.replace("_", " "),
                self.threshold,
            )
        return None

    def _count_failure(self, error: dict[str, Any]) -> None:
        where = (
            f"Tamtam credits watcher for {self.credit_type!r} ({self.condition} {self.threshold}) "
            f"on connection {self.tamtam_conn_id!r}"
        )
        message = str(error.get("message", "unknown error"))
        if not error.get("retryable", False):
            raise _rebuild_error(error, f"{where} stopped on an error that retrying cannot fix: {message}")
        self._failures += 1
        if self._failures >= self.max_consecutive_failures:
            raise _rebuild_error(
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

    def _threshold_credits(self, total: int) -> float | int:
        if self._share is None:
            return self._count
        return float(self._share * total)

    async def _load_armed(self) -> bool:
        """Whether the next true condition fires; read once from the asset state store, if there is one."""
        if self._armed is not None:
            return self._armed
        self._armed = True
        store = cast("AsyncStateStore | None", getattr(self, "asset_state_store", None))
        if store is None:
            return self._armed
        try:
            saved = await store.aget(self.state_key, None)
        except Exception as exc:
            # e.g. one trigger watching several assets: the accessor then needs an asset to be named
            self.log.warning(
                "Tamtam credits watcher for %r: the asset state store is unusable (%s: %s); keeping the "
                "armed state in memory, so a triggerer restart may fire once more for the same crossing",
                self.credit_type,
                type(exc).__name__,
                exc,
            )
            return self._armed
        self._store = store
        if isinstance(saved, dict) and isinstance(saved.get("armed"), bool):
            self._armed = bool(saved["armed"])
        return self._armed

    async def _save_armed(self, armed: bool) -> None:
        self._armed = armed
        if self._store is None:
            return
        try:
            await self._store.aset(self.state_key, {"armed": armed})
        except Exception as exc:
            self.log.warning(
                "Tamtam credits watcher for %r: could not save its armed state (%s: %s)",
                self.credit_type,
                type(exc).__name__,
                exc,
            )


def _parse_threshold(threshold: object) -> tuple[int, Fraction | None]:
    """Split a threshold into a credit count or a share of the total (as an exact fraction)."""
    if isinstance(threshold, int) and not isinstance(threshold, bool):
        if threshold < 0:
            raise TamtamConfigError(f"threshold must be >= 0, got {threshold!r}")
        return threshold, None
    if isinstance(threshold, str):
        match = _PERCENT.match(threshold)
        if match:
            percent = Fraction(match.group(1))
            if percent > 100:
                raise TamtamConfigError(
                    f"threshold percentage must be between 0% and 100%, got {threshold!r}"
                )
            return 0, percent / 100
    raise TamtamConfigError(
        "threshold must be a whole number of credits >= 0 or a percentage of the total such as '5%', "
        f"got {threshold!r}"
    )


def _rebuild_error(error: dict[str, Any], message: str) -> TamtamError:
    """The exception to fail the trigger with: the poll error's class where it matters, a new message."""
    kind = error.get("kind")
    if kind == "TamtamAuthError":
        return TamtamAuthError(message, status=int(error.get("status") or 401))
    if kind == "TamtamConfigError":
        return TamtamConfigError(message)
    return TamtamError(message)


def credit_snapshot(lines: list[CreditLine]) -> dict[str, Any]:
    """The raw stream item for a successful poll: every credit line of the account, as plain dicts."""
    return {"lines": [line.to_dict() for line in lines], "error": None}


def error_snapshot(exc: TamtamError) -> dict[str, Any]:
    """The raw stream item for a failed poll: the error's message (free of secrets), class and status."""
    return {
        "lines": None,
        "error": {
            "message": str(exc),
            "kind": type(exc).__name__,
            "status": getattr(exc, "status", None),
            "retryable": exc.retryable,
        },
    }


async def _poll_snapshots(tamtam_conn_id: str, poll_interval: float) -> AsyncIterator[dict[str, Any]]:
    """Read the credits every ``poll_interval`` seconds, sleeping after every outcome, forever.

    Watchers that received the same answer from the connection's :class:`SharedCreditsPoll` also get
    the same snapshot object, built once.
    """
    poll = SharedCreditsPoll.for_connection(tamtam_conn_id)
    while True:
        outcome: list[CreditLine] | TamtamError
        try:
            outcome = await poll.get_credits(max_age=poll_interval)
        except TamtamError as exc:
            log.debug("Tamtam credits poll on connection %r failed: %s", tamtam_conn_id, exc)
            outcome = exc
        last = _LAST_SNAPSHOTS.get(tamtam_conn_id)
        if last is not None and last[0] is outcome:
            snapshot = last[1]
        elif isinstance(outcome, TamtamError):
            snapshot = error_snapshot(outcome)
        else:
            snapshot = credit_snapshot(outcome)
        _LAST_SNAPSHOTS[tamtam_conn_id] = (outcome, snapshot)
        yield snapshot
        await asyncio.sleep(poll_interval)


#: The latest poll outcome per connection and the snapshot built from it (outcomes are compared by identity).
_LAST_SNAPSHOTS: dict[str, tuple[object, dict[str, Any]]] = {}
