"""The fake Tamtam server under its first module name, and its command line entry point.

``python -m airflow_provider_tamtam.testing.fake_server`` serves a fake API (see ``cli``). The package's
names stay importable from here; new code imports them from ``airflow_provider_tamtam.testing``.
"""

from __future__ import annotations

from airflow_provider_tamtam.testing import (
    CREDITS_PATH,
    DEFAULT_CREDITS,
    DelayFault,
    DropFault,
    FakeTamtamServer,
    Fault,
    RecordedRequest,
    Spend,
    SpendRefused,
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
from airflow_provider_tamtam.testing.cli import main

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
    "main",
    "malformed_fault",
    "redirect_fault",
    "status_fault",
]

if __name__ == "__main__":
    raise SystemExit(main())
