"""Credits page section: each credit type's burn rate and when it runs out, from the page's own readings.

The page reads each connection at most once per refresh period; every reading adds a point of used credits
per credit type, and the least-squares rate over the last day (three readings at least; a new billing
period starts afresh) gives "runs out in", as the audit operator and the credits watcher compute it.
The history lives in the api-server process and grows only while someone looks at the page.
"""

from __future__ import annotations

from airflow_provider_tamtam.forecast import Forecast, UsageHistory, format_duration, format_rate
from airflow_provider_tamtam.models import CreditSummary
from airflow_provider_tamtam.plugins.credit_readings import CreditsReading
from airflow_provider_tamtam.plugins.page_sections import PageSection, SectionRow

WINDOW_SECONDS = 86400.0
MIN_READINGS = 3


class BurnRateSection:
    """Burn rate and "runs out in" per credit type of each connection."""

    title = "Burn rate"

    def __init__(self, window_seconds: float = WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self._histories: dict[tuple[str, str], UsageHistory] = {}

    async def section(self, conn_id: str, reading: CreditsReading) -> PageSection | None:
        if not reading.lines:
            return None
        at = (reading.lines_read_at or reading.read_at).timestamp()
        rows = []
        for credit_type in sorted({line.credit_type for line in reading.lines}):
            summary = CreditSummary.of(list(reading.lines), credit_type)
            history = self._histories.setdefault((conn_id, credit_type), UsageHistory(self.window_seconds))
            history.add(at, summary.used)  # the same reading seen again is ignored
            forecast = Forecast.of(summary.remaining, history.rate(MIN_READINGS))
            if forecast.rate is None:
                value = "not known yet"
                detail = f"{len(history.points)} of {MIN_READINGS} readings needed"
            else:
                value = f"runs out in {format_duration(forecast.runs_out_in)}"
                detail = f"{format_rate(forecast.rate)} credits/day over {len(history.points)} readings"
            rows.append(SectionRow(credit_type, value, detail))
        note = "From this page's own readings of the last 24 h; a new billing period starts afresh."
        return PageSection(self.title, rows=tuple(rows), note=note)
