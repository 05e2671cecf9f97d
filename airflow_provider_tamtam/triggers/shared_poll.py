"""One Tamtam request per connection and poll interval, however many triggers wait on it.

Every trigger of one event loop (the triggerer runs one loop for all of them) that reads the same
connection goes through the same :class:`SharedCreditsPoll`: an answer is reused by any trigger whose poll
interval it is still fresh for, and only one request is ever in flight (single-flight). While a refresh is
in flight, callers that still hold a recent answer get it at once (stale-while-revalidate, at most one
extra interval old) rather than queueing behind the request: otherwise every trigger would resume at the
same instant when the answer lands, and after a few intervals all of them would wake in one burst. Callers
with no usable answer wait for the request. Failures are shared too, and never served stale, so an outage
does not turn into one request per trigger either.

Callers can also refuse outcomes older than they are: ``not_before`` (wall-clock epoch seconds, so that a
worker's check and the triggerer's poll compare across processes) skips any answer or error of a request
sent before it, and ``errors_not_before`` does so for errors only. A caller that refuses the request in
flight still waits for it (one request at a time), then sends its own.

Every request re-reads the connection (see :meth:`TamtamHook.aget_credits`), so edits of the key, host or
timeout take effect from the next poll, and a deleted connection stops being used.
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
    number: int
    """Which request of this poll it answers, counting from 1."""
    sent_at: float
    """Wall-clock epoch seconds when the request was sent: nothing in the answer predates it."""
    fetched_at: float
    """``time.monotonic()`` when the answer arrived; ages are measured from here."""
    lines: list[CreditLine] | None
    error: TamtamError | None

    def usable(self, not_before: float | None, errors_not_before: float | None) -> bool:
        """Whether a caller that refuses outcomes of requests sent before these times may have it."""
        if not_before is not None and self.sent_at < not_before:
            return False
        return self.error is None or errors_not_before is None or self.sent_at >= errors_not_before


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

    async def get_credits(
        self,
        max_age: float,
        *,
        not_before: float | None = None,
        errors_not_before: float | None = None,
    ) -> list[CreditLine]:
        """Credit lines no older than ``max_age`` seconds, fetching them only when no fresh answer exists.

        While another caller's refresh is in flight, an answer up to ``2 * max_age`` old is returned at once.

        :param not_before: wall-clock epoch seconds; answers and errors of requests sent before it are
            never returned. A time ahead of this process's clock counts as now.
        :param errors_not_before: the same for errors only, e.g. when the caller started waiting: an
            error that happened before is not the caller's to see.
        """
        now = time.time()
        not_before = None if not_before is None else min(not_before, now)
        errors_not_before = None if errors_not_before is None else min(errors_not_before, now)
        sent_before_this_call = self.requests_sent  # later ones are new enough, whatever the clocks say
        while True:
            snapshot = self._snapshot
            usable = snapshot is not None and snapshot.usable(not_before, errors_not_before)
            age = time.monotonic() - snapshot.fetched_at if snapshot is not None else float("inf")
            if snapshot is not None and usable and age <= max_age:
                return self._outcome(snapshot)
            recent = snapshot is not None and usable and snapshot.error is None and age <= 2 * max_age
            if self._inflight is not None and recent:
                assert snapshot is not None
                return self._outcome(snapshot)  # someone else refreshes; no need to queue behind it
            if self._inflight is None:
                self._inflight = asyncio.ensure_future(self._fetch())
            # shield: one waiter being cancelled must not cancel the request the others are waiting for
            snapshot = await asyncio.shield(self._inflight)
            if snapshot.number > sent_before_this_call or snapshot.usable(not_before, errors_not_before):
                return self._outcome(snapshot)
            # that request was sent before this caller's cut-off: send one of our own (one at a time)

    @staticmethod
    def _outcome(snapshot: _Snapshot) -> list[CreditLine]:
        if snapshot.error is not None:
            raise snapshot.error
        assert snapshot.lines is not None
        return snapshot.lines

    async def _fetch(self) -> _Snapshot:
        if self._hook is None:
            self._hook = TamtamHook(self.tamtam_conn_id)
        self.requests_sent += 1
        number, sent_at = self.requests_sent, time.time()
        try:
            lines = await self._hook.aget_credits(reread_connection=True)
            snapshot = _Snapshot(number, sent_at, time.monotonic(), lines, None)  # fresh from when it arrived
        except TamtamError as exc:
            if not exc.retryable:
                self._hook = None  # start over with a new hook and client next time
            snapshot = _Snapshot(number, sent_at, time.monotonic(), None, exc)
        finally:
            self._inflight = None
        self._snapshot = snapshot
        return snapshot
