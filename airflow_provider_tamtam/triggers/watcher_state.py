"""What a credits watcher remembers between polls, kept in Airflow's asset state store where there is one.

Whether the watcher is armed (and, for forecasts, its usage history) decides every poll from memory; the
asset state store (Airflow 3.3+) keeps a copy that survives triggerer restarts, so that a re-created watcher
neither fires twice for one crossing nor misses the next one. The store can fail: a read at start is
retried, then again at every poll until it succeeds; a write the store refused is retried at every poll
until it is accepted. Once the store answers again, memory and store are reconciled: when the watcher
has seen a poll meanwhile, its own decision stands and is saved; otherwise the saved state is taken. The
usage history is merged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential

from airflow_provider_tamtam.forecast import UsageHistory

__all__ = ["AsyncStateStore", "WatcherState"]

T = TypeVar("T")


class AsyncStateStore(Protocol):
    """The async half of Airflow's asset state store accessor, which is all a watcher calls."""

    async def aget(self, key: str, default: Any = None) -> Any: ...

    async def aset(self, key: str, value: Any) -> None: ...


class WatcherState:
    """The armed flag (and optional usage history) of one watcher, in memory and under ``key`` in a store.

    :param attempts: tries of a read at start and of a write that must land before an event is emitted;
        any other write is tried once per poll.
    :param retry_wait: seconds before the second try, doubling after.
    """

    def __init__(
        self,
        key: str,
        name: str,
        log: logging.Logger | Any,
        history: UsageHistory | None = None,
        attempts: int = 3,
        retry_wait: float = 0.1,
    ) -> None:
        self.key = key
        self.name = name
        self.log = log
        self.armed = True
        self.history = history
        self.attempts = attempts
        self.retry_wait = retry_wait
        self._store: AsyncStateStore | None = None
        self._started = False
        self._read_done = False  # the store's saved value has been read (or there is no store)
        self._memory_decides = False  # a poll was judged before the saved state could be read
        self._unsaved = False  # memory holds changes the store has not accepted yet
        self._failing = False  # the last store call failed: warn once per outage, not once per poll

    @property
    def in_sync(self) -> bool:
        """Whether the store holds what memory holds (always true without a store)."""
        return self._store is None or (self._read_done and not self._unsaved)

    @property
    def pending(self) -> bool:
        """Whether the store still has to be read, or holds less than memory: :meth:`sync` and
        :meth:`update` have work to do even when nothing changed."""
        return self._store is not None and (not self._read_done or self._unsaved)

    async def start(self, store: AsyncStateStore | None) -> None:
        """Read the saved state once, with retries; on failure decide from memory and read again later."""
        if self._started:
            return
        self._started = True
        self._store = store
        if store is None:
            self._read_done = True
            return
        await self._read(self.attempts)

    async def sync(self) -> None:
        """Before each decision: read the saved state if that has not worked yet."""
        if self._store is not None and not self._read_done:
            await self._read(1)

    async def update(self, armed: bool, *, history_changed: bool = False, must_land: bool = False) -> None:
        """Record the outcome of one successful poll and save what changed, or what is still unsaved.

        ``must_land`` (an event is about to be emitted) retries a failed write at once; otherwise a failed
        write is tried again at the next poll.
        """
        if armed != self.armed or history_changed or not self._read_done:
            self._unsaved = True
        self.armed = armed
        if not self._read_done:
            self._memory_decides = True
        if self._store is None:
            self._unsaved = False
        elif self._read_done and self._unsaved:
            await self._write(self.attempts if must_land else 1)

    def _value(self) -> dict[str, Any]:
        value: dict[str, Any] = {"armed": self.armed}
        if self.history is not None:
            value["history"] = self.history.to_json()
        return value

    async def _read(self, attempts: int) -> None:
        store = self._store
        assert store is not None
        try:
            saved = await self._call(lambda: store.aget(self.key, None), attempts)
        except Exception as exc:
            # e.g. one trigger watching several assets: the accessor then needs an asset to be named
            self._warn_once(
                "the asset state store is unusable (%s: %s); deciding from memory and reading it again at "
                "every poll; until it answers, a triggerer restart may fire once more for the same crossing",
                exc,
            )
            return
        self._recovered()
        self._read_done = True
        if not isinstance(saved, dict):
            return
        if not self._memory_decides and isinstance(saved.get("armed"), bool):
            self.armed = bool(saved["armed"])
        if self.history is not None:
            merged = UsageHistory.restore(self.history.window, saved.get("history"), self.history.max_points)
            merged.extend(self.history.points)
            self.history.replace(merged.points)

    async def _write(self, attempts: int) -> None:
        store = self._store
        assert store is not None
        value = self._value()
        try:
            await self._call(lambda: store.aset(self.key, value), attempts)
        except Exception as exc:
            self._warn_once(
                "could not save its state (%s: %s); keeping it in memory and saving it again at every "
                "poll; until that works, a triggerer restart may fire once more for the same crossing or "
                "miss the next one",
                exc,
            )
            return
        self._recovered()
        self._unsaved = False

    async def _call(self, call: Callable[[], Awaitable[T]], attempts: int) -> T:
        retrying = AsyncRetrying(
            stop=stop_after_attempt(attempts),
            wait=wait_exponential(multiplier=self.retry_wait, max=10 * self.retry_wait),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                return await call()
        raise AssertionError("tenacity stops by raising")  # pragma: no cover

    def _warn_once(self, message: str, exc: Exception) -> None:
        log = self.log.debug if self._failing else self.log.warning
        self._failing = True
        log("Tamtam credits watcher for %r: " + message, self.name, type(exc).__name__, exc)

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            self.log.info("Tamtam credits watcher for %r: the asset state store answers again", self.name)
