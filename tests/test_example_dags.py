"""The example DAGs parse with Airflow's own DagBag and run end to end against the fake Tamtam server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line
from tests.airflow_run import run_dag

EXAMPLES = Path(__file__).resolve().parent.parent / "example_dags"
SHORT = [credit_line("MaxKeyAccountsUnlocked", used=4800, total=5000)]
TOPPED_UP = [
    credit_line("MaxKeyAccountsUnlocked", used=10, total=5000),
    credit_line("Exports", used=97, total=100),
]


@pytest.fixture
def examples(
    airflow_db: Path,
    install_dag: Callable[[Path], Path],
    tamtam_conn: Callable[..., str],
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("TAMTAM_GATE_POKE_INTERVAL", "0.2")
    tamtam_conn()
    for path in EXAMPLES.glob("*.py"):
        install_dag(path)
    return next(iter(EXAMPLES.glob("*.py"))).parent


def test_every_example_dag_imports_without_errors_or_api_calls(
    airflow_db: Path, fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    try:
        from airflow.dag_processing.dagbag import DagBag
    except ImportError:  # Airflow 3.1
        from airflow.models.dagbag import DagBag
    tamtam_conn()
    bag = DagBag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    assert {"tamtam_gate_on_credits", "tamtam_credit_audit"} <= set(bag.dag_ids)
    assert fake_server.request_count == 0


def test_gate_waits_for_credits_then_runs_the_import(
    examples: Path, fake_server: FakeTamtamServer, capfd: pytest.CaptureFixture[str]
) -> None:
    fake_server.schedule_credits([(2, SHORT), (0, TOPPED_UP)])
    states = run_dag(EXAMPLES / "tamtam_gate_on_credits.py", "tamtam_gate_on_credits")
    assert states == {"wait_for_credits": "success", "run_import": "success"}
    assert fake_server.request_count == 3
    assert "Starting the import with 4990 credits available" in capfd.readouterr().out


def test_audit_reads_the_lines_and_reports_the_low_ones(
    examples: Path, fake_server: FakeTamtamServer, capfd: pytest.CaptureFixture[str]
) -> None:
    fake_server.set_credits(TOPPED_UP)
    states = run_dag(EXAMPLES / "tamtam_credit_audit.py", "tamtam_credit_audit")
    assert states == {"read_credits": "success", "report_low_lines": "success"}
    assert "LOW: Exports has 3 of 100 left" in capfd.readouterr().out


def test_audit_fails_on_a_low_balance_and_still_reports(
    examples: Path, fake_server: FakeTamtamServer
) -> None:
    fake_server.set_credits([{**TOPPED_UP[0], "remaining_credits": 40}])
    states = run_dag(EXAMPLES / "tamtam_credit_audit.py", "tamtam_credit_audit")
    assert states == {"read_credits": "failed", "report_low_lines": "success"}
