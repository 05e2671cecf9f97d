"""Run the backlog import when Tamtam credits are topped up, and raise an alert when they run low.

Two assets are updated by asset watchers in the triggerer, with no task waiting on a worker:

* ``tamtam/credits_available`` gets an event each time the remaining ``MaxKeyAccountsUnlocked`` credits
  rise to 1000 or more; it schedules ``tamtam_import_backlog``.
* ``tamtam/credits_low`` gets an event each time they fall below 5 % of the total; it schedules
  ``tamtam_credits_low_alert``.

Each watcher fires once per crossing, not on every poll, so a balance that stays high does not start a
run every five minutes. Both watchers use the ``tamtam_default`` connection and poll every 300 s, so they
share one request per interval. Nothing here calls the API while the file is parsed.
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
    schedule=[credits_low],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["tamtam", "example"],
):

    @task
    def alert(triggering_asset_events: Any = None) -> None:
        """Stand-in for paging or posting to a channel: say how many credits are left."""
        payload = _latest_payload(triggering_asset_events, credits_low)
        print(
            f"Tamtam {CREDIT_TYPE} credits are low: {payload.get('remaining')} of {payload.get('total')} "
            f"left (alert threshold {payload.get('threshold')})"
        )

    alert()
