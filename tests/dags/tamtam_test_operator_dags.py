"""DAGs for the operator tests; the downstream task runs whatever happened and writes what it received."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, task

from airflow_provider_tamtam.operators.tamtam import TamtamGetCreditsOperator

CASES: dict[str, dict[str, Any]] = {
    "operator_all": {},
    "operator_filtered": {"credit_types": ["Exports", "NoSuchType"]},
    "operator_templated": {"credit_types": "{{ params.only }}", "params": {"only": "Exports"}},
    "operator_fail_below_int": {"fail_below": 50},
    "operator_fail_below_map": {"fail_below": {"Exports": 5, "MaxKeyAccountsUnlocked": 10}},
    # thresholds equal to the lowest remaining credits: "below" is strict, so these pass
    "operator_fail_below_int_at_boundary": {"fail_below": 2},
    "operator_fail_below_map_at_boundary": {"fail_below": {"Exports": 2, "MaxKeyAccountsUnlocked": 5}},
}

for dag_id, operator_kwargs in CASES.items():
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        read = TamtamGetCreditsOperator(
            task_id="read", retries=2, retry_delay=timedelta(seconds=0.5), **operator_kwargs
        )

        @task(task_id="after", trigger_rule="all_done")
        def after(lines: list[dict[str, Any]] | None, dag_id: str = dag_id) -> None:
            Path(os.environ["TAMTAM_TEST_OUT"], f"{dag_id}.json").write_text(json.dumps(lines))

        after(read.output)
