"""The credits page's reservations section: what admitted gates hold, read from the stored ledgers."""

from __future__ import annotations

import datetime as dt

from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.plugins.credit_readings import CreditsReading

START = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.timezone.utc)


def stored_ledger(conn_id: str, used: int, total: int, gates: list[tuple[str, int, float]]) -> None:
    """Admit ``gates`` (id, credits, timeout) on a ledger and store it where the triggerer would."""
    import json
    import time

    from airflow.models import Variable

    from airflow_provider_tamtam.models import CreditSummary
    from airflow_provider_tamtam.reservations import Gate, Ledger, store_key

    line = CreditLine(
        credit_type="Exports", used_credits=used, total_credits=total, remaining_credits=total - used
    )
    ledger = Ledger()
    now = time.time()
    ledger.observe(CreditSummary.of([line], "Exports"), now)
    for position, (gate_id, credits, timeout) in enumerate(gates):
        ledger.join(Gate(gate_id, credits, 0, now + position, timeout), now)
    ledger.observe(CreditSummary.of([line], "Exports"), now)
    Variable.set(store_key(conn_id, "Exports"), json.dumps(ledger.to_state()))


async def test_reservations_show_what_admitted_gates_still_hold(airflow_db: object) -> None:
    from airflow_provider_tamtam.plugins.reservations_section import ReservationsSection

    conn_id = "tt_reservations_shown"
    stored_ledger(
        conn_id,
        used=100,
        total=1000,
        gates=[("dag_a/run_1/gate", 300, 3600), ("dag_b/run_7/gate", 200, 3600)],
    )

    as_stored = await ReservationsSection().section(conn_id, _reading(conn_id, used=100))
    partly_spent = await ReservationsSection().section(conn_id, _reading(conn_id, used=250))
    all_spent = await ReservationsSection().section(conn_id, _reading(conn_id, used=600))

    assert as_stored is not None
    assert [(row.value, row.detail.split(";")[0]) for row in as_stored.rows] == [
        ("300 of 300 held", "dag_a/run_1/gate"),
        ("200 of 200 held", "dag_b/run_7/gate"),
    ]
    assert partly_spent is not None
    assert [row.value for row in partly_spent.rows] == ["150 of 300 held", "200 of 200 held"]
    assert all_spent is not None
    assert all_spent.rows == ()
    assert all_spent.note == "No credits reserved."


async def test_lapsed_reservations_and_connections_without_a_ledger_show_none(airflow_db: object) -> None:
    from airflow_provider_tamtam.plugins.reservations_section import ReservationsSection

    stored_ledger("tt_reservations_lapsed", used=100, total=1000, gates=[("dag_a/run_1/gate", 300, 0.0)])

    lapsed = await ReservationsSection().section("tt_reservations_lapsed", _reading("x", used=100))
    no_ledger = await ReservationsSection().section("tt_no_ledger", _reading("tt_no_ledger", used=100))

    assert lapsed is not None
    assert lapsed.rows == ()
    assert no_ledger is not None
    assert no_ledger.note == "No credits reserved."


def _reading(conn_id: str, used: int) -> CreditsReading:
    line = CreditLine(
        credit_type="Exports", used_credits=used, total_credits=1000, remaining_credits=1000 - used
    )
    return CreditsReading(conn_id, START, lines=(line,))
