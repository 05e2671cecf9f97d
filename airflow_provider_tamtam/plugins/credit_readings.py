"""The credits page's readings: at most one API call per connection per refresh period, shared by all viewers.

Page requests never call the API themselves. The first request after a reading has aged past the refresh
period starts one background refresh of that connection (single-flight); every request, that one included,
waits a short, bounded time for it and otherwise renders the previous reading marked as refreshing. A
refresh that fails is remembered like a success, so a failing API is asked once per period too, and a
slow one never holds a page (or the api-server's event loop) longer than the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from airflow_provider_tamtam.exceptions import TamtamError
from airflow_provider_tamtam.models import CreditLine

log = logging.getLogger(__name__)

Fetch = Callable[[str], Awaitable[list[CreditLine]]]


@dataclass(frozen=True)
class CreditsReading:
    """What one refresh of one connection found: its credit lines, or a credential-free error message.

    A failed refresh keeps the lines of the last successful one, with ``lines_read_at`` saying when
    that was, so the page shows the error without losing the last known balance.
    """

    conn_id: str
    read_at: dt.datetime
    lines: tuple[CreditLine, ...] = ()
    error: str | None = None
    lines_read_at: dt.datetime | None = None


@dataclass
class _Slot:
    """The state of one connection: its last reading and its refresh in flight, if any."""

    reading: CreditsReading | None = None
    started: float | None = None
    task: asyncio.Task[None] | None = None


async def fetch_with_hook(conn_id: str) -> list[CreditLine]:
    """Read a connection's credits through the provider's hook, with the connection's retries.

    A new hook per refresh re-reads the connection, so an edited key or base URL shows on the next refresh.
    """
    from airflow_provider_tamtam.hooks.tamtam import TamtamHook

    return await TamtamHook(tamtam_conn_id=conn_id).aget_credits()


def describe_failure(exc: BaseException) -> str:
    """A message fit for the page: the provider's own errors, through Airflow's masker; else the type only.

    The hook registers each connection's password with the masker, so a key that an API error echoes
    shows as ``***``. Messages of other exceptions may quote anything (a URL, a header); they go to the
    api-server log, which the masker filters too, and the page shows only what kind of failure it was.
    """
    if isinstance(exc, TamtamError):
        return str(_redact(str(exc)))
    return f"Unexpected {type(exc).__name__} while reading the credits; the api-server log has the details"


def _redact(text: str) -> object:
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # where the task SDK keeps it elsewhere
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    return redact(text)


class CreditReadings:
    """Per-connection, single-flight, rate-limited readings of the Tamtam credits for the credits page.

    :param refresh_seconds: minimum time between two refreshes (two API calls) of one connection.
    :param wait_seconds: longest time a page request waits for a refresh in flight before it renders
        the previous reading.
    :param fetch: reads one connection's credit lines; the hook by default.
    :param clock: monotonic seconds, replaceable in tests.
    """

    def __init__(
        self,
        refresh_seconds: float,
        *,
        wait_seconds: float = 5.0,
        fetch: Fetch = fetch_with_hook,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if refresh_seconds <= 0:
            raise ValueError(f"refresh_seconds must be positive, got {refresh_seconds!r}")
        self.refresh_seconds = refresh_seconds
        self.wait_seconds = wait_seconds
        self._fetch = fetch
        self._clock = clock
        self._slots: dict[str, _Slot] = {}

    def refreshing(self, conn_id: str) -> bool:
        """Whether a refresh of the connection is in flight right now."""
        slot = self._slots.get(conn_id)
        return slot is not None and slot.task is not None

    async def read(self, conn_id: str) -> CreditsReading | None:
        """The newest reading of ``conn_id``; None while its very first refresh is still running."""
        slot = self._slots.setdefault(conn_id, _Slot())
        now = self._clock()
        if slot.task is None and (slot.started is None or now - slot.started >= self.refresh_seconds):
            slot.started = now
            slot.task = asyncio.create_task(self._refresh(conn_id, slot), name=f"tamtam-credits-{conn_id}")
        if slot.task is not None:
            # shield: a page request that gives up (or is cancelled) must not cancel the shared refresh
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(slot.task), timeout=self.wait_seconds)
        return slot.reading

    async def read_all(self, conn_ids: list[str]) -> dict[str, CreditsReading | None]:
        """Read every connection at once, so the page waits for the slowest one only."""
        readings = await asyncio.gather(*(self.read(conn_id) for conn_id in conn_ids))
        return dict(zip(conn_ids, readings, strict=True))

    async def _refresh(self, conn_id: str, slot: _Slot) -> None:
        try:
            lines = await self._fetch(conn_id)
            slot.reading = CreditsReading(conn_id, _utcnow(), lines=tuple(lines))
        except Exception as exc:
            if not isinstance(exc, TamtamError):
                log.exception("Reading the credits of Tamtam connection %r failed", conn_id)
            last = slot.reading
            kept_at = (last.lines_read_at or last.read_at) if last is not None and last.lines else None
            slot.reading = CreditsReading(
                conn_id,
                _utcnow(),
                lines=last.lines if kept_at is not None and last is not None else (),
                error=describe_failure(exc),
                lines_read_at=kept_at,
            )
        finally:
            slot.task = None


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
