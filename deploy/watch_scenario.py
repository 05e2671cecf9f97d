"""The watcher scenario: asset watchers on one connection share one poll and fire exactly once.

20 asset watchers (``TamtamCreditsEventTrigger``, one threshold each, from
``deploy/dags/tamtam_watchers_check.py``) run in the triggerer for about one call per poll interval
between them; once credits rise above every threshold each asset gets exactly one event and each watcher
DAG exactly one run, and no more while credits stay high, not even after a triggerer restart (the armed
state lives in the asset state store).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import sqlalchemy

from deploy.clients import Rate, epoch
from deploy.deployment import AIRFLOW, CREDIT_TYPE, RISEN_CREDITS, SHORT_CREDITS, Live
from deploy.processes import wait_for
from deploy.report import CheckFailed, Report, say
from deploy.scenario import Scenario

WATCH_DAG_FILE = Path(__file__).resolve().parent / "dags" / "tamtam_watchers_check.py"
WATCH_DAG_PREFIX = "tamtam_watchers_check_"  # watcher DAG i is tamtam_watchers_check_<i:02d>
WATCH_ASSET_PREFIX = "tamtam/watchers_check/"  # its asset is tamtam/watchers_check/<i:02d>
WATCH_BASE_THRESHOLD = 1000  # its watcher fires once the remaining credits reach 1000 + i
WATCH_LOG_LINE = f"Watching Tamtam credits {CREDIT_TYPE}"  # what each watcher logs when it starts
STATE_KEY_PREFIX = "tamtam_credits_event:"  # a watcher's key in its asset's state store


class WatchScenario(Scenario):
    """Asset watchers: many share one poll, each fires once when credits cross, none while they stay up."""

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--watchers",
            type=int,
            default=20,
            help="asset watchers and watcher DAGs (default 20; 0 skips them)",
        )

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(args)
        self.count: int = args.watchers
        self.interval: float = args.poke_interval
        self.index: dict[int, int] = {}  # asset id -> watcher number i (its threshold is 1000 + i)
        self.trigger_ids: list[int] = []

    @property
    def enabled(self) -> bool:
        return self.count > 0

    def dag_files(self) -> Sequence[Path]:
        return [WATCH_DAG_FILE]

    def own_dag_ids(self) -> Sequence[str]:
        return [f"{WATCH_DAG_PREFIX}{i:02d}" for i in range(1, self.count + 1)]

    def airflow_env(self) -> Mapping[str, str]:
        return {
            "TAMTAM_WATCHERS_CHECK_COUNT": str(self.count),
            "TAMTAM_WATCHERS_CHECK_POLL_INTERVAL": f"{self.interval:g}",
        }

    def run(self, live: Live, report: Report) -> None:
        self.engine = sqlalchemy.create_engine(live.db_url, poolclass=sqlalchemy.pool.NullPool)
        try:
            super().run(live, report)
        finally:
            self.engine.dispose()

    def watched_assets(self) -> list[dict[str, Any]]:
        """The check's assets with their watchers (each names its trigger id), via the REST API."""
        path = f"/assets?name_prefix_pattern={WATCH_ASSET_PREFIX}&limit=100"
        return [a for a in self.api.call("GET", path)["assets"] if a["name"].startswith(WATCH_ASSET_PREFIX)]

    def events(self) -> list[dict[str, Any]]:
        """The check's asset events, via the REST API.

        Airflow 3.3.2 fails this call (HTTP 500, or a dropped connection) while a run that an event created
        has not started yet: the response model requires the run's ``start_date``, still null then. On a
        busy machine that window is seconds long, so a failed call is tried again for up to 30 s.
        """
        path = f"/assets/events?name_prefix_pattern={WATCH_ASSET_PREFIX}&limit=200"
        deadline = time.monotonic() + 30
        while True:
            try:
                events = self.api.call("GET", path)["asset_events"]
                break
            except (CheckFailed, requests.ConnectionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
        return [e for e in events if str(e.get("name") or "").startswith(WATCH_ASSET_PREFIX)]

    def runs(self) -> list[dict[str, Any]]:
        path = f"/dags/~/dagRuns?dag_id_prefix_pattern={WATCH_DAG_PREFIX}&limit=200"
        runs = self.api.call("GET", path)["dag_runs"]
        return [r for r in runs if r["dag_id"].startswith(WATCH_DAG_PREFIX)]

    def trigger_jobs(self) -> dict[int, int | None]:
        """The triggerer job each watcher's trigger is assigned to (None: unassigned), from the database.

        The REST API shows a trigger's triggerer only for deferred task instances, not for asset watchers.
        """
        query = sqlalchemy.text("SELECT id, triggerer_id FROM trigger WHERE id IN :ids").bindparams(
            sqlalchemy.bindparam("ids", expanding=True)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query, {"ids": self.trigger_ids}).all()
        return {int(row[0]): None if row[1] is None else int(row[1]) for row in rows}

    def started_in_log(self) -> int:
        """How many watchers the current triggerer's log says have started watching."""
        path = self.procs.log_paths["triggerer"]
        return path.read_text(errors="replace").count(WATCH_LOG_LINE) if path.exists() else 0

    def first_call_after(self, moment: float, what: str) -> float:
        """When the fake API first saw a credits call after ``moment`` (waits up to 60 s for one)."""

        def polled() -> bool:
            return any(t > moment for t in self.fake.credit_calls())

        wait_for(what, polled, 60, 0.5, self.procs.ensure_running)
        return min(t for t in self.fake.credit_calls() if t > moment)

    # ------------------------------------------------------------------ phases

    def check(self) -> None:
        """Watch below the thresholds, raise the credits, check the events, restart, check again."""
        self.fake.set_credits(SHORT_CREDITS)
        say(f"set the credits back to 100 {CREDIT_TYPE}, below every watcher's threshold")
        self.fake.reset()  # from here on, the fake API's log holds the watchers' calls only
        t_unpause = self.unpause()
        t_running = self.wait_running(t_unpause)
        self.idle(self.args.wait_intervals * self.interval, f"{self.count} watchers, credits below")
        t_raise = time.time()
        below = Rate(t_running, t_raise, self.interval, self.fake.credit_calls())
        self.report.add(f"Calls per poll interval, {self.count} watching", below.passes(), below.describe())
        early_events, early_runs = len(self.events()), len(self.runs())

        self.fake.set_credits(RISEN_CREDITS)
        say(f"raised the credits to 4990 {CREDIT_TYPE}, above every watcher's threshold")
        t_done = self.wait_fired()
        self.check_fired(t_raise, t_done, early_events, early_runs)
        events, runs = len(self.events()), len(self.runs())
        last_event = max((epoch(e["timestamp"]) for e in self.events()), default=t_raise)
        self.idle(self.args.wait_intervals * self.interval, "credits stay high")
        t_quiet = time.time()
        calls = self.fake.credit_calls()
        after = Rate(t_raise, t_quiet, self.interval, calls)
        self.report.add("Calls per poll interval, after the rise", after.passes(), after.describe())
        new_events, new_runs = len(self.events()) - events, len(self.runs()) - runs
        polls = sum(1 for t in calls if t > last_event)
        self.report.add(
            "No second event while credits stay high",
            new_events == 0 and new_runs == 0,
            f"{new_events} new asset events and {new_runs} new runs in the {t_quiet - last_event:.0f} s "
            f"after the last event, over {polls} polls that all saw 4990 credits, above every threshold",
        )
        self.check_state_store()

        t_resumed = self.restart_triggerer()
        events, runs = len(self.events()), len(self.runs())
        self.idle(self.args.wait_intervals * self.interval, "the new triggerer watches, credits still high")
        t_end = time.time()
        calls = self.fake.credit_calls()
        restarted = Rate(t_resumed, t_end, self.interval, calls)
        new_events, new_runs = len(self.events()) - events, len(self.runs()) - runs
        self.report.add(
            "No second event after a triggerer restart",
            new_events == 0 and new_runs == 0,
            f"{new_events} new asset events and {new_runs} new runs in the {t_end - t_resumed:.0f} s after "
            f"the new triggerer's first poll ({sum(1 for t in calls if t >= t_resumed)} polls, credits "
            "above every threshold): each watcher read its armed state back from the asset state store",
        )
        self.report.add(
            "Calls per poll interval after restart, watching", restarted.passes(), restarted.describe()
        )
        unshared = round(self.count * (t_end - t_running) / self.interval)
        self.report.add(
            "Watcher credits calls in total",
            None,
            f"{len(calls)} for {self.count} watchers over {t_end - t_unpause:.0f} s from the unpause; one "
            f"request per watcher per interval would be about {unshared}",
        )

    def unpause(self) -> float:
        """Unpause every watcher DAG in one PATCH and ask the dag-processor to reparse their file.

        Airflow attaches a watcher's trigger to its asset only while a DAG scheduled on the asset is
        unpaused, and only when the file is parsed, so the reparse request saves up to a parse interval.
        The PATCH selects by ``dag_id_pattern``: on Airflow 3.3.2 ``dag_id_prefix_pattern`` alone matches
        only DAG ids containing "none", as the absent ``dag_id_pattern`` becomes ``ILIKE '%None%'``.
        """
        self.api.call(
            "PATCH",
            f"/dags?dag_id_pattern={WATCH_DAG_PREFIX}&update_mask=is_paused",
            {"is_paused": False},
        )
        t_unpause = time.time()
        path = f"/dags?dag_id_prefix_pattern={WATCH_DAG_PREFIX}&paused=false&limit=100"
        dags = [d for d in self.api.call("GET", path)["dags"] if d["dag_id"].startswith(WATCH_DAG_PREFIX)]
        if len(dags) != self.count:
            raise CheckFailed(f"{len(dags)} of {self.count} watcher DAGs unpaused after PATCH /api/v2/dags")
        self.api.call("PUT", f"/parseDagFile/{dags[0]['file_token']}", ok=(201,))
        say(f"unpaused the {self.count} watcher DAGs and requested a reparse of {WATCH_DAG_FILE.name}")
        return t_unpause

    def wait_running(self, t_unpause: float) -> float:
        """Wait until each asset has its trigger, assigned to the triggerer, which logged it started."""
        assets: list[dict[str, Any]] = []

        def created() -> bool:
            nonlocal assets
            assets = self.watched_assets()
            return len(assets) == self.count and all(len(a["watchers"]) == 1 for a in assets)

        wait_for("a trigger on every watched asset", created, 120, 1.0, self.procs.ensure_running)
        t_created = time.time()
        self.index = {int(a["id"]): int(a["name"].rsplit("/", 1)[1]) for a in assets}
        self.trigger_ids = sorted(int(a["watchers"][0]["trigger_id"]) for a in assets)
        jobs: dict[int, int | None] = {}

        def running() -> bool:
            nonlocal jobs
            jobs = self.trigger_jobs()
            assigned = len(jobs) == self.count and None not in jobs.values()
            return assigned and self.started_in_log() >= self.count

        wait_for("the triggerer to run every watcher", running, 120, 1.0, self.procs.ensure_running)
        t_running = time.time()
        t_first = self.first_call_after(t_unpause, "the watchers' first poll")
        say(
            f"all {self.count} watchers run in the triggerer, {t_running - t_unpause:.0f} s after the unpause"
        )
        self.report.add(
            f"{self.count} watcher triggers running",
            len(set(self.trigger_ids)) == self.count,
            f"{self.count} distinct triggers (ids {self.trigger_ids[0]}-{self.trigger_ids[-1]}), one per "
            f"asset, created {t_created - t_unpause:.0f} s after the unpause; by "
            f"{t_running - t_unpause:.0f} s after it all were assigned to triggerer job(s) "
            f"{sorted({j for j in jobs.values() if j})} and "
            f"each had logged '{WATCH_LOG_LINE} ...'; first poll {t_first - t_unpause:.0f} s after it",
        )
        return t_running

    def wait_fired(self) -> float:
        """Wait until every asset has an event and every watcher DAG a finished run; returns when."""

        def fired() -> bool:
            runs = self.runs()
            finished = sum(1 for r in runs if r["state"] in ("success", "failed"))
            return len(self.events()) >= self.count and finished >= self.count

        with contextlib.suppress(CheckFailed):  # what did happen is reported below
            wait_for(
                "an event per asset and a finished run per watcher DAG",
                fired,
                self.args.finish_timeout,
                2.0,
                self.procs.ensure_running,
            )
        return time.time()

    def check_fired(self, t_raise: float, t_done: float, early_events: int, early_runs: int) -> None:
        """Exactly one event per asset, carrying its own threshold, and one successful run per DAG."""
        events = self.events()
        per_asset = Counter(int(e["asset_id"]) for e in events)
        mismatched = [
            e["name"]
            for e in events
            if ((e.get("extra") or {}).get("payload") or {}).get("threshold")
            != WATCH_BASE_THRESHOLD + self.index.get(int(e["asset_id"]), -1)
            or not (e.get("extra") or {}).get("from_trigger")
        ]
        delays = [round(epoch(e["timestamp"]) - t_raise) for e in events] or [-1]
        spread = f"{min(delays)}" if min(delays) == max(delays) else f"{min(delays)}-{max(delays)}"
        self.report.add(
            "One asset event per asset",
            early_events == 0
            and len(per_asset) == self.count
            and set(per_asset.values()) == {1}
            and not mismatched,
            f"{len(events)} events on {len(per_asset)}/{self.count} assets (per asset: "
            f"{', '.join(f'{n} x{k}' for n, k in sorted(Counter(per_asset.values()).items()))}), "
            f"{spread} s after the credits rose, {early_events} before; "
            + (
                f"payload threshold or from_trigger wrong on {mismatched}"
                if mismatched
                else "each from the trigger, with its own asset's threshold in the payload"
            ),
        )
        runs = self.runs()
        per_dag = Counter(r["dag_id"] for r in runs)
        states = Counter(str(r["state"]) for r in runs)
        run_types = sorted({str(r["run_type"]) for r in runs})
        self.report.add(
            "One run per watcher DAG, all succeed",
            early_runs == 0
            and len(per_dag) == self.count
            and set(per_dag.values()) == {1}
            and states["success"] == self.count,
            f"{len(runs)} runs of {len(per_dag)}/{self.count} DAGs (at most "
            f"{max(per_dag.values(), default=0)} per DAG), {states['success']} success"
            + (f" ({dict(states)})" if states["success"] != len(runs) else "")
            + f", run type {', '.join(run_types) or 'none'}; all done {t_done - t_raise:.0f} s after the "
            f"credits rose, {early_runs} before",
        )

    def check_state_store(self) -> None:
        """Each asset's state store holds its watcher's armed state, now false (fired, waiting for a fall)."""
        disarmed, kinds, keys = 0, set[str](), set[str]()
        for asset_id in self.index:
            entries = self.api.call("GET", f"/assets/{asset_id}/state-store")["asset_state_store"]
            for entry in entries:
                if entry["key"].startswith(STATE_KEY_PREFIX):
                    keys.add(entry["key"])
                    kinds.add(str((entry.get("last_updated_by") or {}).get("kind")))
                    disarmed += entry["value"] == {"armed": False}
        self.report.add(
            "Armed state in the asset state store",
            disarmed == self.count and len(keys) == self.count,
            f'{disarmed}/{self.count} assets hold {{"armed": false}} under their own '
            f"'{STATE_KEY_PREFIX}<hash>' key ({len(keys)} distinct keys; written by: "
            f"{', '.join(sorted(kinds)) or 'nobody'}); GET /api/v2/assets/<id>/state-store",
        )

    def restart_triggerer(self) -> float:
        """Stop the triggerer gracefully (SIGTERM) and start a new one; returns the new one's first poll."""
        old_jobs = {j for j in self.trigger_jobs().values() if j is not None}
        old_pid = self.procs.pid("triggerer")
        self.procs.kill("triggerer", signal.SIGTERM)
        t_restart = time.time()
        new_pid = self.procs.start("triggerer", [AIRFLOW, "triggerer"])
        say(f"stopped the triggerer (SIGTERM, pid {old_pid}, job {sorted(old_jobs)}); started pid {new_pid}")
        new_jobs: set[int] = set()

        def taken_over() -> bool:
            nonlocal new_jobs
            jobs = self.trigger_jobs()
            new_jobs = {j for j in jobs.values() if j is not None}
            moved = len(jobs) == self.count and None not in jobs.values() and not new_jobs & old_jobs
            return moved and self.started_in_log() >= self.count

        wait_for("the new triggerer to run every watcher", taken_over, 120, 1.0, self.procs.ensure_running)
        t_moved = time.time()
        t_resumed = self.first_call_after(t_restart, "the first poll of the new triggerer")
        self.report.add(
            "Triggerer restart: watchers resume",
            True,
            f"all {self.count} watcher triggers moved from job {sorted(old_jobs)} to job "
            f"{sorted(new_jobs)} {t_moved - t_restart:.0f} s after a graceful restart (SIGTERM, as in a "
            f"redeploy); first poll {t_resumed - t_restart:.0f} s after it",
        )
        return t_resumed
