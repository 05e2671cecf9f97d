"""TamtamGetCreditsOperator in a real Airflow (SQLite, dag.test()) against the fake Tamtam server."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_provider_tamtam.exceptions import TamtamConfigError
from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.operators.tamtam import TamtamGetCreditsOperator, format_table
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line
from tests.airflow_run import run_dag
from tests.conftest import drain_statsd

DAGS = Path(__file__).parent / "dags" / "tamtam_test_operator_dags.py"
LINES = [
    credit_line("MaxKeyAccountsUnlocked", used=10, total=5000),
    credit_line("Exports", used=8, total=10),
    credit_line("MaxKeyAccountsUnlocked", used=995, total=1000),
]


@pytest.fixture
def operator_dags(
    airflow_db: Path,
    install_dag: Callable[[Path], Path],
    tamtam_conn: Callable[..., str],
    fake_server: FakeTamtamServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("TAMTAM_TEST_OUT", str(tmp_path))
    tamtam_conn()
    fake_server.set_credits(LINES)
    return install_dag(DAGS)


def received(tmp_path: Path, dag_id: str) -> object:
    return json.loads((tmp_path / f"{dag_id}.json").read_text())


def test_returns_every_line_in_api_order_and_logs_a_table(
    operator_dags: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert run_dag(operator_dags, "operator_all") == {"read": "success", "after": "success"}
    assert received(tmp_path, "operator_all") == LINES
    out = capfd.readouterr().out
    assert "Tamtam credit lines (3):" in out
    assert "MaxKeyAccountsUnlocked    10   5000       4990        99.8%" in out


@pytest.mark.parametrize("dag_id", ["operator_filtered", "operator_templated"])
def test_filters_to_credit_types_and_logs_unknown_ones(
    operator_dags: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], dag_id: str
) -> None:
    assert run_dag(operator_dags, dag_id)["read"] == "success"
    assert received(tmp_path, dag_id) == [LINES[1]]
    if dag_id == "operator_filtered":
        assert (
            "Credit type 'NoSuchType' is not on the account; types present: Exports, MaxKeyAccountsUnlocked"
            in (capfd.readouterr().out)
        )


@pytest.mark.parametrize(
    ("dag_id", "low"),
    [
        ("operator_fail_below_int", "Exports: 2 remaining < 50; MaxKeyAccountsUnlocked: 5 remaining < 50"),
        ("operator_fail_below_map", "Exports: 2 remaining < 5; MaxKeyAccountsUnlocked: 5 remaining < 10"),
    ],
)
def test_fail_below_fails_without_retries_and_keeps_the_lines_in_xcom(
    operator_dags: Path,
    fake_server: FakeTamtamServer,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
    low: str,
) -> None:
    assert run_dag(operator_dags, dag_id) == {"read": "failed", "after": "success"}
    assert received(tmp_path, dag_id) == LINES
    assert f"Tamtam credits below threshold: {low}" in capfd.readouterr().out
    assert fake_server.request_count == 1  # retries=2 on the task, yet no second try


@pytest.mark.parametrize(
    "dag_id", ["operator_fail_below_int_at_boundary", "operator_fail_below_map_at_boundary"]
)
def test_fail_below_passes_when_remaining_credits_equal_the_threshold(
    operator_dags: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str], dag_id: str
) -> None:
    # Exports has exactly 2 remaining and the small MaxKeyAccountsUnlocked line exactly 5: not below either
    assert run_dag(operator_dags, dag_id) == {"read": "success", "after": "success"}
    assert received(tmp_path, dag_id) == LINES
    assert "below threshold" not in capfd.readouterr().out


def test_emits_gauges_per_credit_type(operator_dags: Path) -> None:
    drain_statsd()
    run_dag(operator_dags, "operator_all")
    metrics = set(drain_statsd())
    assert "airflow.tamtam.credits.remaining.MaxKeyAccountsUnlocked:4995|g" in metrics
    assert "airflow.tamtam.credits.used.Exports:8|g" in metrics
    assert "airflow.tamtam.credits.total.Exports:10|g" in metrics


def test_wrong_key_fails_without_retries(
    operator_dags: Path, fake_server: FakeTamtamServer, tamtam_conn: Callable[..., str]
) -> None:
    tamtam_conn(password="tt-wrong-key-1111")
    assert run_dag(operator_dags, "operator_all")["read"] == "failed"
    assert fake_server.request_count == 1


@pytest.mark.parametrize("fail_below", [-1, True, "10", {"Exports": -2}, {"Exports": "5"}, [5]])
def test_bad_fail_below_is_rejected_when_the_dag_is_defined(fail_below: object) -> None:
    with pytest.raises(TamtamConfigError, match="fail_below must be a whole number >= 0"):
        TamtamGetCreditsOperator(task_id="read", fail_below=fail_below)  # type: ignore[arg-type]


def test_table_handles_a_line_with_no_total() -> None:
    table = format_table(
        [CreditLine(credit_type="Trial", used_credits=0, total_credits=0, remaining_credits=0)]
    )
    assert table.splitlines()[1].split() == ["Trial", "0", "0", "0", "-"]
