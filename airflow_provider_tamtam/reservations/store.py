"""Where reservation ledgers outlive a triggerer: Airflow Variables, or memory when no Airflow is reachable.

Inside Airflow's triggerer (3.1 and later) and inside ``dag.test()``, trigger code reaches Variables through
the task SDK's supervisor channel; the metadata database behind them survives a triggerer restart and is
the same for every triggerer of the deployment. The sync SDK call runs through ``asgiref``'s
``sync_to_async``, which sends it back through the triggerer's own event loop and never blocks it.
Variables have no compare-and-set, so every write first reads and merges what is stored (see
:meth:`Ledger.merge_state <airflow_provider_tamtam.reservations.ledger.Ledger.merge_state>`).
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Protocol

from asgiref.sync import sync_to_async

log = logging.getLogger(__name__)

KEY_PREFIX = "tamtam_reservations"


def store_key(tamtam_conn_id: str, credit_type: str) -> str:
    """The Variable key of one ledger, e.g. ``tamtam_reservations.tamtam_default.MaxKeyAccountsUnlocked``."""
    clean = [re.sub(r"[^A-Za-z0-9_.-]", "_", part) for part in (tamtam_conn_id, credit_type)]
    return ".".join([KEY_PREFIX, *clean])


class LedgerStore(Protocol):
    """Loads and saves a ledger's plain-JSON state under a key."""

    name: str

    async def load(self, key: str) -> dict[str, Any] | None: ...

    async def save(self, key: str, state: dict[str, Any]) -> None: ...


class MemoryStore:
    """Keeps states in a dict: the fallback outside Airflow, and a stand-in for a shared store in tests."""

    name = "memory"

    def __init__(self) -> None:
        self.states: dict[str, dict[str, Any]] = {}
        self.saves = 0

    async def load(self, key: str) -> dict[str, Any] | None:
        state = self.states.get(key)
        return json.loads(json.dumps(state)) if state is not None else None

    async def save(self, key: str, state: dict[str, Any]) -> None:
        self.saves += 1
        self.states[key] = json.loads(json.dumps(state))


class VariableStore:
    """Airflow Variables through the task SDK: usable from triggers in the triggerer and in ``dag.test()``."""

    name = "Airflow Variables"

    async def load(self, key: str) -> dict[str, Any] | None:
        raw = await sync_to_async(_get_variable, thread_sensitive=False)(key)
        if raw is None:
            return None
        state = json.loads(raw)
        return state if isinstance(state, dict) else None

    async def save(self, key: str, state: dict[str, Any]) -> None:
        await sync_to_async(_set_variable, thread_sensitive=False)(key, json.dumps(state, sort_keys=True))


def _get_variable(key: str) -> str | None:
    from airflow.sdk import Variable

    value = Variable.get(key, default=None)
    return None if value is None else str(value)


def _set_variable(key: str, value: str) -> None:
    from airflow.sdk import Variable

    Variable.set(key, value, description="Credit reservations of Tamtam gates; kept by the triggerer")


_warned_memory = False


def default_store() -> LedgerStore:
    """Variables when this process talks to an Airflow supervisor (triggerer, ``dag.test()``), else memory.

    The memory fallback is logged once per process: reservations then live only as long as the event loop.
    """
    global _warned_memory
    try:
        from airflow.sdk.execution_time import task_runner

        reachable = getattr(task_runner, "SUPERVISOR_COMMS", None) is not None
    except ImportError:
        reachable = False
    if reachable:
        return VariableStore()
    if not _warned_memory:
        _warned_memory = True
        log.warning(
            "Tamtam credit reservations are kept in memory only: no Airflow supervisor is reachable from "
            "this process, so a restart forgets which runs were admitted"
        )
    return MemoryStore()
