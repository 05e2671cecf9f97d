"""TamtamGetCreditsOperator: read every credit line for audits, XCom, the task log and metrics."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_provider_tamtam._compat import AirflowFailException, stats
from airflow_provider_tamtam.exceptions import TamtamConfigError, no_task_retry_for_permanent_errors
from airflow_provider_tamtam.forecast import (
    Forecast,
    format_duration,
    format_rate,
    parse_horizon,
    sample_forecasts,
)
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.models import CreditLine, CreditSummary

METRIC_PREFIX = "tamtam.credits"


class TamtamGetCreditsOperator(BaseOperator):
    """Push the account's credit lines to XCom, log them as a table and emit them as metrics.

    The return value (XCom ``return_value``) is a list of dicts with exactly the API's field names, in API
    order, filtered to ``credit_types`` when given. With ``fail_below`` the task fails, without task retries,
    when a line's remaining credits are below its threshold; the lines are pushed to XCom first, so
    downstream tasks and callbacks still see them.

    Each run also pushes XCom ``sample`` (``{"fetched_at": ISO-8601 UTC, "lines": [...]}``); the burn rate
    of each credit type is the change of its used credits since the sample of the task's previous
    successful run (read from Airflow's XCom), and the forecast is ``remaining / rate``. The table shows both;
    with ``fail_if_runs_out_within`` a type forecast to run out sooner fails the task, without task retries.

    :param tamtam_conn_id: the Tamtam connection (templated).
    :param credit_types: only these credit types (templated); an unknown type is logged, not an error.
    :param fail_below: a threshold for every line, or ``{credit_type: threshold}`` for some types.
    :param fail_if_runs_out_within: a horizon: seconds, a timedelta, or a string such as ``"3d"``.
    """

    template_fields: Sequence[str] = ("credit_types", "tamtam_conn_id")
    ui_color = "#f4e2c6"

    def __init__(
        self,
        *,
        tamtam_conn_id: str = TamtamHook.default_conn_name,
        credit_types: Sequence[str] | None = None,
        fail_below: int | Mapping[str, int] | None = None,
        fail_if_runs_out_within: float | timedelta | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tamtam_conn_id = tamtam_conn_id
        self.credit_types = credit_types
        self.fail_below = _checked_thresholds(fail_below)
        self.fail_if_runs_out_within = (
            None
            if fail_if_runs_out_within is None
            else parse_horizon(fail_if_runs_out_within, "fail_if_runs_out_within")
        )

    def execute(self, context: Context) -> list[dict[str, Any]]:
        with no_task_retry_for_permanent_errors():  # a bad argument or connection: no retry can fix it
            wanted = _checked_types(self.credit_types)
            lines = TamtamHook(self.tamtam_conn_id).get_credits()
        fetched_at = datetime.now(timezone.utc)
        if wanted is not None:
            present = {line.credit_type for line in lines}
            for missing in sorted(set(wanted) - present):
                self.log.warning(
                    "Credit type %r is not on the account; types present: %s",
                    missing,
                    ", ".join(sorted(present)) or "none",
                )
            lines = [line for line in lines if line.credit_type in wanted]
        forecasts = sample_forecasts(self._previous_sample(context), lines, fetched_at)
        self.log.info("Tamtam credit lines (%d):\n%s", len(lines), format_table(lines, forecasts))
        _emit_metrics(lines, forecasts)
        result = [line.to_dict() for line in lines]
        context["ti"].xcom_push(key="sample", value={"fetched_at": fetched_at.isoformat(), "lines": result})
        problems = self._below_thresholds(lines) + self._running_out(forecasts)
        if problems:
            context["ti"].xcom_push(key="return_value", value=result)
            raise AirflowFailException("Tamtam credits " + "; ".join(problems))
        return result

    def _below_thresholds(self, lines: Sequence[CreditLine]) -> list[str]:
        """The ``fail_below`` part of the failure message, if any line is below its threshold."""
        low = [line for line in lines if line.remaining_credits < self._threshold(line.credit_type)]
        if not low:
            return []
        described = "; ".join(
            f"{ln.credit_type}: {ln.remaining_credits} remaining < {self._threshold(ln.credit_type)}"
            for ln in low
        )
        return [f"below threshold: {described}"]

    def _running_out(self, forecasts: Mapping[str, Forecast]) -> list[str]:
        """The ``fail_if_runs_out_within`` part of the failure message, if a type runs out too soon."""
        horizon = self.fail_if_runs_out_within
        soon = {t: f for t, f in forecasts.items() if horizon is not None and f.within(horizon)}
        if horizon is None or not soon:
            return []
        described = "; ".join(
            f"{t}: runs out in {format_duration(f.runs_out_in)} at {format_rate(f.rate)}/day"
            for t, f in soon.items()
        )
        return [f"forecast to run out within {format_duration(horizon)}: {described}"]

    def _previous_sample(self, context: Context) -> Any:
        """The ``sample`` of this task's previous successful run, from Airflow's XCom history, or ``None``."""
        ti: Any = context["ti"]
        if not hasattr(ti, "get_previous_ti"):
            # Airflow 3.1 cannot look up the previous successful task instance: take the latest earlier
            # sample, whatever that run's final state (logs an XCom-not-found error when there is none)
            return ti.xcom_pull(
                task_ids=self.task_id, key="sample", include_prior_dates=True, map_indexes=ti.map_index
            )
        previous = ti.get_previous_ti(state="success", map_index=ti.map_index)
        if previous is None:
            return None
        return ti.xcom_pull(
            task_ids=self.task_id, key="sample", run_id=previous.run_id, map_indexes=ti.map_index
        )

    def _threshold(self, credit_type: str) -> float:
        if self.fail_below is None:
            return float("-inf")
        if isinstance(self.fail_below, int):
            return self.fail_below
        return self.fail_below.get(credit_type, float("-inf"))


def format_table(lines: Sequence[CreditLine], forecasts: Mapping[str, Forecast] | None = None) -> str:
    """Render lines as an aligned text table with the share of credits remaining and, given forecasts,
    each type's burn per day and when it runs out."""
    header = ("credit_type", "used", "total", "remaining", "% remaining")
    rows = [header + (("used/day", "runs out in") if forecasts is not None else ())]
    for line in lines:
        share = f"{100 * line.remaining_credits / line.total_credits:.1f}%" if line.total_credits else "-"
        row: tuple[str, ...] = (
            line.credit_type,
            str(line.used_credits),
            str(line.total_credits),
            str(line.remaining_credits),
            share,
        )
        if forecasts is not None:
            forecast = forecasts.get(line.credit_type, Forecast(None, None))
            row += (format_rate(forecast.rate), format_duration(forecast.runs_out_in))
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def _emit_metrics(lines: Sequence[CreditLine], forecasts: Mapping[str, Forecast]) -> None:
    """Gauges per credit type, summed over its lines: tagged where the backend has tags, named otherwise.

    ``burn_per_hour`` and ``hours_left`` are emitted only when known (``hours_left`` not at zero burn).
    """
    metrics = stats()
    for credit_type in dict.fromkeys(line.credit_type for line in lines):
        summary = CreditSummary.of(list(lines), credit_type)
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", credit_type)
        forecast = forecasts.get(credit_type, Forecast(None, None))
        values: list[tuple[str, float]] = [
            ("remaining", summary.remaining),
            ("used", summary.used),
            ("total", summary.total),
        ]
        if forecast.rate is not None:
            values.append(("burn_per_hour", forecast.rate * 3600))
        if forecast.runs_out_in is not None and math.isfinite(forecast.runs_out_in):
            values.append(("hours_left", forecast.runs_out_in / 3600))
        for field, value in values:
            metrics.gauge(f"{METRIC_PREFIX}.{field}", value, tags={"credit_type": credit_type})
            metrics.gauge(f"{METRIC_PREFIX}.{field}.{safe}", value)


def _checked_types(credit_types: Sequence[str] | str | None) -> list[str] | None:
    if credit_types is None:
        return None
    if isinstance(credit_types, str):
        return [credit_types]
    if not all(isinstance(t, str) and t for t in credit_types):
        raise TamtamConfigError(f"credit_types must be a list of credit type names, got {credit_types!r}")
    return list(credit_types)


def _checked_thresholds(fail_below: Any) -> int | dict[str, int] | None:
    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if fail_below is None or whole(fail_below):
        return fail_below  # type: ignore[no-any-return]
    if isinstance(fail_below, Mapping) and all(
        isinstance(k, str) and whole(v) for k, v in fail_below.items()
    ):
        return dict(fail_below)
    raise TamtamConfigError(
        f"fail_below must be a whole number >= 0 or a mapping of credit type to one, got {fail_below!r}"
    )
