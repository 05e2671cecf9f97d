"""TamtamGetCreditsOperator: read every credit line for audits, XCom, the task log and metrics."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from airflow_provider_tamtam._compat import AirflowFailException, stats
from airflow_provider_tamtam.exceptions import TamtamConfigError, no_task_retry_for_permanent_errors
from airflow_provider_tamtam.hooks.tamtam import TamtamHook
from airflow_provider_tamtam.models import CreditLine, CreditSummary

METRIC_PREFIX = "tamtam.credits"


class TamtamGetCreditsOperator(BaseOperator):
    """Push the account's credit lines to XCom, log them as a table and emit them as metrics.

    The return value (XCom ``return_value``) is a list of dicts with exactly the API's field names, in API
    order, filtered to ``credit_types`` when given. With ``fail_below`` the task fails, without task retries,
    when a line's remaining credits are below its threshold; the lines are pushed to XCom first, so
    downstream tasks and callbacks still see them.

    :param tamtam_conn_id: the Tamtam connection (templated).
    :param credit_types: only these credit types (templated); an unknown type is logged, not an error.
    :param fail_below: a threshold for every line, or ``{credit_type: threshold}`` for some types.
    """

    template_fields: Sequence[str] = ("credit_types", "tamtam_conn_id")
    ui_color = "#f4e2c6"

    def __init__(
        self,
        *,
        tamtam_conn_id: str = TamtamHook.default_conn_name,
        credit_types: Sequence[str] | None = None,
        fail_below: int | Mapping[str, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.tamtam_conn_id = tamtam_conn_id
        self.credit_types = credit_types
        self.fail_below = _checked_thresholds(fail_below)

    def execute(self, context: Context) -> list[dict[str, Any]]:
        with no_task_retry_for_permanent_errors():  # a bad argument or connection: no retry can fix it
            wanted = _checked_types(self.credit_types)
            lines = TamtamHook(self.tamtam_conn_id).get_credits()
        if wanted is not None:
            present = {line.credit_type for line in lines}
            for missing in sorted(set(wanted) - present):
                self.log.warning(
                    "Credit type %r is not on the account; types present: %s",
                    missing,
                    ", ".join(sorted(present)) or "none",
                )
            lines = [line for line in lines if line.credit_type in wanted]
        self.log.info("Tamtam credit lines (%d):\n%s", len(lines), format_table(lines))
        _emit_metrics(lines)
        result = [line.to_dict() for line in lines]
        low = [line for line in lines if line.remaining_credits < self._threshold(line.credit_type)]
        if low:
            context["ti"].xcom_push(key="return_value", value=result)
            described = "; ".join(
                f"{ln.credit_type}: {ln.remaining_credits} remaining < {self._threshold(ln.credit_type)}"
                for ln in low
            )
            raise AirflowFailException(f"Tamtam credits below threshold: {described}")
        return result

    def _threshold(self, credit_type: str) -> float:
        if self.fail_below is None:
            return float("-inf")
        if isinstance(self.fail_below, int):
            return self.fail_below
        return self.fail_below.get(credit_type, float("-inf"))


def format_table(lines: Sequence[CreditLine]) -> str:
    """Render lines as an aligned text table with the share of credits remaining."""
    rows = [("credit_type", "used", "total", "remaining", "% remaining")]
    for line in lines:
        share = f"{100 * line.remaining_credits / line.total_credits:.1f}%" if line.total_credits else "-"
        rows.append(
            (
                line.credit_type,
                str(line.used_credits),
                str(line.total_credits),
                str(line.remaining_credits),
                share,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    )


def _emit_metrics(lines: Sequence[CreditLine]) -> None:
    """Gauges per credit type, summed over its lines: tagged where the backend has tags, named otherwise."""
    metrics = stats()
    for credit_type in dict.fromkeys(line.credit_type for line in lines):
        summary = CreditSummary.of(list(lines), credit_type)
        safe = re.sub(r"[^A-Za-z0-9_-]", "_", credit_type)
        for field, value in (
            ("remaining", summary.remaining),
            ("used", summary.used),
            ("total", summary.total),
        ):
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
