"""TamtamCreditsSensor in a real Airflow (SQLite, dag.test()) against the fake Tamtam server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line
from tests.airflow_run import run_dag, run_dag_tries

DAGS = Path(__file__).parent / "dags" / "tamtam_test_sensor_dags.py"
SHORT = [
    credit_line("MaxKeyAccountsUnlocked", used=4900, total=5000),
    credit_line("Exports", used=0, total=10),
]
# Two lines of the type: the sensor adds them up (300 + 250 >= 500).
ENOUGH = [
    credit_line("MaxKeyAccountsUnlocked", used=4700, total=5000),
    credit_line("Exports", used=0, total=10),
    credit_line("MaxKeyAccountsUnlocked", used=750, total=1000),
]


@pytest.fixture
def sensor_dags(
    airflow_db: Path,
    install_dag: Callable[[Path], Path],
    tamtam_conn: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    monkeypatch.setenv("TAMTAM_TEST_OUT", str(tmp_path))
    tamtam_conn()
    return install_dag(DAGS)


@pytest.mark.parametrize("dag_id", ["sensor_poke", "sensor_reschedule", "sensor_deferrable"])
def test_waits_while_short_then_lets_the_job_run(
    sensor_dags: Path,
    fake_server: FakeTamtamServer,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
) -> None:
    fake_server.schedule_credits([(3, SHORT), (0, ENOUGH)])
    states = run_dag(sensor_dags, dag_id)
    assert states == {"wait": "success", "after": "success"}
    assert fake_server.request_count == 4  # three short answers, then enough
    received = json.loads((tmp_path / f"{dag_id}.json").read_text())
    assert received == [ENOUGH[0], ENOUGH[2]]
    out = capfd.readouterr().out
    assert "Tamtam credits MaxKeyAccountsUnlocked: 100 remaining, 500 needed" in out


@pytest.mark.parametrize(("dag_id", "short_answers"), [("sensor_poke", 6), ("sensor_reschedule", 2)])
def test_poke_logs_progress_with_the_time_waited(
    sensor_dags: Path,
    fake_server: FakeTamtamServer,
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
    short_answers: int,
) -> None:
    fake_server.schedule_credits([(short_answers, SHORT), (0, ENOUGH)])
    assert run_dag(sensor_dags, dag_id)["wait"] == "success"
    waited = [
        timedelta(hours=int(h), minutes=int(m), seconds=int(s))
        for h, m, s in re.findall(r"500 needed; waited (\d+):(\d\d):(\d\d)", capfd.readouterr().out)
    ]
    assert len(waited) == short_answers + 1
    assert waited[0] == timedelta(0)
    assert waited == sorted(waited)
    # the last check comes at least 1.2 s (6 x 0.2 s) or 2 s (2 x 1 s reschedules) after the first
    assert timedelta(seconds=1) <= waited[-1] < timedelta(seconds=60)


def test_absent_type_counts_as_zero_and_names_the_types_present(
    sensor_dags: Path, fake_server: FakeTamtamServer, capfd: pytest.CaptureFixture[str]
) -> None:
    fake_server.set_credits([SHORT[1]])
    states = run_dag(sensor_dags, "sensor_timeout_poke")
    assert states["wait"] == "failed"
    out = capfd.readouterr().out
    assert (
        "MaxKeyAccountsUnlocked: 0 remaining, 500 needed (no line of type 'MaxKeyAccountsUnlocked'; types present: Exports)"
        in out
    )


@pytest.mark.parametrize("dag_id", ["sensor_poke", "sensor_reschedule", "sensor_deferrable"])
def test_wrong_key_fails_at_once_without_task_retries(
    sensor_dags: Path,
    fake_server: FakeTamtamServer,
    tamtam_conn: Callable[..., str],
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
) -> None:
    tamtam_conn(password="tt-wrong-key-0000")
    states = run_dag(sensor_dags, dag_id)
    assert states == {"wait": "failed", "after": "upstream_failed"}
    assert fake_server.request_count == 1  # the task has retries=2, yet nothing was retried
    assert "HTTP 401" in capfd.readouterr().out


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_timeout_fails_and_soft_fail_skips_without_task_retries(
    sensor_dags: Path, fake_server: FakeTamtamServer, mode: str
) -> None:
    fake_server.set_credits(SHORT)
    # the sensors have retries=2: a timeout raised as a retryable error would show as try 3
    assert run_dag_tries(sensor_dags, f"sensor_timeout_{mode}")["wait"] == ("failed", 1)
    assert run_dag_tries(sensor_dags, f"sensor_soft_fail_{mode}")["wait"] == ("skipped", 1)


def test_bad_min_credits_fails_before_any_request(sensor_dags: Path, fake_server: FakeTamtamServer) -> None:
    states = run_dag(sensor_dags, "sensor_poke", run_conf={"min_credits": "lots"})
    assert states["wait"] == "failed"
    assert fake_server.request_count == 0
