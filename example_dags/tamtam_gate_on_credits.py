"""Gate expensive work on Tamtam credits: a deferrable sensor waits in the triggerer, then the job runs.

The sensor holds no worker slot while it waits, and every gate waiting on the same connection shares one
API call per poll interval. Set ``TAMTAM_GATE_POKE_INTERVAL`` (seconds) to poll faster in a demo.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import dag, task

from airflow_provider_tamtam.sensors.tamtam import TamtamCreditsSensor


@dag(
    dag_id="tamtam_gate_on_credits",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    params={"credit_type": "MaxKeyAccountsUnlocked", "min_credits": 500},
    tags=["tamtam", "example"],
)
def tamtam_gate_on_credits() -> None:
    wait_for_credits = TamtamCreditsSensor(
        task_id="wait_for_credits",
        credit_type="{{ params.credit_type }}",
        min_credits="{{ params.min_credits }}",  # type: ignore[arg-type]  # rendered, then checked
        tamtam_conn_id="tamtam_default",
        deferrable=True,
        poke_interval=float(os.environ.get("TAMTAM_GATE_POKE_INTERVAL", "300")),
        timeout=timedelta(hours=6).total_seconds(),
    )

    @task
    def run_import(lines: list[dict[str, Any]]) -> int:
        """Stands in for the expensive job; it starts only once enough credits remain."""
        available = sum(line["remaining_credits"] for line in lines)
        print(f"Starting the import with {available} credits available")
        return available

    run_import(wait_for_credits.output)


tamtam_gate_on_credits()
