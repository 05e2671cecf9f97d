"""Gate expensive work on Tamtam credits: a deferrable sensor waits in the triggerer, then the job runs.

The sensor holds no worker slot while it waits, and every gate waiting on the same connection shares one
API call per poll interval. ``credits_needed`` makes the gate reserve what the job will spend: when many
runs wait at once, only as many start as the balance covers, first come first served, and the next ones
start as the spending shows or the plan is topped up. Trigger with ``{"credits_needed": null}`` for a
plain floor (``min_credits``) instead. Set ``TAMTAM_GATE_POKE_INTERVAL`` (seconds) to poll faster in a demo.
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
    params={"credit_type": "MaxKeyAccountsUnlocked", "min_credits": 0, "credits_needed": 500},
    render_template_as_native_obj=True,  # params keep their types: numbers, and null for "no reservation"
    tags=["tamtam", "example"],
)
def tamtam_gate_on_credits() -> None:
    wait_for_credits = TamtamCreditsSensor(
        task_id="wait_for_credits",
        credit_type="{{ params.credit_type }}",
        min_credits="{{ params.min_credits }}",  # type: ignore[arg-type]  # rendered, then checked
        credits_needed="{{ params.credits_needed }}",  # type: ignore[arg-type]
        reservation_timeout=timedelta(hours=1),  # held this long if the import never spends
        tamtam_conn_id="tamtam_default",
        deferrable=True,
        poke_interval=float(os.environ.get("TAMTAM_GATE_POKE_INTERVAL", "300")),
        timeout=timedelta(hours=6).total_seconds(),
    )

    @task
    def run_import(lines: list[dict[str, Any]]) -> int:
        """Stands in for the expensive job; it starts only once its credits are there and reserved."""
        available = sum(line["remaining_credits"] for line in lines)
        print(f"Starting the import with {available} credits available")
        return available

    run_import(wait_for_credits.output)


tamtam_gate_on_credits()
