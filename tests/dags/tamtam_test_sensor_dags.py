"""DAGs for the sensor tests: one per mode and outcome; the downstream task writes what it received."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_tamtam.sensors.tamtam import TamtamCreditsSensor

CASES: dict[str, dict[str, Any]] = {
    "sensor_poke": {"mode": "poke", "poke_interval": 0.2, "timeout": 60},
    "sensor_reschedule": {"mode": "reschedule", "poke_interval": 1, "timeout": 60},
    "sensor_deferrable": {"deferrable": True, "poke_interval": 0.2, "timeout": 60},
    "sensor_timeout_poke": {"mode": "poke", "poke_interval": 0.2, "timeout": 1},
    "sensor_timeout_deferrable": {"deferrable": True, "poke_interval": 0.2, "timeout": 1},
    "sensor_soft_fail_poke": {"mode": "poke", "poke_interval": 0.2, "timeout": 1, "soft_fail": True},
    "sensor_soft_fail_deferrable": {
        "deferrable": True,
        "poke_interval": 0.2,
        "timeout": 1,
        "soft_fail": True,
    },
}

for dag_id, sensor_kwargs in CASES.items():
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        wait = TamtamCreditsSensor(
            task_id="wait",
            credit_type="{{ params.credit_type }}",
            min_credits="{{ params.min_credits }}",  # type: ignore[arg-type]
            retries=2,
            retry_delay=timedelta(seconds=0.5),
            params={"credit_type": "MaxKeyAccountsUnlocked", "min_credits": 500},
            **sensor_kwargs,
        )

        @task(task_id="after")
        def after(lines: list[dict[str, Any]], dag_id: str = dag_id) -> None:
            Path(os.environ["TAMTAM_TEST_OUT"], f"{dag_id}.json").write_text(json.dumps(lines))

        after(wait.output)
