"""The sections the credits page adds to each connection's card: burn rate and run-out forecast."""

from __future__ import annotations

import datetime as dt

from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.plugins.burn_rate_section import BurnRateSection
from airflow_provider_tamtam.plugins.credit_readings import CreditsReading
from airflow_provider_tamtam.plugins.page_sections import OPTIONAL_SOURCES, load_optional_sources

START = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.timezone.utc)


def reading(hours: float, used: int, total: int = 1000, credit_type: str = "Exports") -> CreditsReading:
    line = CreditLine(
        credit_type=credit_type, used_credits=used, total_credits=total, remaining_credits=total - used
    )
    return CreditsReading("acct", START + dt.timedelta(hours=hours), lines=(line,))


async def test_burn_rate_needs_three_readings_then_forecasts_the_run_out() -> None:
    section = BurnRateSection()

    first = await section.section("acct", reading(0, 100))
    again = await section.section("acct", reading(0, 100))  # the same reading, seen by another viewer
    await section.section("acct", reading(1, 200))
    third = await section.section("acct", reading(2, 300))

    assert first is not None
    assert again is not None
    assert third is not None
    assert first.rows[0].value == "not known yet"
    assert again.rows[0].detail == "1 of 3 readings needed"
    (row,) = third.rows
    assert row.label == "Exports"
    assert row.value == "runs out in 7h"  # 700 left at 100 per hour
    assert row.detail == "2400 credits/day over 3 readings"


async def test_a_new_billing_period_starts_the_rate_afresh() -> None:
    section = BurnRateSection()
    for hours, used in ((0, 100), (1, 200), (2, 300)):
        await section.section("acct", reading(hours, used))

    after_reset = await section.section("acct", reading(3, 10))

    assert after_reset is not None
    assert after_reset.rows[0].value == "not known yet"


async def test_connections_and_credit_types_have_their_own_histories() -> None:
    section = BurnRateSection()
    for hours, used in ((0, 100), (1, 200), (2, 300)):
        await section.section("acct", reading(hours, used))

    other = await section.section("other", reading(3, 400))
    other_type = await section.section("acct", reading(3, 5, credit_type="Seats"))

    assert other is not None
    assert other_type is not None
    assert other.rows[0].value == "not known yet"
    assert other_type.rows[0].value == "not known yet"


async def test_a_failed_first_reading_has_no_burn_rate_section() -> None:
    failed = CreditsReading("acct", START, error="Tamtam API answered HTTP 503")
    assert await BurnRateSection().section("acct", failed) is None


def test_the_page_loads_the_reservations_and_burn_rate_sections_by_default() -> None:
    names = [type(source).__name__ for source in load_optional_sources(OPTIONAL_SOURCES)]
    assert names == ["ReservationsSection", "BurnRateSection"]
