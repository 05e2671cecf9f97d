"""Whether a credits watcher is armed, kept in Airflow's asset state store where there is one.

The asset state store (Airflow 3.3+) survives triggerer restarts, so a watcher that has fired for a
crossing does not fire again for it when it is re-created.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

__all__ = ["AsyncStateStore", "WatcherState"]


class AsyncStateStore(Protocol):
    """The async half of Airflow's asset state store accessor, which is all a watcher calls."""

    async def aget(self, key: str, default: Any = None) -> Any: ...

    async def aset(self, key: str, value: Any) -> None: ...


class WatcherState:
    """The armed flag of one watcher, in memory and, when a store is usable, saved under ``key``."""

    def __init__(self, key: str, name: str, log: logging.Logger | Any) -> None:
        self.key = key
        self.name = name
        self.log = log
        self.armed: bool | None = None  # None: not read from the state store yet
        self._store: AsyncStateStore | None = None

    async def load(self, store: AsyncStateStore | None) -> bool:
        """Whether the next true condition fires; read once from the asset state store, if there is one."""
        if self.armed is not None:
            return self.armed
        self.armed = True
        if store is None:
            return self.armed
        try:
            saved = await store.aget(self.key, None)
        except Exception as exc:
            # e.g. one trigger watching several assets: the accessor then needs an asset to be named
            self.log.warning(
                "Tamtam credits watcher for %r: the asset state store is unusable (%s: %s); keeping the "
                "armed state in memory, so a triggerer restart may fire once more for the same crossing",
                self.name,
                type(exc).__name__,
                exc,
            )
            return self.armed
        self._store = store
        if isinstance(saved, dict) and isinstance(saved.get("armed"), bool):
            self.armed = bool(saved["armed"])
        return self.armed

    async def save(self, armed: bool) -> None:
        self.armed = armed
        if self._store is None:
            return
        try:
            await self._store.aset(self.key, {"armed": armed})
        except Exception as exc:
            self.log.warning(
                "Tamtam credits watcher for %r: could not save its armed state (%s: %s)",
                self.name,
                type(exc).__name__,
                exc,
            )
