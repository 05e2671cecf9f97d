"""The audit operator's burn rate and run-out forecast, across two real runs of one DAG on one database."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_tamtam.exceptions import TamtamConfigError
from airflow_provider_tamtam.operators.tamtam import TamtamGetCreditsOperator
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line
from tests.airflow_run import run_dag
from tests.conftest import drain_statsd

DAGS = Path(__file__).parent / "dags" / "tamtam_test_forecast_dags.py"


def lines(exports_used: int, keys_used: int = 100) -> list[dict[str, Any]]:
    return [
        credit_line("MaxKeyAccountsUnlocked", used=keys_used, total=5000),
        credit_line("Exports", used=exports_used, total=1000),
    ]


@pytest.fixture
def forecast_dags(
    airflow_db: Path,
    install_dag: Callable[[Path], Path],
    tamtam_conn: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("TAMTAM_TEST_OUT", str(tmp_path))
    tamtam_conn()
    return install_dag(DAGS)


def received(tmp_path: Path, dag_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = json.loads((tmp_path / f"{dag_id}.json").read_text())
    return runs


def table_row(out: str, credit_type: str) -> list[str]:
    """The last logged table row of a credit type, split into cells."""
    rows = [line for line in out.splitlines() if line.strip().startswith(credit_type + " ")]
    return rows[-1].split(" [", 1)[0].split()  # the last row carries the log line's logger suffix


def test_a_fast_burn_fails_the_second_run_without_retries_and_keeps_the_xcom(
    forecast_dags: Path,
    fake_server: FakeTamtamServer,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    dag_id = "forecast_fast_burn"
    fake_server.set_credits(lines(100))
    assert run_dag(forecast_dags, dag_id) == {"read": "success", "after": "success"}
    out = capfd.readouterr().out
    assert "used/day  runs out in" in out
    assert table_row(out, "Exports")[-2:] == ["-", "-"]  # no previous sample yet
    time.sleep(1)
    fake_server.set_credits(lines(400))  # 300 more used within seconds: gone within a day
    assert run_dag(forecast_dags, dag_id) == {"read": "failed", "after": "success"}
    assert fake_server.request_count == 2  # retries=2 on the task, yet no second try
    out = capfd.readouterr().out
    assert "Tamtam credits forecast to run out within 1d: Exports: runs out in " in out
    assert "MaxKeyAccountsUnlocked" not in out.split("forecast to run out within", 1)[1].splitlines()[0]
    runs_out = table_row(out, "Exports")[-1]
    assert runs_out.endswith("s")
    assert runs_out != "-"
    assert table_row(out, "MaxKeyAccountsUnlocked")[-2:] == ["0", "never"]
    first, second = received(tmp_path, dag_id)
    # the return value is the API's lines, unchanged, even when the forecast fails the task
    assert first["lines"] == lines(100)
    assert second["lines"] == lines(400)
    assert second["sample"]["lines"] == lines(400)
    fetched = [datetime.fromisoformat(run["sample"]["fetched_at"]) for run in (first, second)]
    assert fetched[0].utcoffset() == timedelta(0)
    assert timedelta(seconds=1) <= fetched[1] - fetched[0] < timedelta(minutes=5)


def test_a_flat_burn_passes_both_runs_and_says_never(
    forecast_dags: Path, fake_server: FakeTamtamServer, capfd: pytest.CaptureFixture[str]
) -> None:
    fake_server.set_credits(lines(999))  # 1 credit left, but nothing is being used
    assert run_dag(forecast_dags, "forecast_flat")["read"] == "success"
    assert run_dag(forecast_dags, "forecast_flat")["read"] == "success"
    assert table_row(capfd.readouterr().out, "Exports")[-2:] == ["0", "never"]


def test_fail_below_and_the_forecast_fail_with_one_message(
    forecast_dags: Path, fake_server: FakeTamtamServer, capfd: pytest.CaptureFixture[str]
) -> None:
    dag_id = "forecast_with_fail_below"
    fake_server.set_credits(lines(100, keys_used=0))  # 5000 remaining: not below 5000
    assert run_dag(forecast_dags, dag_id)["read"] == "success"
    capfd.readouterr()
    fake_server.set_credits(lines(500, keys_used=100))
    assert run_dag(forecast_dags, dag_id)["read"] == "failed"
    out = capfd.readouterr().out
    messages = [line for line in out.splitlines() if "Tamtam credits below threshold" in line]
    assert messages, out[-3000:]
    assert (
        "Tamtam credits below threshold: MaxKeyAccountsUnlocked: 4900 remaining < 5000; "
        "forecast to run out within 3d: MaxKeyAccountsUnlocked: runs out in "
    ) in messages[-1]
    assert "; Exports: runs out in " in messages[-1]


def test_a_new_period_has_no_rate(
    forecast_dags: Path, fake_server: FakeTamtamServer, capfd: pytest.CaptureFixture[str]
) -> None:
    fake_server.set_credits(lines(900))
    assert run_dag(forecast_dags, "forecast_new_period")["read"] == "success"
    fake_server.set_credits(lines(10))  # used dropped: the period was renewed
    assert run_dag(forecast_dags, "forecast_new_period")["read"] == "success"
    assert table_row(capfd.readouterr().out, "Exports")[-2:] == ["-", "-"]


def test_burn_and_hours_left_gauges_when_known(forecast_dags: Path, fake_server: FakeTamtamServer) -> None:
    fake_server.set_credits(lines(100))
    drain_statsd()  # what earlier tests sent
    run_dag(forecast_dags, "forecast_no_horizon")
    first = drain_statsd()
    assert not any("burn_per_hour" in m or "hours_left" in m for m in first)
    fake_server.set_credits(lines(101))
    assert run_dag(forecast_dags, "forecast_no_horizon")["read"] == "success"  # no horizon: never fails
    metrics = drain_statsd()
    burn = [m for m in metrics if m.startswith("airflow.tamtam.credits.burn_per_hour.Exports:")]
    left = [m for m in metrics if m.startswith("airflow.tamtam.credits.hours_left.Exports:")]
    assert len(burn) == 1, metrics
    assert len(left) == 1, metrics
    burn_per_hour = float(burn[0].split(":")[1].split("|")[0])
    hours_left = float(left[0].split(":")[1].split("|")[0])
    assert burn_per_hour > 0
    assert hours_left == pytest.approx(899 / burn_per_hour, rel=1e-3)
    # zero burn: a rate of 0 and no hours_left
    flat = [
        m for m in metrics if m.startswith("airflow.tamtam.credits.burn_per_hour.MaxKeyAccountsUnlocked:")
    ]
    assert [float(m.split(":")[1].split("|")[0]) for m in flat] == [0.0], metrics
    assert not any(m.startswith("airflow.tamtam.credits.hours_left.MaxKeyAccountsUnlocked") for m in metrics)


@pytest.mark.parametrize("horizon", [0, -1, "soon", "3w", True, float("nan")])
def test_bad_horizons_are_rejected_when_the_dag_is_defined(horizon: object) -> None:
    with pytest.raises(TamtamConfigError, match="fail_if_runs_out_within must be a duration > 0"):
        TamtamGetCreditsOperator(task_id="read", fail_if_runs_out_within=horizon)  # type: ignore[arg-type]
