"""DAG of the deploy check's reservation scenario: a gate reserving 500 credits, then a job spending them.

The job spends through the fake Tamtam server's control API (``POST /_fake/spend``), which refuses a spend
the balance cannot cover: a refused spend is an overdraw the gate let through. The job waits
``TAMTAM_SPEND_DELAY`` seconds first, so that runs stay admitted and unspent for a while.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from datetime import datetime

from airflow.sdk import dag, task

from airflow_provider_tamtam.sensors.tamtam import TamtamCreditsSensor

CREDIT_TYPE = "MaxKeyAccountsUnlocked"
NEEDED = 500


@dag(dag_id="tamtam_reservations_check", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def tamtam_reservations_check() -> None:
    gate = TamtamCreditsSensor(
        task_id="reserve",
        credit_type=CREDIT_TYPE,
        credits_needed=NEEDED,
        reservation_timeout=600,
        deferrable=True,
        poke_interval=float(os.environ.get("TAMTAM_GATE_POKE_INTERVAL", "5")),
        timeout=900,
    )

    @task(retries=0)
    def spend() -> int:
        """Spend the reserved credits on the fake API; fails when refused (the balance would go negative)."""
        time.sleep(float(os.environ.get("TAMTAM_SPEND_DELAY", "0")))
        host = json.loads(os.environ["AIRFLOW_CONN_TAMTAM_DEFAULT"])["host"]
        body = json.dumps({"credit_type": CREDIT_TYPE, "credits": NEEDED}).encode()
        request = urllib.request.Request(  # noqa: S310 (the loopback fake server)
            host.rsplit("/", 1)[0] + "/_fake/spend",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                return int(json.load(response)["remaining"])
        except urllib.error.HTTPError as refused:
            raise RuntimeError(f"spend of {NEEDED} refused: {refused.read().decode()}") from None

    gate >> spend()


tamtam_reservations_check()
