"""The poll snapshots a credits watcher consumes: one plain-JSON item per poll outcome, success or error.

One loop per connection and interval reads the credits through the connection's :class:`SharedCreditsPoll`
and yields each outcome as a snapshot; errors are snapshots too, so that each watcher counts them itself
and rebuilds the exception it fails with (:func:`rebuild_error`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow_provider_tamtam.exceptions import TamtamAuthError, TamtamConfigError, TamtamError
from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.triggers.shared_poll import SharedCreditsPoll

__all__ = ["credit_snapshot", "error_snapshot", "poll_snapshots", "rebuild_error"]

log = logging.getLogger(__name__)


def credit_snapshot(lines: list[CreditLine], fetched_at: float | None = None) -> dict[str, Any]:
    """The raw stream item for a successful poll: every credit line of the account, as plain dicts, and
    when it was read (epoch seconds, for burn rates; now unless given)."""
    return {
        "lines": [line.to_dict() for line in lines],
        "error": None,
        "fetched_at": time.time() if fetched_at is None else fetched_at,
    }


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


def rebuild_error(error: dict[str, Any], message: str) -> TamtamError:
    """The exception to fail a watcher with: the poll error's class where it matters, a new message."""
    kind = error.get("kind")
    if kind == "TamtamAuthError":
        return TamtamAuthError(message, status=int(error.get("status") or 401))
    if kind == "TamtamConfigError":
        return TamtamConfigError(message)
    return TamtamError(message)


async def poll_snapshots(tamtam_conn_id: str, poll_interval: float) -> AsyncIterator[dict[str, Any]]:
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
