"""Run a DAG for real with ``dag.test()`` and read back what happened."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_dag(path: Path, dag_id: str) -> Any:
    """Parse a DAG file with Airflow's own DagBag and fail loudly on import errors."""
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag
    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.get_dag(dag_id)


def run_dag(path: Path, dag_id: str, **test_kwargs: Any) -> dict[str, str]:
    """Run one DAG run in-process (triggers run inline) and return each task's final state."""
    return {task_id: state for task_id, (state, _) in run_dag_tries(path, dag_id, **test_kwargs).items()}


def run_dag_tries(path: Path, dag_id: str, **test_kwargs: Any) -> dict[str, tuple[str, int]]:
    """Like :func:`run_dag`, with how many tries each task took (``dag.test()`` runs task retries too)."""
    dag_run = load_dag(path, dag_id).test(**test_kwargs)
    return {ti.task_id: (str(ti.state), int(ti.try_number)) for ti in dag_run.get_task_instances()}
