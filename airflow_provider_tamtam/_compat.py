"""The few places where Airflow 3.1, 3.2 and 3.3 differ, kept in one module."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

try:
    from airflow.sdk.exceptions import (
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )
except ImportError:  # Airflow 3.1
    from airflow.exceptions import (  # type: ignore[no-redef,attr-defined]
        AirflowFailException,
        AirflowNotFoundException,
        AirflowSensorTimeout,
        AirflowSkipException,
    )

from airflow.sdk import BaseHook

try:
    from airflow.sdk import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf  # type: ignore[no-redef,assignment]
from airflow.sdk.definitions.connection import Connection

try:
    from airflow.sdk.log import mask_secret
except ImportError:  # Airflow 3.1
    from airflow.sdk.execution_time.secrets_masker import mask_secret  # type: ignore[no-redef,attr-defined]

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

__all__ = [
    "AirflowFailException",
    "AirflowNotFoundException",
    "AirflowSensorTimeout",
    "AirflowSkipException",
    "aget_connection",
    "amask_secret",
    "conf",
    "mask_secret",
    "stats",
]

#: Airflow 3.3.2 made the async connection lookup mask secrets without a blocking call to the supervisor;
#: ``Connection.aextra_dejson`` arrived in the same release and is how we recognise it.
ASYNC_LOOKUP_IS_SAFE = hasattr(Connection, "aextra_dejson")


async def aget_connection(conn_id: str) -> Any:
    """Look a connection up without blocking the triggerer's event loop, on every supported Airflow."""
    if ASYNC_LOOKUP_IS_SAFE:
        return await BaseHook.aget_connection(conn_id)
    return await asyncio.to_thread(BaseHook.get_connection, conn_id)


async def amask_secret(secret: str) -> None:
    """Register a secret with Airflow's masker from async code, never blocking the event loop."""
    try:
        from airflow.sdk.log import amask_secret as native
    except ImportError:  # before 3.3: run the sync call off the loop, as the sync lookup above does
        await asyncio.to_thread(mask_secret, secret)
        return
    masker: Callable[[str], Awaitable[None]] = native
    await masker(secret)


def stats() -> Any:
    """Airflow's metrics facade (StatsD or OpenTelemetry, as configured); its home moved in 3.2."""
    try:
        from airflow.sdk.observability.stats import Stats
    except ImportError:  # Airflow 3.1
        from airflow.stats import Stats
    return Stats
