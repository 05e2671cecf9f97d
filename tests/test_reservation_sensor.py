"""TamtamCreditsSensor with credits_needed in a real Airflow (SQLite, dag.test()) against the fake server."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_tamtam.reservations import store_key
from airflow_provider_tamtam.testing import FakeTamtamServer, credit_line
from tests.airflow_run import run_dag

DAGS = Path(__file__).parent / "dags" / "tamtam_test_reservation_dags.py"
TYPE = "MaxKeyAccountsUnlocked"
KEY = store_key("tamtam_default", TYPE)


def stored_ledger() -> dict[str, Any] | None:
    """The ledger as the triggerer left it in the metadata database's Variables."""
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Variable).filter(Variable.key == KEY).one_or_none()
        return json.loads(row.val) if row is not None else None


def forget_ledger() -> None:
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Variable).filter(Variable.key == KEY).delete()


@pytest.fixture
def reservation_dags(
    airflow_db: Path,
    install_dag: Callable[[Path], Path],
    tamtam_conn: Callable[..., str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Path]:
    monkeypatch.setenv("TAMTAM_TEST_OUT", str(tmp_path))
    tamtam_conn()
    forget_ledger()
    yield install_dag(DAGS)
    forget_ledger()


def test_admitted_gate_reserves_in_the_store_and_the_next_run_waits_for_it(
    reservation_dags: Path,
    fake_server: FakeTamtamServer,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    fake_server.set_credits([credit_line(TYPE, used=4400, total=5000)])  # 600 remaining
    assert run_dag(reservation_dags, "reserve_gate") == {"wait": "success", "after": "success"}
    assert fake_server.request_count == 1  # the worker deferred without asking; the triggerer asked once
    assert json.loads((tmp_path / "reserve_gate.json").read_text()) == [
        credit_line(TYPE, used=4400, total=5000)
    ]
    ledger = stored_ledger()
    assert ledger is not None
    assert [r["credits"] for r in ledger["reservations"]] == [500]
    assert "500 needed; done; 500 reserved for this run" in capfd.readouterr().out

    # A second run in a new event loop: the 500 reserved by the first run come back from the store, and
    # 600 - 500 leaves too little.
    assert run_dag(reservation_dags, "reserve_gate_short_wait")["wait"] == "failed"
    out = capfd.readouterr().out
    assert "600 remaining, 500 reserved by 1 admitted run, 500 needed; 1st in line" in out

    # The first run spends its 500 and the plan is topped up by 400: 500 remaining, nothing reserved.
    fake_server.set_credits([credit_line(TYPE, used=4900, total=5400)])
    assert run_dag(reservation_dags, "reserve_gate")["wait"] == "success"


@pytest.mark.parametrize(
    ("dag_id", "message"),
    [
        ("reserve_gate_not_deferrable", "credits_needed needs deferrable=True"),
        ("reserve_gate_bad_timeout", "reservation_timeout must be a positive number of seconds"),
        ("reserve_gate_bad_need", "credits_needed must be a whole number >= 1, got 'lots'"),
        ("reserve_gate_missing_connection", "Tamtam connection 'tamtam_nowhere' is not defined"),
    ],
)
def test_a_misconfigured_gate_fails_before_any_request(
    reservation_dags: Path,
    fake_server: FakeTamtamServer,
    capfd: pytest.CaptureFixture[str],
    dag_id: str,
    message: str,
) -> None:
    states = run_dag(reservation_dags, dag_id)
    assert states["wait"] == "failed"
    assert fake_server.request_count == 0
    assert message in capfd.readouterr().out


def test_the_example_gate_reserves_by_default_and_takes_null_for_a_plain_floor(
    airflow_db: Path,
    install_dag: Callable[[Path], Path],
    tamtam_conn: Callable[..., str],
    fake_server: FakeTamtamServer,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("TAMTAM_GATE_POKE_INTERVAL", "0.2")
    tamtam_conn()
    forget_ledger()
    example = install_dag(Path(__file__).parent.parent / "example_dags" / "tamtam_gate_on_credits.py")
    fake_server.set_credits([credit_line(TYPE, used=4400, total=5000)])
    try:
        assert run_dag(example, "tamtam_gate_on_credits")["run_import"] == "success"
        assert "500 needed; done; 500 reserved for this run" in capfd.readouterr().out
        # 600 remaining, 500 reserved: a plain floor of 600 is met at once, without a reservation.
        conf = {"credits_needed": None, "min_credits": 600}
        assert run_dag(example, "tamtam_gate_on_credits", run_conf=conf)["run_import"] == "success"
        out = capfd.readouterr().out
        assert "Tamtam credits MaxKeyAccountsUnlocked: 600 remaining, 600 needed; waited" in out
        assert "reserved for this run" not in out
    finally:
        forget_ledger()
