"""Run a trigger on the running event loop, as the triggerer would, and read its event."""

from __future__ import annotations

from typing import Any

from airflow.triggers.base import BaseTrigger


async def first_event(trigger: BaseTrigger) -> dict[str, Any]:
    """The payload of the trigger's first event; a trigger that ends without one fails the test."""
    async for event in trigger.run():
        return dict(event.payload)
    raise AssertionError("the trigger ended without an event")
