"""The reservation scenario: gated runs that spend what they reserved, across two triggerers and a SIGKILL.

20 runs of ``tamtam_reservations_check`` each reserve 500 credits and then spend them through the fake
Tamtam server, which refuses any spend the balance cannot cover. Two triggerers share the gates (and the
ledger, through an Airflow Variable); while the first runs are admitted and not yet spent, one triggerer is
SIGKILLed and started again. The balance starts at 5,200 and is topped up by 5,000 each time it is spent
down, until every run is done. Reported: refused spends (the measured overdraw) and whether every run
succeeded.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from deploy.deployment import AIRFLOW, API_KEY, CREDIT_TYPE
from deploy.processes import free_port, wait_for
from deploy.report import say
from deploy.scenario import Scenario

DAG_ID = "tamtam_reservations_check"
DAG_FILE = Path(__file__).parent / "dags" / "tamtam_reservations_check.py"
NEEDED = 500
START = {"used": 4_800, "total": 10_000}  # 5,200 remaining: room for 10 runs
TOP_UP = 5_000


class ReservationScenario(Scenario):
    """Trigger the runs on two triggerers, kill one while runs are admitted, top up, measure overdraw."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--reservation-runs", type=int, default=20, help="gated runs (default 20)")
        parser.add_argument(
            "--no-reservations", dest="reservations", action="store_false", help="skip this scenario"
        )

    @property
    def enabled(self) -> bool:
        return bool(self.args.reservations)

    def parallel_runs(self) -> int:
        return int(self.args.reservation_runs)

    def dag_files(self) -> Sequence[Path]:
        return [DAG_FILE]

    def own_dag_ids(self) -> Sequence[str]:
        return [DAG_ID]

    def airflow_env(self) -> Mapping[str, str]:
        return {"TAMTAM_SPEND_DELAY": "20"}

    def credits(self) -> dict[str, Any]:
        response = requests.get(
            f"{self.live.fake_url}/v2/credits", headers={"Authorization": API_KEY}, timeout=10
        )
        line = next(line for line in response.json()["credits"] if line["credit_type"] == CREDIT_TYPE)
        return dict(line)

    def set_balance(self, used: int, total: int) -> None:
        line = {"credit_type": CREDIT_TYPE, "used_credits": used, "total_credits": total}
        self.fake.set_credits([{**line, "remaining_credits": total - used}])

    def task_states(self, task_id: str) -> list[str]:
        path = f"/dags/{DAG_ID}/dagRuns/~/taskInstances?task_id={task_id}&limit=100"
        return [str(ti["state"]) for ti in self.api.call("GET", path)["task_instances"]]

    def check(self) -> None:
        runs = int(self.args.reservation_runs)
        origin = self.live.fake_url.rsplit("/", 1)[0]
        requests.delete(f"{origin}/_fake/spend", timeout=10).raise_for_status()
        self.set_balance(START["used"], START["total"])
        # A second triggerer on one machine needs a log server port of its own.
        second_env = {"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())}
        self.procs.start("triggerer-2", [AIRFLOW, "triggerer"], env=second_env)
        say(f"second triggerer started; {runs} runs of {DAG_ID} each reserve {NEEDED} of 5,200 remaining")
        self.api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})

        def trigger(index: int) -> None:
            body = {"dag_run_id": f"reserve_{index:02d}", "logical_date": None}
            self.api.call("POST", f"/dags/{DAG_ID}/dagRuns", body)

        with ThreadPoolExecutor(max_workers=runs) as pool:
            list(pool.map(trigger, range(1, runs + 1)))

        # Kill a triggerer while runs are admitted (gates succeeded) and not yet spent (spend sleeps 20 s).
        wait_for(
            "the first admitted runs",
            lambda: "success" in self.task_states("reserve"),
            300,
            1.0,
            self.procs.ensure_running,
        )
        admitted = self.task_states("reserve").count("success")
        path = f"/dags/{DAG_ID}/dagRuns/~/taskInstances?task_id=reserve&limit=100"
        waiting = [ti for ti in self.api.call("GET", path)["task_instances"] if ti["state"] == "deferred"]
        jobs = sorted({(ti.get("trigger") or {}).get("triggerer_id") or 0 for ti in waiting} - {0})
        self.procs.kill("triggerer-2")
        say(f"SIGKILLed the second triggerer with {admitted} runs admitted and unspent; starting it again")
        self.procs.start("triggerer-2", [AIRFLOW, "triggerer"], env=second_env)

        deadline = time.monotonic() + self.args.finish_timeout + 300
        while time.monotonic() < deadline:
            self.procs.ensure_running()
            states = self.task_states("spend")
            if len(states) == runs and all(s in ("success", "failed", "upstream_failed") for s in states):
                break
            line = self.credits()
            if line["remaining_credits"] < NEEDED and "deferred" in self.task_states("reserve"):
                self.set_balance(line["used_credits"], line["total_credits"] + TOP_UP)
                say(f"topped up by {TOP_UP}: {line['remaining_credits'] + TOP_UP} remaining")
            time.sleep(5)
        spends = requests.get(f"{origin}/_fake/spend", timeout=10).json()["spends"]
        refused = [s for s in spends if not s["accepted"]]
        lowest = min((s["remaining"] for s in spends), default=None)
        states = self.task_states("spend")
        self.report.add(
            "Reservations: no overdraw across two triggerers and a SIGKILL",
            not refused and lowest is not None and lowest >= 0,
            f"{len(spends)} spends of {NEEDED}, {len(refused)} refused (measured overdraw "
            f"{len(refused) * NEEDED} credits); lowest balance after a spend {lowest}; the second triggerer "
            f"was SIGKILLed with {admitted} runs admitted and unspent, while the waiting gates' triggers ran "
            f"on triggerer job(s) {jobs}",
        )
        self.report.add(
            "Reservations: every gated run succeeds after top-ups",
            states.count("success") == runs,
            f"{states.count('success')} of {runs} spend tasks succeeded",
        )
