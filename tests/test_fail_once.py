"""Argument and connection errors fail a task once, in every operator, sensor and mode, despite ``retries=2``.

Run in a real Airflow (``dag.test()``, which runs task retries too); the try number of the task instance
says how many tries there were.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line, status_fault
from tests.airflow_run import load_dag

DAGS = Path(__file__).parent / "dags" / "tamtam_test_fail_once_dags.py"
SHORT = [credit_line("Exports", used=9, total=10)]


@pytest.fixture
def dags(
    airflow_db: Path,
    install_dag: Callable[[Path], Path],
    tamtam_conn: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("TAMTAM_TEST_OUT", str(tmp_path))
    tamtam_conn(extra={"max_retries": 0})
    return install_dag(DAGS)


def run_task(path: Path, dag_id: str, **test_kwargs: Any) -> tuple[str, int]:
    """Run the DAG's single task with ``dag.test()``; its final state and how many tries it took."""
    dag_run = load_dag(path, dag_id).test(**test_kwargs)
    (ti,) = dag_run.get_task_instances()
    return str(ti.state), int(ti.try_number)


def test_a_transient_error_is_retried(dags: Path, fake_server: FakeTamtamServer) -> None:
    """The yardstick: what a retried task looks like here (three tries, one request each)."""
    fake_server.add_faults(*[status_fault(503)] * 3)
    assert run_task(dags, "fail_once_sensor_poke") == ("failed", 3)
    assert fake_server.request_count == 3


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_a_bad_templated_argument_fails_once_before_any_request(
    dags: Path, fake_server: FakeTamtamServer, capfd: pytest.CaptureFixture[str], mode: str
) -> None:
    assert run_task(dags, f"fail_once_sensor_{mode}", run_conf={"min_credits": "lots"}) == ("failed", 1)
    assert fake_server.request_count == 0
    assert "min_credits must be a whole number, got 'lots'" in capfd.readouterr().out


@pytest.mark.parametrize("mode", ["poke", "reschedule", "deferrable"])
def test_an_undefined_connection_fails_once(dags: Path, fake_server: FakeTamtamServer, mode: str) -> None:
    assert run_task(dags, f"fail_once_sensor_{mode}", run_conf={"conn_id": "tamtam_nowhere"}) == ("failed", 1)
    assert fake_server.request_count == 0


def test_an_argument_that_breaks_when_the_deferred_task_resumes_fails_once(
    dags: Path, fake_server: FakeTamtamServer, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    fake_server.schedule_credits([(1, SHORT), (0, [credit_line("Exports", used=0, total=1000)])])
    assert run_task(dags, "fail_once_sensor_resumed") == ("failed", 1)
    assert (tmp_path / "renders").read_text() == "2"  # rendered for execute, then for execute_complete
    assert "min_credits must be a whole number, got 'lots'" in capfd.readouterr().out


@pytest.fixture
def delete_connection_after_first_request(
    fake_server: FakeTamtamServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Delete the connection once the trigger has used it, while the task waits deferred."""
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.02):
            if fake_server.request_count >= 2:  # the worker's check, then the trigger's first poll
                monkeypatch.delenv("AIRFLOW_CONN_TAMTAM_DEFAULT")
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    yield
    stop.set()
    watcher.join()


def test_a_connection_deleted_while_deferred_fails_once(
    dags: Path,
    fake_server: FakeTamtamServer,
    delete_connection_after_first_request: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fake_server.set_credits(SHORT)
    assert run_task(dags, "fail_once_sensor_deferrable") == ("failed", 1)
    assert "Tamtam connection 'tamtam_default' is not defined" in capfd.readouterr().out


@pytest.mark.parametrize(
    ("run_conf", "message"),
    [
        ({"credit_types": [1, 2]}, "credit_types must be a list of credit type names"),
        ({"conn_id": "tamtam_nowhere"}, "Tamtam connection 'tamtam_nowhere' is not defined"),
    ],
)
def test_operator_argument_and_connection_errors_fail_once(
    dags: Path,
    fake_server: FakeTamtamServer,
    capfd: pytest.CaptureFixture[str],
    run_conf: dict[str, Any],
    message: str,
) -> None:
    assert run_task(dags, "fail_once_operator", run_conf=run_conf) == ("failed", 1)
    assert fake_server.request_count == 0
    assert message in capfd.readouterr().out
