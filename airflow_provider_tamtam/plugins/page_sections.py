"""Extension point of the credits page: more sections on each connection's card.

A section source turns a connection's reading into a titled list of rows (say, the reservations of a
ledger, or a burn rate and "runs out in" forecast). The page asks every source for every connection; a
source that fails shows as unavailable on that card and never breaks the page. Sources of features that
live in optional modules are named in :data:`OPTIONAL_SOURCES` and skipped while their module is absent.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from airflow_provider_tamtam.plugins.credit_readings import CreditsReading

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SectionRow:
    """One row of a section: what it is about (a credit type, a gate), its value, and a detail line."""

    label: str
    value: str
    detail: str = ""


@dataclass(frozen=True)
class PageSection:
    """A titled block of rows on a connection's card; ``note`` says why it is empty, or adds a caveat."""

    title: str
    rows: tuple[SectionRow, ...] = ()
    note: str = ""


@runtime_checkable
class SectionSource(Protocol):
    """Something that adds a section to each connection's card; None means nothing to show there."""

    title: str

    async def section(self, conn_id: str, reading: CreditsReading) -> PageSection | None: ...


#: ``module:attribute`` of section sources whose module may not be installed; the attribute is a
#: zero-argument callable (a class, say) returning a :class:`SectionSource`.
OPTIONAL_SOURCES: tuple[str, ...] = (
    "airflow_provider_tamtam.plugins.reservations_section:ReservationsSection",
    "airflow_provider_tamtam.plugins.burn_rate_section:BurnRateSection",
)


def load_optional_sources(paths: tuple[str, ...] = OPTIONAL_SOURCES) -> list[SectionSource]:
    """Instantiate every optional source whose module imports; an absent module is skipped quietly."""
    sources: list[SectionSource] = []
    for path in paths:
        module_name, _, attribute = path.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):  # the feature is not installed: no section
                continue
            log.exception("Credits page section %s could not be imported; the page goes without it", path)
            continue
        source = getattr(module, attribute)()
        if isinstance(source, SectionSource):
            sources.append(source)
        else:
            log.error("Credits page section %s is not a section source (%s); skipped", path, type(source))
    return sources


async def sections_for(
    sources: list[SectionSource], conn_id: str, reading: CreditsReading
) -> list[PageSection]:
    """Every source's section of one connection, in order; a failing source becomes an 'unavailable' note."""
    sections: list[PageSection] = []
    for source in sources:
        try:
            section = await source.section(conn_id, reading)
        except Exception as exc:
            log.exception("Credits page section %r failed for connection %r", source.title, conn_id)
            note = f"Unavailable ({type(exc).__name__}); see the api-server log"
            section = PageSection(source.title, note=note)
        if section is not None:
            sections.append(section)
    return sections
