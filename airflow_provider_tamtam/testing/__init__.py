"""Test support for code that talks to the Tamtam API: a local fake of the credits API and its faults.

The names are loaded on first use, so that ``python -m airflow_provider_tamtam.testing.fake_server``
runs the module once, as ``__main__`` only.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_provider_tamtam.testing.fake_server import (
        CREDITS_PATH,
        DEFAULT_CREDITS,
        DelayFault,
        DropFault,
        FakeTamtamServer,
        Fault,
        RecordedRequest,
        StatusFault,
        credit_line,
        delay_fault,
        drop_fault,
        fault_from_dict,
        http_date,
        malformed_fault,
        redirect_fault,
        status_fault,
    )

__all__ = [
    "CREDITS_PATH",
    "DEFAULT_CREDITS",
    "DelayFault",
    "DropFault",
    "FakeTamtamServer",
    "Fault",
    "RecordedRequest",
    "StatusFault",
    "credit_line",
    "delay_fault",
    "drop_fault",
    "fault_from_dict",
    "http_date",
    "malformed_fault",
    "redirect_fault",
    "status_fault",
]


def __getattr__(name: str) -> object:
    """Load an exported name from ``fake_server`` when it is first asked for."""
    if name in __all__:
        module = importlib.import_module("airflow_provider_tamtam.testing.fake_server")
        value: object = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
