"""DAGs whose one Tamtam task (with ``retries=2``) meets a bad argument, a bad connection or a hanging API."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from airflow_provider_tamtam.operators.tamtam import TamtamGetCreditsOperator
from airflow_provider_tamtam.sensors.tamtam import TamtamCreditsSensor

RETRIES: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(seconds=0.2)}
SENSOR: dict[str, Any] = {"credit_type": "Exports", "poke_interval": 0.2, "timeout": 60, **RETRIES}


def min_credits_then_lots() -> str:
    """Render ``min_credits`` as 500 the first time and as "lots" after: a template that breaks on resume."""
    renders = Path(os.environ["TAMTAM_TEST_OUT"], "renders")
    count = int(renders.read_text()) if renders.exists() else 0
    renders.write_text(str(count + 1))
    return "500" if count == 0 else "lots"


SENSOR_MODES: dict[str, dict[str, Any]] = {
    "poke": {"mode": "poke"},
    "reschedule": {"mode": "reschedule"},
    "deferrable": {"deferrable": True},
}

for mode, mode_kwargs in SENSOR_MODES.items():
    with DAG(f"fail_once_sensor_{mode}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        TamtamCreditsSensor(
            task_id="wait",
            min_credits="{{ params.min_credits }}",  # type: ignore[arg-type]
            tamtam_conn_id="{{ params.conn_id }}",
            params={"min_credits": 5, "conn_id": "tamtam_default"},
            **SENSOR,
            **mode_kwargs,
        )

with DAG(
    "fail_once_sensor_resumed",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    user_defined_macros={"min_credits_then_lots": min_credits_then_lots},
):
    TamtamCreditsSensor(
        task_id="wait",
        min_credits="{{ min_credits_then_lots() }}",  # type: ignore[arg-type]
        deferrable=True,
        **SENSOR,
    )

for soft_fail in (False, True):
    dag_id = "fail_once_sensor_deadline" + ("_soft_fail" if soft_fail else "")
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False):
        TamtamCreditsSensor(
            task_id="wait",
            min_credits=5,
            deferrable=True,
            soft_fail=soft_fail,
            **{**SENSOR, "timeout": 1.5},
        )

with DAG(
    "fail_once_operator",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    render_template_as_native_obj=True,
):
    TamtamGetCreditsOperator(
        task_id="read",
        credit_types="{{ params.credit_types }}",
        tamtam_conn_id="{{ params.conn_id }}",
        params={"credit_types": ["Exports"], "conn_id": "tamtam_default"},
        **RETRIES,
    )
