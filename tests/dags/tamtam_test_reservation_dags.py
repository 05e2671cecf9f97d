"""DAGs for the reservation tests: gates with credits_needed, and gates misconfigured in each way."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_tamtam.sensors.tamtam import TamtamCreditsSensor

CASES: dict[str, dict[str, Any]] = {
    "reserve_gate": {"deferrable": True, "timeout": 60},
    "reserve_gate_short_wait": {"deferrable": True, "timeout": 1.5},
    "reserve_gate_not_deferrable": {"deferrable": False, "timeout": 60},
    "reserve_gate_bad_timeout": {"deferrable": True, "timeout": 60, "reservation_timeout": "-5"},
    "reserve_gate_bad_need": {"deferrable": True, "timeout": 60, "params": {"credits_needed": "lots"}},
    "reserve_gate_missing_connection": {
        "deferrable": True,
        "timeout": 60,
        "tamtam_conn_id": "tamtam_nowhere",
    },
}

for dag_id, sensor_kwargs in CASES.items():
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        wait = TamtamCreditsSensor(
            task_id="wait",
            credit_type="MaxKeyAccountsUnlocked",
            min_credits="{{ params.min_credits }}",  # type: ignore[arg-type]
            credits_needed="{{ params.credits_needed }}",  # type: ignore[arg-type]
            poke_interval=0.2,
            params={"min_credits": 0, "credits_needed": 500, **sensor_kwargs.pop("params", {})},
            **sensor_kwargs,
        )

        @task(task_id="after")
        def after(lines: list[dict[str, Any]], dag_id: str = dag_id) -> None:
            Path(os.environ["TAMTAM_TEST_OUT"], f"{dag_id}.json").write_text(json.dumps(lines))

        after(wait.output)
