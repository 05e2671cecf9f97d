"""Many asset watchers on one Tamtam connection, for the live deployment check (``deploy/check.py``).

Each of ``TAMTAM_WATCHERS_CHECK_COUNT`` assets (default 20) has one watcher that fires once when the
remaining ``MaxKeyAccountsUnlocked`` credits reach 1000 + i, and one DAG with a single task is scheduled on
each asset. The thresholds differ, so the watchers are distinct triggers; they share the connection and the
poll interval (``TAMTAM_WATCHERS_CHECK_POLL_INTERVAL`` s, default 5), so they must cost one API call per
interval between them. The DAGs are paused at creation; the check unpauses them.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsEventTrigger

COUNT = int(os.environ.get("TAMTAM_WATCHERS_CHECK_COUNT", "20"))
POLL_INTERVAL = float(os.environ.get("TAMTAM_WATCHERS_CHECK_POLL_INTERVAL", "5"))
BASE_THRESHOLD = 1000
CREDIT_TYPE = "MaxKeyAccountsUnlocked"

for index in range(1, COUNT + 1):
    asset = Asset(
        name=f"tamtam/watchers_check/{index:02d}",
        watchers=[
            AssetWatcher(
                name=f"tamtam_credits_at_least_{BASE_THRESHOLD + index}",
                trigger=TamtamCreditsEventTrigger(
                    credit_type=CREDIT_TYPE,
                    threshold=BASE_THRESHOLD + index,
                    condition="at_least",
                    tamtam_conn_id="tamtam_default",
                    poll_interval=POLL_INTERVAL,
                ),
            )
        ],
    )
    with DAG(
        dag_id=f"tamtam_watchers_check_{index:02d}",
        schedule=[asset],
        start_date=datetime(2026, 1, 1),
        catchup=False,
        tags=["tamtam", "deploy-check"],
    ):

        @task
        def note_event(triggering_asset_events: Any = None) -> int:
            """Print the credits the watcher saw; the check only needs the run to exist and succeed."""
            events = [event for batch in (triggering_asset_events or {}).values() for event in batch]
            remaining = int((events[-1].extra.get("payload") or {}).get("remaining", -1)) if events else -1
            print(f"{remaining} {CREDIT_TYPE} credits remaining")
            return remaining

        note_event()
