"""Daily credit audit: read every credit line, fail on low balances or a fast burn, report the low lines.

The operator logs a table with each type's burn per day and when it runs out at that rate (from the
previous run's reading), emits ``tamtam.credits.*`` gauges and pushes the lines to XCom even when
``fail_below`` or ``fail_if_runs_out_within`` fails it, so the report task (which runs whatever the audit's
outcome) always sees them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import dag, task

from airflow_provider_tamtam.operators.tamtam import TamtamGetCreditsOperator

LOW_SHARE = 0.10  # a line with less than 10 % of its credits left is reported as low


@dag(
    dag_id="tamtam_credit_audit",
    schedule="@daily",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["tamtam", "example"],
)
def tamtam_credit_audit() -> None:
    read_credits = TamtamGetCreditsOperator(
        task_id="read_credits",
        tamtam_conn_id="tamtam_default",
        fail_below={"MaxKeyAccountsUnlocked": 100},
        fail_if_runs_out_within="3d",  # at the burn rate since the previous run
    )

    @task(trigger_rule="all_done")
    def report_low_lines(lines: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """Name the lines under LOW_SHARE of their total, e.g. to page someone or open a ticket."""
        low = [
            line
            for line in lines or []
            if line["total_credits"] and line["remaining_credits"] < LOW_SHARE * line["total_credits"]
        ]
        for line in low:
            print(
                f"LOW: {line['credit_type']} has {line['remaining_credits']} of {line['total_credits']} left"
            )
        if not low:
            print(f"All {len(lines or [])} credit line(s) have at least {LOW_SHARE:.0%} left")
        return low

    report_low_lines(read_credits.output)


tamtam_credit_audit()
