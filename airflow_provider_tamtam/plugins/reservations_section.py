"""Credits page section: the credits that admitted gates hold in the reservation ledgers of a connection.

The triggerer keeps each ledger's reservations in an Airflow Variable (see
:mod:`airflow_provider_tamtam.reservations.store`); the page reads them from the metadata database and
judges each against its own reading of the credits, the way the ledger releases them: spent, lapsed, or
from an earlier billing period. Runs still waiting in line are known to the triggerer alone.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

from airflow_provider_tamtam.models import CreditSummary
from airflow_provider_tamtam.plugins.credit_readings import CreditsReading
from airflow_provider_tamtam.plugins.page_sections import PageSection, SectionRow
from airflow_provider_tamtam.reservations import Ledger, store_key


class ReservationsSection:
    """Outstanding reservations per credit type of each connection."""

    title = "Reservations"

    async def section(self, conn_id: str, reading: CreditsReading) -> PageSection | None:
        if not reading.lines:
            return None
        credit_types = sorted({line.credit_type for line in reading.lines})
        states = await asyncio.to_thread(stored_states, conn_id, credit_types)
        now = time.time()
        rows = []
        for credit_type in credit_types:
            state = states.get(credit_type)
            if state is None:
                continue
            ledger = Ledger()
            ledger.merge_state(state)
            used = CreditSummary.of(list(reading.lines), credit_type).used
            for held in sorted(ledger.reservations.values(), key=lambda r: r.admitted_at):
                if held.released(used, now, ledger.period_started_at):
                    continue
                rows.append(
                    SectionRow(
                        credit_type,
                        f"{held.outstanding(used)} of {held.credits} held",
                        f"{held.gate_id}; admitted {_utc(held.admitted_at)}, "
                        f"lapses {_utc(held.admitted_at + held.timeout)}",
                    )
                )
        if not rows:
            return PageSection(self.title, note="No credits reserved.")
        return PageSection(self.title, rows=tuple(rows), note="Runs still waiting in line are not shown.")


def stored_states(conn_id: str, credit_types: list[str]) -> dict[str, dict[str, Any]]:
    """The stored ledger state of each credit type that has one (a blocking database read)."""
    from airflow.models import Variable

    states = {}
    for credit_type in credit_types:
        raw = Variable.get(store_key(conn_id, credit_type), default_var=None)
        if raw is None:
            continue
        try:
            state = json.loads(raw)
        except ValueError:
            continue
        if isinstance(state, dict):
            states[credit_type] = state
    return states


def _utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
