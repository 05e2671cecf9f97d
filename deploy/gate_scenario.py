"""The gate scenario: many deferrable sensors of ``tamtam_gate_on_credits`` share one poll and survive a
triggerer crash.

20 concurrent runs each poke once on a worker, then defer to the triggerer; while they wait the Tamtam API
sees about one call per poll interval, not one per sensor; the triggerer is SIGKILLed and restarted and the
sensors resume in the new one; once credits rise, every run succeeds.
"""

from __future__ import annotations

import argparse
import signal
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deploy.clients import Rate, epoch
from deploy.deployment import AIRFLOW, CREDIT_TYPE, RISEN_CREDITS
from deploy.processes import wait_for
from deploy.report import CheckFailed, say
from deploy.scenario import Scenario

DAG_ID = "tamtam_gate_on_credits"
SENSOR_TASK = "wait_for_credits"
MIN_CREDITS = 500  # the example DAG's default param


class GateScenario(Scenario):
    """Trigger the runs, watch them defer, kill and restart the triggerer, raise credits, measure."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--runs", type=int, default=20, help="concurrent DAG runs (default 20)")
        parser.add_argument(
            "--down-seconds", type=float, default=10.0, help="how long the triggerer stays down"
        )
        parser.add_argument("--defer-timeout", type=float, default=240.0, help="s for all sensors to defer")

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.runs: int = args.runs
        self.interval: float = args.poke_interval

    def parallel_runs(self) -> int:
        return self.runs

    def expected_dag_ids(self) -> Sequence[str]:
        return [DAG_ID]

    def airflow_env(self) -> Mapping[str, str]:
        return {"TAMTAM_GATE_POKE_INTERVAL": f"{self.interval:g}"}

    def sensors(self) -> list[dict[str, Any]]:
        """Every run's sensor task instance, via the REST API."""
        path = f"/dags/{DAG_ID}/dagRuns/~/taskInstances?task_id={SENSOR_TASK}&limit=100"
        return list(self.api.call("GET", path)["task_instances"])

    def dag_runs(self) -> list[dict[str, Any]]:
        """Every run of the gate DAG, via the REST API."""
        return list(self.api.call("GET", f"/dags/{DAG_ID}/dagRuns?limit=100")["dag_runs"])

    def deferred(self) -> tuple[int, set[int], int]:
        """Sensors deferred, the triggerer job ids their triggers are assigned to, and how many are not."""
        sensors = [ti for ti in self.sensors() if ti["state"] == "deferred"]
        jobs = [(ti.get("trigger") or {}).get("triggerer_id") for ti in sensors]
        return len(sensors), {int(job) for job in jobs if job is not None}, jobs.count(None)

    def hold(self, seconds: float, what: str) -> None:
        """Let the deployment run untouched; fail at once if a sensor leaves the deferred state."""
        say(f"{what}: watching for {seconds:.0f} s")
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.procs.ensure_running()
            count, _, _ = self.deferred()
            if count != self.runs:
                raise CheckFailed(f"{count} of {self.runs} sensors deferred while {what}")
            time.sleep(min(2.0, left))

    def check(self) -> None:
        """Defer, measure, restart the triggerer, measure, raise the credits, check every run."""
        say(f"{DAG_ID} waits for {MIN_CREDITS} {CREDIT_TYPE} credits")
        t_trigger = self.trigger()
        t_all, t_last_deferral = self.wait_all_deferred(t_trigger)
        self.hold(self.args.wait_intervals * self.interval, f"all {self.runs} sensors deferred")
        t_kill = time.time()
        calls = self.fake.credit_calls()
        initial = [t for t in calls if t <= t_last_deferral]
        self.report.add(
            "Calls until the last sensor deferred",
            None if len(initial) >= self.runs else False,
            f"{len(initial)} in the {t_last_deferral - t_trigger:.0f} s from trigger to last deferral: "
            f"the {self.runs} synchronous first pokes on workers and {len(initial) - self.runs} shared "
            "poll(s) of the triggerer",
        )
        waiting = Rate(t_all, t_kill, self.interval, calls)
        self.report.add(
            f"Calls per poll interval, {self.runs} deferred", waiting.passes(), waiting.describe()
        )
        t_resumed = self.restart_triggerer()
        self.hold(self.args.wait_intervals * self.interval, "the new triggerer polls")
        t_raise = time.time()
        after = Rate(t_resumed, t_raise, self.interval, self.fake.credit_calls())
        self.report.add("Calls per poll interval after restart", after.passes(), after.describe())
        self.finish(t_trigger, t_last_deferral, t_raise)

    def trigger(self) -> float:
        """Unpause the DAG and trigger every run at once through the REST API; returns when."""
        self.api.call("PATCH", f"/dags/{DAG_ID}", {"is_paused": False})
        self.fake.reset()  # from here on, the fake API's log holds the runs' calls only
        start = time.time()

        def trigger(index: int) -> None:
            # the example gate reserves by default; this scenario measures the plain floor
            conf = {"credits_needed": None, "min_credits": MIN_CREDITS}
            body = {"dag_run_id": f"deploy_check_{index:02d}", "logical_date": None, "conf": conf}
            self.api.call("POST", f"/dags/{DAG_ID}/dagRuns", body)

        with ThreadPoolExecutor(max_workers=self.runs) as pool:
            list(pool.map(trigger, range(1, self.runs + 1)))
        say(f"unpaused {DAG_ID} and triggered {self.runs} runs in {time.time() - start:.1f} s")
        return start

    def wait_all_deferred(self, t_trigger: float) -> tuple[float, float]:
        """Poll the sensors until all are deferred; returns that moment and the last trigger's creation."""
        seen: set[str] = set()
        states: set[str] = set()
        created: dict[str, float] = {}
        jobs: set[int] = set()
        deadline = time.monotonic() + self.args.defer_timeout
        while True:
            self.procs.ensure_running()
            sensors = self.sensors()
            for ti in sensors:
                states.add(str(ti["state"] or "no state"))
                if ti["state"] in ("failed", "upstream_failed", "up_for_retry", "success", "skipped"):
                    raise CheckFailed(f"sensor of {ti['dag_run_id']} is {ti['state']} before credits rose")
                if ti["state"] != "deferred":
                    continue
                seen.add(ti["dag_run_id"])
                trigger = ti.get("trigger") or {}
                if trigger.get("created_date"):
                    created.setdefault(ti["dag_run_id"], epoch(trigger["created_date"]))
                if trigger.get("triggerer_id") is not None:
                    jobs.add(int(trigger["triggerer_id"]))
            count = sum(1 for ti in sensors if ti["state"] == "deferred")
            if len(sensors) == self.runs and count == self.runs:
                break
            if time.monotonic() > deadline:
                raise CheckFailed(
                    f"{count} of {self.runs} sensors deferred after {self.args.defer_timeout:.0f} s"
                )
            time.sleep(0.5)
        t_all = time.time()
        first, last = min(created.values(), default=t_all), max(created.values(), default=t_all)
        say(f"all {self.runs} sensors deferred, {t_all - t_trigger:.0f} s after the trigger")
        self.report.add(
            f"{self.runs} sensors deferred",
            len(seen) == self.runs,
            f"state 'deferred' seen for {len(seen)}/{self.runs} sensors via the REST API (states seen: "
            f"{', '.join(sorted(states))}); triggers created {first - t_trigger:.0f}-"
            f"{last - t_trigger:.0f} s after the trigger; on triggerer job(s) {sorted(jobs) or '(none yet)'}",
        )
        return t_all, last

    def restart_triggerer(self) -> float:
        """SIGKILL the triggerer, check nothing polls while it is down, restart it; returns its first poll."""
        _, old_jobs, _ = self.deferred()
        old_pid = self.procs.pid("triggerer")
        self.procs.kill("triggerer", signal.SIGKILL)
        t_killed = time.time()
        say(f"SIGKILLed the triggerer (pid {old_pid}, job {sorted(old_jobs)}), {self.runs} sensors deferred")
        self.hold(self.args.down_seconds, "no triggerer runs")
        t_restart = time.time()
        down = [t for t in self.fake.credit_calls() if t_killed < t <= t_restart]
        self.report.add(
            "Calls while the triggerer is down",
            not down,
            f"{len(down)} in {t_restart - t_killed:.0f} s: deferred sensors poll from the triggerer only",
        )
        new_pid = self.procs.start("triggerer", [AIRFLOW, "triggerer"])
        say(f"restarted the triggerer (pid {new_pid})")
        new_jobs: set[int] = set()

        def taken_over() -> bool:
            nonlocal new_jobs
            count, new_jobs, unassigned = self.deferred()
            if count != self.runs:
                raise CheckFailed(f"{count} of {self.runs} sensors deferred after the triggerer restart")
            return bool(new_jobs) and not unassigned and not new_jobs & old_jobs

        wait_for(
            "the new triggerer to take the triggers over", taken_over, 120, 1.0, self.procs.ensure_running
        )
        t_moved = time.time()

        def polled() -> bool:
            return any(t > t_restart for t in self.fake.credit_calls())

        wait_for("the first call from the new triggerer", polled, 60, 0.5, self.procs.ensure_running)
        t_resumed = min(t for t in self.fake.credit_calls() if t > t_restart)
        self.report.add(
            "Triggerer restart: sensors resume",
            True,
            f"all {self.runs} triggers moved from job {sorted(old_jobs)} to job {sorted(new_jobs)} "
            f"{t_moved - t_restart:.0f} s after the restart (dead triggerer's heartbeat threshold 15 s); "
            f"first poll {t_resumed - t_restart:.0f} s after the restart; sensors stayed deferred throughout",
        )
        return t_resumed

    def finish(self, t_trigger: float, t_last_deferral: float, t_raise: float) -> None:
        """Raise the credits; every sensor must succeed and every run finish with success."""
        self.fake.set_credits(RISEN_CREDITS)
        say(f"raised the credits to 4990 {CREDIT_TYPE} through PUT /_fake/credits")

        def finished() -> bool:
            runs = self.dag_runs()
            return any(run["state"] == "failed" for run in runs) or (
                len(runs) == self.runs and all(run["state"] == "success" for run in runs)
            )

        wait_for(
            f"all {self.runs} runs to finish",
            finished,
            self.args.finish_timeout,
            2.0,
            self.procs.ensure_running,
        )
        t_done = time.time()
        states = [str(run["state"]) for run in self.dag_runs()]
        sensors_ok = sum(1 for ti in self.sensors() if ti["state"] == "success")
        self.report.add(
            f"{self.runs} DAG runs succeed",
            states.count("success") == self.runs and sensors_ok == self.runs,
            f"{states.count('success')}/{self.runs} runs success, {sensors_ok}/{self.runs} sensors success, "
            f"all done {t_done - t_raise:.0f} s after the credits rose"
            + ("" if states.count("success") == self.runs else f"; run states: {sorted(set(states))}"),
        )
        calls = self.fake.credit_calls()
        unshared = self.runs + round(self.runs * (t_raise - t_last_deferral) / self.interval)
        self.report.add(
            "Credits calls in total",
            None,
            f"{len(calls)} for {self.runs} runs over {t_raise - t_trigger:.0f} s, "
            f"{sum(1 for t in calls if t > t_raise)} of them after the rise; without the shared poll, "
            f"one call per sensor per interval, about {unshared}",
        )
