"""One deadline for a whole HTTP attempt (connect, headers and body), not for each socket read.

``requests`` applies its timeout to every socket operation on its own, so a server that sends one byte just
before each read would time out can hold an attempt for as long as it likes. Here every socket an attempt
reads from is registered with one watchdog thread per process, which shuts the socket down when the
attempt's deadline passes: the blocked read then fails at once and the caller sees
:attr:`AttemptDeadline.expired`.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import PoolManager

#: Finished attempts left in the watchdog's heap before it is rebuilt without them.
_COMPACT_AFTER = 4096
_LONGEST_WAIT = 3600.0


class AttemptDeadline:
    """The deadline of one attempt and the sockets it reads from; shut down together when it passes."""

    __slots__ = ("deadline", "expired", "sockets")

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.expired = False
        #: Sockets in use by the attempt; None once it has finished, so that a pooled socket that is
        #: reused by a later attempt is never shut down by this one.
        self.sockets: list[socket.socket] | None = []

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.deadline - time.monotonic())


def _shut(sock: socket.socket) -> None:
    """Wake any thread blocked reading ``sock`` (on TLS too: the plain socket call skips the TLS layer)."""
    with contextlib.suppress(OSError):  # already closed or never connected: nothing left to wake
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """One daemon thread per process that expires attempts; finished ones are dropped lazily."""

    def __init__(self) -> None:
        self._order = itertools.count()
        self._reset()

    def _reset(self) -> None:
        """Start empty; so does a forked child: its parent's thread, lock and sockets are not its own."""
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, AttemptDeadline]] = []
        self._live = 0
        self._wake_at = math.inf
        self._started = False

    def add(self, attempt: AttemptDeadline) -> None:
        with self._cond:
            if not self._started:
                self._started = True
                threading.Thread(target=self._run, name="tamtam-attempt-deadline", daemon=True).start()
            if len(self._heap) > 2 * self._live + _COMPACT_AFTER:
                self._heap = [entry for entry in self._heap if entry[2].sockets is not None]
                heapq.heapify(self._heap)
            heapq.heappush(self._heap, (attempt.deadline, next(self._order), attempt))
            self._live += 1
            if attempt.deadline < self._wake_at:
                self._cond.notify()

    def watch(self, attempt: AttemptDeadline, sock: socket.socket) -> None:
        with self._cond:
            if attempt.expired:
                _shut(sock)
            elif attempt.sockets is not None:
                attempt.sockets.append(sock)

    def finish(self, attempt: AttemptDeadline) -> None:
        with self._cond:
            if attempt.sockets is not None:
                attempt.sockets = None
                self._live -= 1

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                while self._heap and (self._heap[0][2].sockets is None or self._heap[0][0] <= now):
                    attempt = heapq.heappop(self._heap)[2]
                    if attempt.sockets is not None:
                        attempt.expired = True
                        for sock in attempt.sockets:
                            _shut(sock)
                        attempt.sockets = None
                        self._live -= 1
                self._wake_at = self._heap[0][0] if self._heap else math.inf
                # capped: Condition.wait refuses an infinite timeout (a timeout of inf seconds, say)
                self._cond.wait(None if not self._heap else min(max(0.0, self._wake_at - now), _LONGEST_WAIT))


_WATCHDOG = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WATCHDOG._reset)
_CURRENT = threading.local()


@contextmanager
def attempt_deadline(seconds: float) -> Iterator[AttemptDeadline]:
    """Bound every request sent through a :class:`DeadlineAdapter` by this thread to ``seconds`` in total."""
    attempt = AttemptDeadline(seconds)
    _WATCHDOG.add(attempt)
    _CURRENT.attempt = attempt
    try:
        yield attempt
    finally:
        _CURRENT.attempt = None
        _WATCHDOG.finish(attempt)


def _watch_current(sock: Any) -> None:
    attempt = getattr(_CURRENT, "attempt", None)
    if attempt is not None and isinstance(sock, socket.socket):
        _WATCHDOG.watch(attempt, sock)


class _WatchedHTTPConnection(HTTPConnection):
    def getresponse(self) -> Any:  # the socket exists once the request is sent
        _watch_current(self.sock)
        return super().getresponse()


class _WatchedHTTPSConnection(HTTPSConnection):
    def getresponse(self) -> Any:
        _watch_current(self.sock)
        return super().getresponse()


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_POOL_CLASSES = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` whose connections register their sockets with the running attempt's deadline.

    SOCKS proxies keep urllib3's own connection classes, and with them only the per-read timeout.
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        manager: PoolManager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _POOL_CLASSES
        return manager
