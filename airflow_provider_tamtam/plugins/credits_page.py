"""The "Tamtam credits" page: a FastAPI app, mounted in the api-server, that renders every account's credits.

Server-rendered HTML from a Jinja2 template shipped with the package (inline CSS and SVG bars, light and dark
colour schemes, nothing fetched from elsewhere, no JavaScript). Only users whose role may read connections
get the page; the rest get 401 (no or expired session) or 403 (signed in but not allowed), as from the
api-server's own routes, whose authentication functions this app reuses. A user sees the connections they
may read, and the HTML never holds a credential: readings carry only credit lines and error messages.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the route's ``Annotated`` dependencies at
# definition time, and they name objects that exist only inside ``create_credits_app``.
import asyncio
import datetime as dt
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from airflow_provider_tamtam.models import CreditLine, CreditSummary
from airflow_provider_tamtam.plugins.credit_readings import CreditReadings, CreditsReading
from airflow_provider_tamtam.plugins.page_sections import (
    PageSection,
    SectionSource,
    load_optional_sources,
    sections_for,
)

if TYPE_CHECKING:
    from fastapi import FastAPI

log = logging.getLogger(__name__)

CONN_TYPE = "tamtam"
CONFIG_SECTION = "tamtam"
REFRESH_OPTION = "ui_refresh_seconds"
DEFAULT_REFRESH_SECONDS = 60
#: How long one page request waits for a refresh in flight before it shows the previous reading.
PAGE_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class CreditTypeRow:
    """One credit type of one account: the sums of its lines and the lines themselves."""

    credit_type: str
    remaining: int
    used: int
    total: int
    lines: tuple[CreditLine, ...]

    @property
    def remaining_percent(self) -> float:
        """Remaining share of the total for the bar, within 0..100 (an overdrawn line shows empty)."""
        if self.total <= 0:
            return 0.0
        return max(0.0, min(100.0, 100.0 * self.remaining / self.total))

    @property
    def level(self) -> str:
        """low (under 10 %), mid (under 25 %) or ok: the bar's colour."""
        percent = self.remaining_percent
        return "low" if percent < 10 else "mid" if percent < 25 else "ok"


@dataclass(frozen=True)
class ConnectionCard:
    """Everything the page shows about one connection."""

    conn_id: str
    reading: CreditsReading | None
    refreshing: bool
    rows: tuple[CreditTypeRow, ...] = ()
    sections: tuple[PageSection, ...] = field(default=())


def credit_type_rows(lines: tuple[CreditLine, ...]) -> tuple[CreditTypeRow, ...]:
    """One row per credit type, in name order, summing the lines of every active subscription."""
    rows = []
    for credit_type in sorted({line.credit_type for line in lines}):
        summary = CreditSummary.of(list(lines), credit_type)
        rows.append(CreditTypeRow(credit_type, summary.remaining, summary.used, summary.total, summary.lines))
    return tuple(rows)


def refresh_seconds_from_config() -> int:
    """``[tamtam] ui_refresh_seconds``: a whole number of seconds, at least 1; default 60."""
    from airflow_provider_tamtam._compat import conf

    raw = conf.get(CONFIG_SECTION, REFRESH_OPTION, fallback=str(DEFAULT_REFRESH_SECONDS))
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(
            f"[{CONFIG_SECTION}] {REFRESH_OPTION} must be a whole number of seconds >= 1, got {raw!r}"
        )
    return value


def tamtam_connections_in_environment(environ: dict[str, str] | None = None) -> set[str]:
    """Ids of the ``AIRFLOW_CONN_*`` connections of type tamtam (JSON or URI form) this process sees."""
    import json
    from urllib.parse import urlsplit

    found = set()
    for key, value in (os.environ if environ is None else environ).items():
        if not key.startswith("AIRFLOW_CONN_") or not value.strip():
            continue
        text = value.strip()
        if text.startswith("{"):
            try:
                conn_type = json.loads(text).get("conn_type")
            except (ValueError, AttributeError):
                continue
        else:
            conn_type = urlsplit(text).scheme.replace("-", "_")
        if conn_type == CONN_TYPE:
            found.add(key.removeprefix("AIRFLOW_CONN_").lower())
    return found


def tamtam_connections_by_team() -> dict[str | None, set[str]]:
    """Connections of type tamtam in the metadata database, by team (None outside multi-team setups)."""
    from airflow.models import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import literal, select

    team = getattr(Connection, "team_name", None)
    columns = (Connection.conn_id, team if team is not None else literal(None))
    by_team: dict[str | None, set[str]] = {}
    with create_session() as session:
        for conn_id, team_name in session.execute(select(*columns).where(Connection.conn_type == CONN_TYPE)):
            by_team.setdefault(team_name, set()).add(conn_id)
    return by_team


def readable_connections(user: Any) -> list[str]:
    """The tamtam connections (database and environment) that ``user`` may read, sorted by id."""
    from airflow.api_fastapi.app import get_auth_manager

    by_team = tamtam_connections_by_team()
    env_only = tamtam_connections_in_environment() - set().union(*by_team.values())
    if env_only:
        by_team.setdefault(None, set()).update(env_only)
    auth_manager = get_auth_manager()
    allowed: set[str] = set()
    for team_name, conn_ids in by_team.items():
        allowed |= _filter_readable(auth_manager, user, conn_ids, team_name)
    return sorted(allowed)


def _filter_readable(auth_manager: Any, user: Any, conn_ids: set[str], team_name: str | None) -> set[str]:
    if hasattr(auth_manager, "filter_authorized_connections"):
        kwargs: dict[str, Any] = {"conn_ids": conn_ids, "user": user, "method": "GET"}
        if team_name is not None:
            kwargs["team_name"] = team_name
        return set(auth_manager.filter_authorized_connections(**kwargs))
    from airflow.api_fastapi.auth.managers.models.resource_details import ConnectionDetails

    return {
        conn_id
        for conn_id in conn_ids
        if auth_manager.is_authorized_connection(
            method="GET", details=ConnectionDetails(conn_id=conn_id, team_name=team_name), user=user
        )
    }


def _access_dependencies() -> tuple[Any, Callable[..., Any]]:
    """The api-server's own checks: may the caller read connections at all, and who is the caller."""
    from airflow.api_fastapi.core_api.security import get_user, requires_access_connection
    from fastapi import Depends

    return Depends(requires_access_connection("GET")), get_user


def create_credits_app(
    *,
    readings: CreditReadings | None = None,
    sources: list[SectionSource] | None = None,
    list_connections: Callable[[Any], list[str]] = readable_connections,
) -> "FastAPI":
    """Build the page's app; the arguments exist for tests, the defaults read Airflow's config."""
    from fastapi import Depends, FastAPI
    from fastapi.responses import HTMLResponse

    from airflow_provider_tamtam.plugins.rendering import render_page

    config_error = ""
    if readings is None:
        try:
            readings = CreditReadings(refresh_seconds_from_config(), wait_seconds=PAGE_WAIT_SECONDS)
        except ValueError as exc:
            config_error = str(exc)
            readings = CreditReadings(DEFAULT_REFRESH_SECONDS, wait_seconds=PAGE_WAIT_SECONDS)
    page_sources = load_optional_sources() if sources is None else sources
    may_read_connections, get_user = _access_dependencies()
    app = FastAPI(title="Tamtam credits", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/", response_class=HTMLResponse, dependencies=[may_read_connections])
    async def credits_page(user: Annotated[Any, Depends(get_user)]) -> HTMLResponse:
        conn_ids = await asyncio.to_thread(list_connections, user)
        found = await readings.read_all(conn_ids)
        cards = [await _card(conn_id, found[conn_id], readings, page_sources) for conn_id in conn_ids]
        html = render_page(
            cards=cards,
            refresh_seconds=int(readings.refresh_seconds),
            now=dt.datetime.now(dt.timezone.utc),
            config_error=config_error,
        )
        return HTMLResponse(html, headers={"Cache-Control": "no-store"})

    return app


async def _card(
    conn_id: str, reading: CreditsReading | None, readings: CreditReadings, sources: list[SectionSource]
) -> ConnectionCard:
    if reading is None:
        return ConnectionCard(conn_id, None, refreshing=True)
    sections = await sections_for(sources, conn_id, reading) if reading.lines or not reading.error else []
    return ConnectionCard(
        conn_id,
        reading,
        refreshing=readings.refreshing(conn_id),
        rows=credit_type_rows(reading.lines),
        sections=tuple(sections),
    )
