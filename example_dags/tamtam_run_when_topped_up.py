"""Run the backlog import when Tamtam credits are topped up, and raise an alert when they run low.

Three assets are updated by asset watchers in the triggerer, with no task waiting on a worker:

* ``tamtam/credits_available`` gets an event each time the remaining ``MaxKeyAccountsUnlocked`` credits
  rise to 1000 or more; it schedules ``tamtam_import_backlog``.
* ``tamtam/credits_low`` gets an event each time they fall below 5 % of the total;
* ``tamtam/exports_running_out`` gets an event each time ``Exports`` credits are forecast to run out
  within 3 days, at the burn rate of the last 6 hours of polls, while there is still time to act.

Either of the last two schedules ``tamtam_credits_low_alert``. Each watcher fires once per crossing, not on
every poll, so a balance that stays high does not start a run every five minutes. All three watchers use
the ``tamtam_default`` connection and poll every 300 s, so they share one request per interval. Nothing
here calls the API while the file is parsed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_tamtam.triggers.tamtam import TamtamCreditsEventTrigger

CREDIT_TYPE = "MaxKeyAccountsUnlocked"
CONN_ID = "tamtam_default"
POLL_INTERVAL = 300.0

credits_available = Asset(
    name="tamtam/credits_available",
    watchers=[
        AssetWatcher(
            name="tamtam_credits_topped_up",
            trigger=TamtamCreditsEventTrigger(
                credit_type=CREDIT_TYPE,
                threshold=1000,
                condition="at_least",
                tamtam_conn_id=CONN_ID,
                poll_interval=POLL_INTERVAL,
            ),
        )
    ],
)

credits_low = Asset(
    name="tamtam/credits_low",
    watchers=[
        AssetWatcher(
            name="tamtam_credits_below_5_percent",
            trigger=TamtamCreditsEventTrigger(
                credit_type=CREDIT_TYPE,
                threshold="5%",
                condition="below",
                tamtam_conn_id=CONN_ID,
                poll_interval=POLL_INTERVAL,
            ),
        )
    ],
)


exports_running_out = Asset(
    name="tamtam/exports_running_out",
    watchers=[
        AssetWatcher(
            name="tamtam_exports_run_out_within_3_days",
            trigger=TamtamCreditsEventTrigger(
                credit_type="Exports",
                threshold="3d",
                condition="runs_out_within",
                forecast_window=6 * 3600,
                tamtam_conn_id=CONN_ID,
                poll_interval=POLL_INTERVAL,
            ),
        )
    ],
)


def _latest_payload(triggering_asset_events: Any, asset: Asset) -> dict[str, Any]:
    """The trigger payload of the newest event of ``asset`` that started this run."""
    events = triggering_asset_events[asset]
    return dict(events[-1].extra.get("payload") or {}) if events else {}


with DAG(
    dag_id="tamtam_import_backlog",
    schedule=[credits_available],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["tamtam", "example"],
    doc_md=__doc__,
):

    @task
    def import_backlog(triggering_asset_events: Any = None) -> int:
        """Stand-in for the backlog import: process as many items as the credits allow."""
        payload = _latest_payload(triggering_asset_events, credits_available)
        remaining = int(payload.get("remaining", 0))
        print(f"{remaining} {CREDIT_TYPE} credits available: importing the backlog")
        return remaining

    import_backlog()


with DAG(
    dag_id="tamtam_credits_low_alert",
    schedule=(credits_low | exports_running_out),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["tamtam", "example"],
):

    @task
    def alert(triggering_asset_events: Any = None) -> None:
        """Stand-in for paging or posting to a channel: say how many credits are left, or for how long."""
        if low := _latest_payload(triggering_asset_events, credits_low):
            print(
                f"Tamtam {CREDIT_TYPE} credits are low: {low.get('remaining')} of {low.get('total')} "
                f"left (alert threshold {low.get('threshold')})"
            )
        if soon := _latest_payload(triggering_asset_events, exports_running_out):
            print(
                f"Tamtam Exports credits run out in {soon['runs_out_in'] / 3600:.1f} h at "
                f"{soon['burn_per_hour']:.1f} an hour: {soon.get('remaining')} left"
            )

    alert()
