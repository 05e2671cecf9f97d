"""Threads for async callers' requests: one small pool per connection, so one slow API starves no other.

The triggerer runs every trigger on one event loop, and the loop hands each blocking request to a thread.
With one pool for all connections, a few connections whose API hangs would hold every thread and a healthy
connection's poll would queue behind them. Here each connection (base URL and credential) has its own pool
of :data:`REQUEST_THREADS` threads, shared by every client of that connection in the process: the total is
``REQUEST_THREADS`` times the number of connections in use, whatever the number of hooks or triggers. A
pool's threads end once no client of its connection is left.
"""

from __future__ import annotations

import hashlib
import os
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

#: Threads per connection; with the shared polls one request per connection is in flight at a time.
REQUEST_THREADS = 4

_POOLS: weakref.WeakValueDictionary[str, ThreadPoolExecutor] = weakref.WeakValueDictionary()
_LOCK = threading.Lock()


def connection_key(base_url: str, authorization: str) -> str:
    """A key naming one connection without holding its credential."""
    return hashlib.sha256(f"{base_url}\n{authorization}".encode()).hexdigest()


def request_threads(key: str) -> ThreadPoolExecutor:
    """The pool of the connection named by ``key``; the caller keeps it alive by holding a reference."""
    with _LOCK:
        pool = _POOLS.get(key)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=REQUEST_THREADS, thread_name_prefix="tamtam-request")
            _POOLS[key] = pool
        return pool


def _forget_pools() -> None:
    """A forked child has none of its parent's threads: its pools must start afresh."""
    global _LOCK
    _LOCK = threading.Lock()
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)
