"""The credits page's shared readings: one call per period, slow and failing APIs, extra sections.

The readings are driven through the real hook against the fake server, or through a counting fetch where
the test is about the cache alone; the clock is a counter the test advances.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from airflow_provider_tamtam.exceptions import TamtamAPIError
from airflow_provider_tamtam.models import CreditLine
from airflow_provider_tamtam.plugins.credit_readings import CreditReadings, CreditsReading
from airflow_provider_tamtam.plugins.credits_page import (
    create_credits_app,
    refresh_seconds_from_config,
    tamtam_connections_in_environment,
)
from airflow_provider_tamtam.plugins.page_sections import PageSection, SectionRow, load_optional_sources
from airflow_provider_tamtam.testing import FakeTamtamServer, delay_fault
from tests.conftest import API_KEY
from tests.credits_page_support import JWT_ISSUER_ENV, bearer, conn_json, read_cards, unique_conn_id

LINE = CreditLine(credit_type="Exports", used_credits=1, total_credits=10, remaining_credits=9)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingFetch:
    def __init__(self, *, fail: BaseException | None = None) -> None:
        self.calls: list[str] = []
        self.fail = fail

    async def __call__(self, conn_id: str) -> list[CreditLine]:
        self.calls.append(conn_id)
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        return [LINE]


async def test_one_fetch_per_connection_per_refresh_period() -> None:
    clock, fetch = Clock(), CountingFetch()
    readings = CreditReadings(60, fetch=fetch, clock=clock)

    await asyncio.gather(*(readings.read_all(["a", "b"]) for _ in range(50)))
    clock.now += 59.9
    await asyncio.gather(*(readings.read("a") for _ in range(50)))
    assert sorted(fetch.calls) == ["a", "b"]

    clock.now += 0.1
    reading = (await asyncio.gather(*(readings.read("a") for _ in range(50))))[0]
    assert sorted(fetch.calls) == ["a", "a", "b"]
    assert reading is not None
    assert reading.lines == (LINE,)


async def test_a_failing_fetch_is_remembered_for_the_period_too() -> None:
    clock = Clock()
    fetch = CountingFetch(fail=TamtamAPIError("Tamtam API answered HTTP 503", status=503))
    readings = CreditReadings(30, fetch=fetch, clock=clock)

    first = await readings.read("a")
    second = await readings.read("a")

    assert fetch.calls == ["a"]
    assert first is second
    assert first is not None
    assert first.error == "Tamtam API answered HTTP 503"
    assert first.lines == ()


async def test_a_failure_after_a_success_keeps_the_last_known_lines(page_client: Any) -> None:
    clock, fetch = Clock(), CountingFetch()
    readings = CreditReadings(60, fetch=fetch, clock=clock)
    app = create_credits_app(readings=readings, sources=[], list_connections=lambda user: ["acct"])
    client = page_client(app)
    good = read_cards((await client.get("/", headers=bearer("op"))).text)["acct"]

    fetch.fail = TamtamAPIError("Tamtam API answered HTTP 503", status=503)
    clock.now += 60
    failed = read_cards((await client.get("/", headers=bearer("op"))).text)["acct"]

    assert fetch.calls == ["acct", "acct"]
    assert failed.error == "Tamtam API answered HTTP 503"
    assert failed.rows == good.rows == {"Exports": {"remaining": 9, "used": 1, "total": 10}}
    assert "Last successful reading" in failed.text
    assert "Last successful reading" not in good.text
    assert failed.read_at is not None
    assert good.read_at is not None
    assert failed.read_at > good.read_at


async def test_unexpected_exceptions_show_their_type_only() -> None:
    fetch = CountingFetch(fail=RuntimeError("boom with Authorization: tt-live-SECRET"))
    readings = CreditReadings(30, fetch=fetch)

    reading = await readings.read("a")

    assert reading is not None
    assert reading.error is not None
    assert "RuntimeError" in reading.error
    assert "SECRET" not in reading.error


async def test_a_slow_api_holds_neither_the_page_nor_the_event_loop(
    page_client: Any, fake_server: FakeTamtamServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn_id = unique_conn_id()
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json(host=fake_server.url, password=API_KEY))
    fake_server.add_faults(delay_fault(3.0))
    readings = CreditReadings(60, wait_seconds=0.2)
    client = page_client(create_credits_app(readings=readings, sources=[]))
    lags: list[float] = []

    async def ticker() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.05)
            lags.append(time.monotonic() - before - 0.05)

    ticking = asyncio.create_task(ticker())
    started = time.monotonic()
    first = await client.get("/", headers=bearer("op"))
    elapsed = time.monotonic() - started
    while readings.refreshing(conn_id):  # noqa: ASYNC110 (the refresh owns no event to wait on)
        await asyncio.sleep(0.05)
    ticking.cancel()
    later = await client.get("/", headers=bearer("op"))

    assert elapsed < 2.0, f"the page waited {elapsed:.1f} s for an API that takes 3 s"
    pending = read_cards(first.text)[conn_id]
    assert pending.refreshing
    assert not pending.rows
    assert "first reading is on its way" in pending.text
    assert max(lags) < 1.0, f"the event loop stalled for {max(lags):.2f} s"
    assert read_cards(later.text)[conn_id].rows["MaxKeyAccountsUnlocked"]["remaining"] == 4990
    assert fake_server.request_count == 1


class ForecastLike:
    title = "Runs out"

    async def section(self, conn_id: str, reading: CreditsReading) -> PageSection | None:
        rows = tuple(SectionRow(line.credit_type, "in 3 days", "at 12 credits/h") for line in reading.lines)
        return PageSection(self.title, rows=rows)


class Broken:
    title = "Reservations"

    async def section(self, conn_id: str, reading: CreditsReading) -> PageSection | None:
        raise KeyError("ledger")


async def test_extra_sections_plug_into_each_card_and_a_broken_one_is_contained(
    page_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    readings = CreditReadings(60, fetch=CountingFetch())
    app = create_credits_app(
        readings=readings, sources=[ForecastLike(), Broken()], list_connections=lambda user: ["acct"]
    )

    page = await page_client(app).get("/", headers=bearer("op"))

    card = read_cards(page.text)["acct"]
    assert card.sections == ["Runs out", "Reservations"]
    assert "in 3 days" in card.text
    assert "at 12 credits/h" in card.text
    assert "Unavailable (KeyError)" in card.text
    assert card.rows["Exports"] == {"remaining": 9, "used": 1, "total": 10}


def test_optional_sections_of_absent_modules_are_skipped() -> None:
    sources = load_optional_sources(("airflow_provider_tamtam.no_such_feature:Section",))
    assert sources == []


def test_refresh_setting_is_checked_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__TAMTAM__UI_REFRESH_SECONDS", "15")
    assert refresh_seconds_from_config() == 15
    monkeypatch.setenv("AIRFLOW__TAMTAM__UI_REFRESH_SECONDS", "0")
    with pytest.raises(ValueError, match=r"\[tamtam\] ui_refresh_seconds must be .* >= 1, got '0'"):
        refresh_seconds_from_config()


async def test_a_bad_refresh_setting_shows_on_the_page(
    page_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__TAMTAM__UI_REFRESH_SECONDS", "soon")
    app = create_credits_app(sources=[], list_connections=lambda user: [])

    page = await page_client(app).get("/", headers=bearer("op"))

    assert "ui_refresh_seconds must be a whole number of seconds &gt;= 1, got &#39;soon&#39;" in page.text
    assert "using 60 s" in page.text


def test_environment_connections_of_type_tamtam_in_both_forms() -> None:
    environ = {
        "AIRFLOW_CONN_JSON_ONE": conn_json(host="https://example.invalid"),
        "AIRFLOW_CONN_URI_ONE": "tamtam://:key@example.invalid",
        "AIRFLOW_CONN_OTHER": "http://example.invalid",
        "AIRFLOW_CONN_BROKEN": "{not json",
        "NOT_A_CONN": conn_json(),
    }
    assert tamtam_connections_in_environment(environ) == {"json_one", "uri_one"}


@pytest.fixture(scope="module")
def auth_manager_ready(airflow_db: Any) -> Iterator[None]:
    """Build the api-server app once: it sets up the auth manager that the page's access checks use."""
    from airflow.api_fastapi.app import create_app

    with pytest.MonkeyPatch.context() as patch:
        for key, value in JWT_ISSUER_ENV.items():
            patch.setenv(key, value)
        create_app()
        yield


@pytest.fixture
def page_client(auth_manager_ready: None) -> Any:
    """An HTTP client for a page app built by the test, with the api-server's own access checks."""

    def make(app: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api-server")

    return make


class OnlyAlphaAuthManager:
    """An auth manager of the 3.1 kind: one connection at a time."""

    def __init__(self) -> None:
        self.asked: list[Any] = []

    def is_authorized_connection(self, *, method: str, details: Any, user: Any) -> bool:
        self.asked.append(details)
        return method == "GET" and details.conn_id.startswith("alpha")


class TeamAuthManager(OnlyAlphaAuthManager):
    """An auth manager of the 3.2+ kind, filtering a set at once, per team."""

    def filter_authorized_connections(
        self, *, conn_ids: set[str], user: Any, method: str = "GET", team_name: str | None = None
    ) -> set[str]:
        self.asked.append(team_name)
        return {conn_id for conn_id in conn_ids if team_name == "red"}


def test_each_user_sees_only_the_connections_their_auth_manager_allows() -> None:
    from airflow_provider_tamtam.plugins.credits_page import _filter_readable

    one_by_one = OnlyAlphaAuthManager()
    assert _filter_readable(one_by_one, "someone", {"alpha_1", "beta_1"}, None) == {"alpha_1"}
    assert sorted(d.conn_id for d in one_by_one.asked) == ["alpha_1", "beta_1"]
    assert _filter_readable(one_by_one, "someone", {"alpha_2"}, "blue") == {"alpha_2"}
    assert one_by_one.asked[-1].team_name == "blue"

    teams = TeamAuthManager()
    assert _filter_readable(teams, "someone", {"x", "y"}, "red") == {"x", "y"}
    assert _filter_readable(teams, "someone", {"z"}, None) == set()
    assert teams.asked == ["red", None]
