"""Test support for code that talks to the Tamtam API: a local fake of the credits API and its faults.

``server`` holds ``FakeTamtamServer``, ``faults`` what it can serve instead of a normal answer,
``credit_lines`` the balance it answers with and spends from, ``control`` its control API and ``cli`` its
command line (``python -m airflow_provider_tamtam.testing.fake_server``).
"""

from __future__ import annotations

from airflow_provider_tamtam.testing.credit_lines import DEFAULT_CREDITS, Spend, SpendRefused, credit_line
from airflow_provider_tamtam.testing.faults import (
    DelayFault,
    DropFault,
    Fault,
    StatusFault,
    delay_fault,
    drop_fault,
    fault_from_dict,
    http_date,
    malformed_fault,
    redirect_fault,
    status_fault,
)
from airflow_provider_tamtam.testing.server import CREDITS_PATH, FakeTamtamServer, RecordedRequest

__all__ = [
    "CREDITS_PATH",
    "DEFAULT_CREDITS",
    "DelayFault",
    "DropFault",
    "FakeTamtamServer",
    "Fault",
    "RecordedRequest",
    "Spend",
    "SpendRefused",
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
