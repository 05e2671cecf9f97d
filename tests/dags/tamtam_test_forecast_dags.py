"""DAGs for the audit forecast tests: each test runs its own DAG twice, so that runs see only their history."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_tamtam.operators.tamtam import TamtamGetCreditsOperator

CASES: dict[str, dict[str, Any]] = {
    "forecast_fast_burn": {"fail_if_runs_out_within": timedelta(days=1)},
    "forecast_flat": {"fail_if_runs_out_within": 86400},
    "forecast_with_fail_below": {
        "fail_if_runs_out_within": "3d",
        "fail_below": {"MaxKeyAccountsUnlocked": 5000},
    },
    "forecast_new_period": {"fail_if_runs_out_within": "1d"},
    "forecast_no_horizon": {},
}

for dag_id, operator_kwargs in CASES.items():
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        read = TamtamGetCreditsOperator(
            task_id="read", retries=2, retry_delay=timedelta(seconds=0.5), **operator_kwargs
        )

        @task(task_id="after", trigger_rule="all_done")
        def after(lines: list[dict[str, Any]] | None, ti: Any = None, dag_id: str = dag_id) -> None:
            sample = ti.xcom_pull(task_ids="read", key="sample")
            out = Path(os.environ["TAMTAM_TEST_OUT"], f"{dag_id}.json")
            runs = json.loads(out.read_text()) if out.exists() else []
            out.write_text(json.dumps([*runs, {"lines": lines, "sample": sample}]))

        after(read.output)
