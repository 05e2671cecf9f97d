"""One Tamtam request per connection and poll interval, however many triggers wait on it.

Every trigger of one event loop (the triggerer runs one loop for all of them) that reads the same
connection goes through the same :class:`SharedCreditsPoll`: an answer is reused by any trigger whose poll
interval it is still fresh for, and only one request is ever in flight (single-flight). While a refresh is
in flight, callers that still hold a recent answer get it at once (stale-while-revalidate, at most one
extra interval old) rather than queueing behind the request: otherwise every trigger would resume at the
same instant when the answer lands, and after a few intervals all of them would wake in one burst. Callers
with no usable answer wait for the request. Failures are shared too, and never served stale, so an outage
does not turn into one request per trigger either.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from dataclasses import dataclass

from airflow_provider_tamtam.exceptions import TamtamError
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.models import CreditLine

_POLLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, SharedCreditsPoll]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class _Snapshot:
    fetched_at: float
    lines: list[CreditLine] | None
    error: TamtamError | None


class SharedCreditsPoll:
    """Single-flight request plus a short-lived answer for one connection, within one event loop."""

    def __init__(self, tamtam_conn_id: str) -> None:
        self.tamtam_conn_id = tamtam_conn_id
        self.requests_sent = 0
        self._hook: TamtamHook | None = None
        self._snapshot: _Snapshot | None = None
        self._inflight: asyncio.Future[_Snapshot] | None = None

    @classmethod
    def for_connection(cls, tamtam_conn_id: str) -> SharedCreditsPoll:
        """The poll shared by every caller of the running event loop that uses this connection."""
        polls = _POLLS.setdefault(asyncio.get_running_loop(), {})
        if tamtam_conn_id not in polls:
            polls[tamtam_conn_id] = cls(tamtam_conn_id)
        return polls[tamtam_conn_id]

    @property
    def latest_lines(self) -> list[CreditLine] | None:
        """The newest answer received, or None when the newest outcome is an error (or none came yet).

        Requests go one at a time, so answers land in the order they were asked for: this never goes back
        in time, unlike the answer a caller holds that was handed a recent one during a refresh.
        """
        return self._snapshot.lines if self._snapshot is not None else None

    async def get_credits(self, max_age: float) -> list[CreditLine]:
        """Credit lines no older than ``max_age`` seconds, fetching them only when no fresh answer exists.

        While another caller's refresh is in flight, an answer up to ``2 * max_age`` old is returned at once.
        """
        snapshot = self._snapshot
        age = time.monotonic() - snapshot.fetched_at if snapshot else float("inf")
        if age > max_age:
            someone_else_refreshes = self._inflight is not None
            if self._inflight is None:
                self._inflight = asyncio.ensure_future(self._fetch())
            recent = snapshot is not None and snapshot.error is None and age <= 2 * max_age
            if not (someone_else_refreshes and recent):
                # shield: one waiter being cancelled must not cancel the request the others are waiting for
                snapshot = await asyncio.shield(self._inflight)
        assert snapshot is not None
        if snapshot.error is not None:
            raise snapshot.error
        assert snapshot.lines is not None
        return snapshot.lines

    async def _fetch(self) -> _Snapshot:
        if self._hook is None:
            self._hook = TamtamHook(self.tamtam_conn_id)
        self.requests_sent += 1
        try:
            lines = await self._hook.aget_credits()
            snapshot = _Snapshot(time.monotonic(), lines, None)  # fresh from when it arrived
        except TamtamError as exc:
            if not exc.retryable:
                self._hook = None  # re-read the connection next time: the key may have been fixed
            snapshot = _Snapshot(time.monotonic(), None, exc)
        finally:
            self._inflight = None
        self._snapshot = snapshot
        return snapshot
